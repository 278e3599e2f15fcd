"""Every endpoint through FastAPI's TestClient, every client error as a 4xx JSON naming the
field (never a 500), the catalogue endpoints, metrics and micro-batching."""

import asyncio

import httpx
import pytest
from fastapi.testclient import TestClient

from onefeed.predict import Predictor
from onefeed.serve import ServeSettings, create_app
from onefeed.serve import schemas as S


@pytest.fixture(scope="module")
def client(runs, joint_pred, tmp_path_factory):
    cat = tmp_path_factory.mktemp("app") / "catalogue.jsonl"
    settings = ServeSettings(catalogue=str(cat), max_query_chars=40, max_k=8,
                             max_body_bytes=4096, max_history=5, beam=6, suggest_beam=5)
    with TestClient(create_app(runs["joint"], settings, joint_pred)) as c:
        yield c


@pytest.fixture(scope="module")
def rec_client(runs, tmp_path_factory):
    cat = tmp_path_factory.mktemp("rec") / "catalogue.jsonl"
    with TestClient(create_app(runs["rec"], ServeSettings(catalogue=str(cat)))) as c:
        yield c


def test_recommend_feed_search_suggest(client, joint_pred):
    r = client.post("/recommend", json={"user": "u0", "k": 3})
    assert r.status_code == 200
    body = r.json()
    assert body["model"] == "joint" and len(body["items"]) == 3
    assert [i["item"] for i in body["items"]] == \
        [h.item for h in joint_pred.recommend(["u0"], 3, 6)[0]]
    assert set(body["items"][0]) == {"item", "title", "score"} and len(body["request_id"]) == 32
    hist = {"history": [{"behaviour": "rec_click", "item": "i1"},
                        {"behaviour": "search_query", "query": "red polish"}], "k": 2,
            "exclude_seen": True}
    r = client.post("/recommend", json=hist)
    assert r.status_code == 200 and "i1" not in [i["item"] for i in r.json()["items"]]
    feed = client.post("/feed", json={"user": "u0", "k": 3}).json()
    assert feed["source"] == "recommend" and feed["items"] == body["items"]
    s = client.post("/search", json={"query": "red lipstick", "user": "u1", "k": 4}).json()
    assert len(s["items"]) == 4
    s2 = client.post("/search", json={"query": "red lipstick", "k": 4, "fuse_bm25": 0.05}).json()
    assert len(s2["items"]) == 4 and all("red" in i["title"] or "lipstick" in i["title"]
                                         for i in s2["items"])
    g = client.post("/suggest", json={"user": "u2", "k": 3}).json()
    assert g["rejected"] is False and len(g["queries"]) <= 3
    assert g["queries"] == joint_pred.suggest(["u2"], 3, 5)[0]
    t = client.post("/suggest", json={"trigger_item": "i5", "k": 2})
    assert t.status_code == 200
    # the hot endpoints write their JSON themselves: it must still be their declared model
    for model, answer in [(S.ItemsResponse, body), (S.FeedResponse, feed), (S.ItemsResponse, s),
                          (S.ItemsResponse, s2), (S.SuggestResponse, g),
                          (S.SuggestResponse, t.json())]:
        assert model.model_validate(answer).model_dump(mode="json") == answer
    assert body["request_id"] != feed["request_id"]


def test_history_states_are_reused_and_counted(runs, tmp_path):
    settings = ServeSettings(catalogue=str(tmp_path / "c.jsonl"), beam=6, suggest_beam=5)
    with TestClient(create_app(runs["joint"], settings)) as c:  # loads its own predictor
        first = c.post("/recommend", json={"user": "u3", "k": 3}).json()
        again = c.post("/recommend", json={"user": "u3", "k": 3}).json()
        assert again["items"] == first["items"]
        text = c.get("/metrics").text
    assert 'onefeed_state_cache{what="hits"} 1.0' in text
    assert 'onefeed_state_cache{what="misses"} 1.0' in text
    off = ServeSettings(catalogue=str(tmp_path / "d.jsonl"), beam=6, state_cache=0)
    with TestClient(create_app(runs["joint"], off)) as c:
        c.post("/recommend", json={"user": "u3", "k": 3})
        c.post("/recommend", json={"user": "u3", "k": 3})
        assert 'onefeed_state_cache{what="hits"} 0.0' in c.get("/metrics").text


def test_health_metrics_docs(client):
    h = client.get("/health").json()
    assert h["status"] == "ok" and h["kind"] == "joint" and h["batching"] is True
    client.post("/recommend", json={"user": "u0"})
    m = client.get("/metrics")
    assert m.status_code == 200 and m.headers["content-type"].startswith("text/plain")
    text = m.text
    assert 'onefeed_requests_total{endpoint="recommend",status="200"}' in text
    assert "onefeed_request_seconds_bucket" in text and "onefeed_batch_queue_depth" in text
    assert "onefeed_batch_size_count" in text
    assert client.get("/docs").status_code == 200
    schema = client.get("/openapi.json").json()
    assert {"/recommend", "/search", "/suggest", "/feed", "/feedback", "/items",
            "/items/{item_id}", "/health", "/metrics", "/admin/reload"} <= set(schema["paths"])
    assert client.get("/").status_code == 200


BAD = [  # (method, path, body or raw bytes, status, field, message part)
    ("post", "/recommend", {"user": "nobody"}, 404, "user", "unknown user 'nobody'"),
    ("post", "/recommend", {"history": [{"behaviour": "rec_click", "item": "zz"}]}, 404,
     "history.0.item", "unknown item 'zz'"),
    ("post", "/recommend", {"history": [{"behaviour": "rec_click"}]}, 422, "history.0",
     "needs an item"),
    ("post", "/recommend", {"history": [{"behaviour": "walk", "item": "i1"}]}, 422,
     "history.0.behaviour", "Input should be"),
    ("post", "/recommend", {"history": [{"behaviour": "rec_click", "item": "i1"}] * 6}, 422,
     "history", "6 events; at most 5"),
    ("post", "/recommend", {"user": "u0", "k": 0}, 422, "k", "greater than or equal to 1"),
    ("post", "/recommend", {"user": "u0", "k": 9}, 422, "k", "9 is over the limit of 8"),
    ("post", "/recommend", {"user": "u0", "k": "3"}, 422, "k", "valid integer"),
    ("post", "/recommend", {"user": 7}, 422, "user", "valid string"),
    ("post", "/recommend", {"user": "u0", "colour": "red"}, 422, "colour", "Extra inputs"),
    ("post", "/recommend", {}, 422, "body", "give a user or a non-empty history"),
    ("post", "/recommend", [1, 2], 422, "body", "valid dictionary"),
    ("post", "/recommend", b'{"user": "u0"', 400, "body", "not valid JSON"),
    ("post", "/recommend", b'{"user": "\xff\xfe"}', 400, "body", "not valid UTF-8 (byte 10)"),
    ("post", "/recommend", b'{"user": "' + b"u" * 5000 + b'"}', 413, "body", "4096-byte limit"),
    ("post", "/search", {"query": ""}, 422, "query", "at least 1 character"),
    ("post", "/search", {"query": "   "}, 422, "query", "empty"),
    ("post", "/search", {"query": "x" * 41}, 422, "query", "41 characters; at most 40"),
    ("post", "/search", {"query": "red", "fuse_bm25": -1}, 422, "fuse_bm25", "greater than"),
    ("post", "/search", {"k": 3}, 422, "query", "field required"),
    ("post", "/suggest", {"k": 3}, 422, "body", "give a user, a history or a trigger_item"),
    ("post", "/suggest", {"user": "u0", "k": 51}, 422, "k", "less than or equal to 50"),
    ("post", "/suggest", {"trigger_item": "zz"}, 404, "trigger_item", "unknown item 'zz'"),
    ("post", "/items", {"item": "x"}, 422, "text", "field required"),
    ("post", "/items", {"item": "i1", "text": "red"}, 409, "item", "already in the catalogue"),
    ("delete", "/items/zz", None, 404, "item", "unknown item 'zz'"),
    ("delete", "/items/a%2Fb", None, 404, "item", "unknown item 'a/b'"),  # found by the fuzz:
    ("delete", "/items/a%0Ab", None, 404, "item", "unknown item 'a\\nb'"),  # was Not Found
    ("post", "/feedback", {"events": []}, 422, "events", "at least 1 item"),
    ("post", "/feedback", {"events": [{"user": "u0", "kind": "click", "timestamp": 1.0}]}, 422,
     "events.0", "a click event needs an item"),
    ("post", "/feedback", {"events": [{"user": "u0", "kind": "look", "timestamp": 1.0}]}, 422,
     "events.0.kind", "Input should be"),
    ("post", "/admin/reload", {"run": "/no/such/run"}, 400, "run", "no trained run here"),
    ("post", "/admin/reload", {"run": "a" * 300}, 400, "run", "File name too long"),  # was 500
    ("get", "/nowhere", None, 404, None, "Not Found"),
    ("put", "/recommend", {"user": "u0"}, 405, None, "Method Not Allowed"),
]


@pytest.mark.parametrize("method,path,body,status,field,message", BAD,
                         ids=[f"{b[1]}-{b[3]}-{b[5][:20]}" for b in BAD])
def test_bad_input_is_a_4xx_naming_the_field(client, method, path, body, status, field,
                                             message):
    kwargs = {}
    if isinstance(body, bytes):
        kwargs = {"content": body, "headers": {"content-type": "application/json"}}
    elif body is not None:
        kwargs = {"json": body}
    r = getattr(client, method)(path, **kwargs) if kwargs else getattr(client, method)(path)
    assert r.status_code == status, r.text
    out = r.json()
    assert out["field"] == field and message in out["error"], out


def test_rec_only_run(rec_client):
    assert rec_client.post("/recommend", json={"user": "u0", "k": 2}).json()["model"] == "rec"
    for path, body in (("/search", {"query": "red"}), ("/suggest", {"user": "u0"})):
        r = rec_client.post(path, json=body)
        assert r.status_code == 400 and "recommendation-only" in r.json()["error"]


def test_items_add_and_delete_through_the_api(runs, tmp_path):
    settings = ServeSettings(catalogue=str(tmp_path / "cat.jsonl"), beam=6)
    with TestClient(create_app(runs["joint"], settings)) as c:
        n = c.get("/health").json()["n_items"]
        r = c.post("/items", json={"item": "new-blue", "text": "Title: blue cream number 77",
                                   "title": "Blue 77"})
        assert r.status_code == 201 and r.json()["n_items"] == n + 1
        codes = r.json()["codes"]
        k = n + 1
        rec = c.post("/recommend", json={"user": "u0", "k": k}).json()["items"]
        assert "new-blue" in [i["item"] for i in rec]
        found = c.post("/search", json={"query": "blue cream", "k": k}).json()["items"]
        assert "Blue 77" in [i["title"] for i in found]
        assert c.post("/recommend", json={"history": [
            {"behaviour": "rec_click", "item": "new-blue"}], "k": 2}).status_code == 200
    with TestClient(create_app(runs["joint"], settings)) as c:  # a restart
        assert c.get("/health").json()["n_items"] == n + 1
        rec = c.post("/recommend", json={"user": "u0", "k": n + 1}).json()["items"]
        assert "new-blue" in [i["item"] for i in rec]
        assert c.app.state.serve.predictor.joint.layout.codes[-1].tolist() == codes
        d = c.delete("/items/new-blue")
        assert d.status_code == 200 and d.json() == {"item": "new-blue", "removed": True,
                                                     "n_items": n}
        rec = c.post("/recommend", json={"user": "u0", "k": n}).json()["items"]
        assert "new-blue" not in [i["item"] for i in rec] and len(rec) == n


def test_concurrent_requests_share_one_batched_call(runs, joint_pred, tmp_path):
    settings = ServeSettings(catalogue=str(tmp_path / "c.jsonl"), max_wait_ms=200,
                             wait_gap_ms=0, max_batch=64, beam=6)  # a fixed wait: one batch
    app = create_app(runs["joint"], settings, joint_pred)
    users = [f"u{i}" for i in range(8)]

    async def fire():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            return await asyncio.gather(*(c.post("/recommend", json={"user": u, "k": 3})
                                          for u in users))

    out = asyncio.run(fire())
    assert all(r.status_code == 200 for r in out)
    alone = joint_pred.recommend(users, 3, 6)
    assert [[i["item"] for i in r.json()["items"]] for r in out] == \
        [[h.item for h in row] for row in alone]
    batch = app.state.serve.metrics.batch.labels("recommend")
    assert batch._sum.get() == 8 and sum(b.get() for b in batch._buckets) == 1  # one call
    unbatched = create_app(runs["joint"], ServeSettings(batching=False, beam=6,
                                                        catalogue=str(tmp_path / "d.jsonl")),
                           joint_pred)
    app = unbatched
    out2 = asyncio.run(fire())
    assert [[i["item"] for i in r.json()["items"]] for r in out2] == \
        [[i["item"] for i in r.json()["items"]] for r in out]
    assert [i["score"] for r in out2 for i in r.json()["items"]] == pytest.approx(
        [i["score"] for r in out for i in r.json()["items"]], abs=1e-4)
    assert sum(b.get() for b in app.state.serve.metrics.batch.labels("recommend")._buckets) == 8


def test_a_bad_request_does_not_fail_its_batch(runs, joint_pred, tmp_path):
    settings = ServeSettings(catalogue=str(tmp_path / "c.jsonl"), max_wait_ms=200,
                             wait_gap_ms=0, beam=6)
    app = create_app(runs["joint"], settings, joint_pred)
    bodies = [{"user": "u0"}, {"query": "red"}, {"user": "u1", "query": "blue " * 3}]

    async def fire():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            return await asyncio.gather(*(c.post("/search", json=b) for b in bodies))

    out = asyncio.run(fire())
    assert [r.status_code for r in out] == [422, 200, 200]


def test_predictor_from_run_is_what_the_app_loads(runs):
    app = create_app(runs["joint"], ServeSettings(catalogue="/dev/null/none"))
    assert isinstance(app.state.serve.predictor, Predictor)


HOT_CASES = [  # (path, body) sent to both servers; raw bytes are sent as they are
    ("/recommend", {"user": "u0", "k": 3}),
    ("/recommend", {"user": "u0", "k": 3, "exclude_seen": True}),
    ("/recommend", {"history": [{"behaviour": "rec_click", "item": "i1"}], "k": 2}),
    ("/recommend", {"user": "nobody", "k": 3}),
    ("/recommend", {"user": "u0", "k": 99}),
    ("/recommend", {"user": "u0", "k": "three"}),
    ("/recommend", {"k": 3}),
    ("/recommend", {"user": "u0", "k": 3, "history": [{"behaviour": "rec_click"}]}),
    ("/feed", {"user": "u1", "k": "2"}),
    ("/search", {"query": "red lipstick", "user": "u1", "k": 4}),
    ("/search", {"query": "   ", "k": 4}),
    ("/search", {"query": "x" * 41, "k": 4}),
    ("/search", {"query": "red", "k": 4, "fuse_bm25": 0.05}),
    ("/search", {"user": "u1"}),
    ("/suggest", {"user": "u2", "k": 3}),
    ("/suggest", {"trigger_item": "i5", "k": 2}),
    ("/suggest", {"trigger_item": "nope", "k": 2}),
    ("/suggest", {"user": "u2", "k": 0}),
    ("/recommend", b'{"user": "u0", "k": 3'),
    ("/recommend", b'[1, 2]'),
    ("/recommend", b''),
    ("/search", b'{"query": "\\ud800", "k": 2}'),
]


def test_hot_routes_answer_as_the_routed_endpoints(runs, joint_pred, tmp_path):
    """The hot endpoints' fast answers (before FastAPI's routing) and the routed ones agree,
    status and body, on good and bad requests alike (request ids aside)."""
    def settings(name, hot):
        return ServeSettings(catalogue=str(tmp_path / f"{name}.jsonl"), max_query_chars=40,
                             max_k=8, beam=6, suggest_beam=5, hot_routes=hot)

    hot_app = create_app(runs["joint"], settings("a", True), joint_pred)
    routed_app = create_app(runs["joint"], settings("b", False), joint_pred)
    with TestClient(hot_app) as hot, TestClient(routed_app) as routed:
        for path, body in HOT_CASES:
            answers = []
            for c in (hot, routed):
                if isinstance(body, bytes):
                    r = c.post(path, content=body, headers={"content-type": "application/json"})
                else:
                    r = c.post(path, json=body)
                data = r.json()
                if isinstance(data, dict):
                    data.pop("request_id", None)
                answers.append((r.status_code, data))
            assert answers[0] == answers[1], (path, body)
            assert answers[0][0] < 500, (path, body, answers[0])
        # the fast path did answer: with the FastAPI routes gone, good bodies still get theirs
        # and bad ones (left to the routes) now find none
        hot_app.router.routes[:] = [r for r in hot_app.router.routes
                                    if getattr(r, "path", "") not in ("/recommend", "/suggest")]
        assert hot.post("/recommend", json={"user": "u0", "k": 3}).status_code == 200
        assert hot.post("/suggest", json={"user": "u2", "k": 3}).status_code == 200
        assert hot.post("/recommend", json={"user": "u0", "k": "x"}).status_code == 404
        assert hot.post("/suggest", json={"user": "u2", "k": "x"}).status_code == 404


@pytest.mark.parametrize("hot", [True, False])
def test_a_closed_batcher_answers_503_not_500(runs, joint_pred, tmp_path, hot):
    settings = ServeSettings(catalogue=str(tmp_path / "c.jsonl"), beam=6, hot_routes=hot)
    app = create_app(runs["joint"], settings, joint_pred)
    asyncio.run(app.state.serve.batcher.close())
    with TestClient(app) as c:
        r = c.post("/recommend", json={"user": "u0", "k": 3})
    assert r.status_code == 503 and r.json() == {"error": "the server is shutting down",
                                                 "field": None}
