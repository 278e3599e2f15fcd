"""POST /feedback through a real ``onefeed serve`` process, killed with SIGKILL mid-stream 10
times, each time followed by a fresh server on the same log (started meanwhile; it opens the log,
recovering the killed writer's WAL, on its first request): no event whose ids the client
received is lost, each id holds the event sent, and the SQLite file passes PRAGMA
integrity_check."""

import random
import sqlite3
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx

from onefeed.feedback import open_log
from onefeed.serve.loadgen import Server, free_port

KILLS = 10


def stream(url: str, tag: str, stop: threading.Event, acks: dict[int, str],
           lock: threading.Lock) -> None:
    """POST batches of 1-3 events until stopped or the server is gone; record acked ids."""
    n = 0
    with httpx.Client(base_url=url, timeout=10) as client:
        while not stop.is_set():
            rids = [f"{tag}-{n}-{j}" for j in range(1 + n % 3)]
            body = {"events": [{"user": f"u{n % 8}", "kind": "click", "timestamp": 1.7e9 + n,
                                "item": f"i{n % 12}", "position": j, "request_id": r}
                               for j, r in enumerate(rids)]}
            n += 1
            try:
                r = client.post("/feedback", json=body)
            except httpx.HTTPError:
                return  # killed: this request was never acknowledged
            assert r.status_code == 200, r.text
            ids = r.json()["ids"]
            assert len(ids) == len(rids)
            with lock:
                for i, rid in zip(ids, rids):
                    assert i not in acks, f"id {i} acknowledged twice"
                    acks[i] = rid


def test_acknowledged_feedback_survives_kill_9_of_the_server(runs, tmp_path):
    db = tmp_path / "feedback.sqlite"
    settings = ["beam=6", f"feedback={db}", f"catalogue={tmp_path / 'catalogue.jsonl'}"]
    rng = random.Random(3)
    acks: dict[int, str] = {}
    lock = threading.Lock()
    ports: set[int] = set()

    def new_server() -> Server:
        port = free_port()
        while port in ports:
            port = free_port()
        ports.add(port)
        return Server(runs["rec"], settings, port=port)

    # the next two servers start while one is streamed to and killed (start-up is the cost)
    pool = ThreadPoolExecutor(2)
    waiting = [new_server() for _ in range(KILLS)]
    starting = [pool.submit(s.start) for s in waiting]
    try:
        for k in range(KILLS):
            server = starting[k].result()
            stop = threading.Event()
            before = len(acks)
            clients = [threading.Thread(target=stream, args=(server.url, f"k{k}c{c}", stop,
                                                             acks, lock)) for c in range(2)]
            for c in clients:
                c.start()
            deadline = time.time() + 10
            while len(acks) == before and time.time() < deadline:
                time.sleep(0.01)
            assert len(acks) > before, "no feedback was acknowledged"
            time.sleep(rng.uniform(0.0, 0.3))
            server.kill()  # SIGKILL to the server's process group, requests in flight
            stop.set()
            for c in clients:
                c.join(30)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        for s in waiting:
            s.stop()
    assert len(acks) > 2 * KILLS
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()
    with open_log(str(db)) as log:
        logged = {r.id: r.event.request_id for r in log.read()}
    lost = sorted(set(acks) - set(logged))
    assert not lost, f"{len(lost)} acknowledged events lost, e.g. {lost[:5]}"
    assert all(logged[i] == rid for i, rid in acks.items())


def test_feedback_endpoint_writes_the_log(runs, joint_pred, tmp_path):
    """In process: ids come back in order, the log holds exactly the events sent (default
    target: <run>.feedback.sqlite beside the run unless ``feedback`` is set), metrics count."""
    from fastapi.testclient import TestClient

    from onefeed.serve import ServeSettings, create_app

    db = tmp_path / "fb.sqlite"
    settings = ServeSettings(catalogue=str(tmp_path / "cat.jsonl"), feedback=str(db),
                             max_feedback_events=3)
    assert settings.feedback_target(runs["joint"]) == str(db)
    assert ServeSettings().feedback_target(runs["joint"]) == str(
        runs["joint"].resolve().parent / "joint.feedback.sqlite")
    sent = [{"user": "u0", "kind": "impression", "timestamp": 5.0, "item": "i1", "position": 0,
             "request_id": "r1"},
            {"user": "u0", "kind": "dwell", "timestamp": 6.5, "item": "i1", "dwell_ms": 800},
            {"user": "u0", "kind": "query", "timestamp": 7.0, "query": "red lipstick"}]
    with TestClient(create_app(runs["joint"], settings, joint_pred)) as c:
        r = c.post("/feedback", json={"events": sent})
        assert r.status_code == 200 and r.json() == {"ids": [1, 2, 3], "accepted": 3}
        assert c.post("/feedback", json={"events": sent[:1]}).json()["ids"] == [4]
        r = c.post("/feedback", json={"events": sent + sent[:1]})
        assert r.status_code == 422 and r.json()["error"] == "events: 4; at most 3 per request"
        assert "onefeed_feedback_events_total 4.0" in c.get("/metrics").text
    with open_log(str(db)) as log:
        rows = list(log.read())
    assert [r.id for r in rows] == [1, 2, 3, 4]
    assert [{k: v for k, v in r.event.as_dict().items() if v is not None} for r in rows] == \
        sent + sent[:1]
