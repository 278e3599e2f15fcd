"""One real ``onefeed serve`` process over loopback: endpoints, a checkpoint reload under load
with no failed request, and catalogue changes surviving a restart of the process."""

import asyncio

import httpx
import pytest

from onefeed.serve.loadgen import Server, drive, summarise


@pytest.fixture(scope="module")
def server(runs, tmp_path_factory):
    cat = tmp_path_factory.mktemp("uv") / "catalogue.jsonl"
    with Server(runs["joint"], ["beam=6", "suggest_beam=4", f"catalogue={cat}"]) as s:
        yield s


def test_real_process_answers(server):
    h = httpx.get(server.url + "/health").json()
    assert h["status"] == "ok" and h["kind"] == "joint"
    r = httpx.post(server.url + "/recommend", json={"user": "u0", "k": 3})
    assert r.status_code == 200 and len(r.json()["items"]) == 3
    r = httpx.post(server.url + "/search", content=b"{not json",
                   headers={"content-type": "application/json"})
    assert r.status_code == 400 and r.json()["field"] == "body"
    stats = asyncio.run(drive(server.url, "/suggest", [{"user": f"u{i}"} for i in range(8)],
                              4, 16))
    assert stats["requests"] == 16 and stats["errors"] == 0 and stats["rps"] > 0


def test_reload_under_load_fails_no_request(server, runs):
    async def scenario():
        load = asyncio.create_task(drive(
            server.url, "/recommend", [{"user": f"u{i}", "k": 3} for i in range(8)], 8, 400))
        async with httpx.AsyncClient(base_url=server.url, timeout=60) as c:
            reloads = []
            for _ in range(3):
                await asyncio.sleep(0.05)
                reloads.append(await c.post("/admin/reload", json={"run": str(runs["joint"])}))
        return await load, reloads

    stats, reloads = asyncio.run(scenario())
    assert [r.status_code for r in reloads] == [200, 200, 200], [r.text for r in reloads]
    assert stats["errors"] == 0 and stats["requests"] == 400
    assert httpx.get(server.url + "/health").json()["reloads"] >= 3


def test_items_survive_a_restart(runs, tmp_path):
    settings = ["beam=6", f"catalogue={tmp_path / 'cat.jsonl'}"]
    with Server(runs["joint"], settings) as s:
        n = httpx.get(s.url + "/health").json()["n_items"]
        r = httpx.post(s.url + "/items", json={"item": "kept", "text": "Title: red cream 5"},
                       timeout=120)
        assert r.status_code == 201
        assert httpx.delete(s.url + "/items/i2").status_code == 200
        s.kill()  # no clean shutdown: the journal line was fsynced before the 201
    with Server(runs["joint"], settings) as s:
        assert httpx.get(s.url + "/health").json()["n_items"] == n
        items = [i["item"] for i in httpx.post(s.url + "/recommend", json={
            "user": "u0", "k": n}).json()["items"]]
        assert "kept" in items and "i2" not in items


def test_summarise_percentiles():
    out = summarise([0.001, 0.002, 0.003, 0.004], wall_s=2.0, errors=1)
    assert out == {"p50_ms": 2.5, "p95_ms": 3.85, "p99_ms": 3.97, "rps": 2.0, "requests": 4,
                   "errors": 1}
