"""The schema fuzz: its contract check on hand-made responses, that it catches a 5xx, and a few
schemathesis examples per endpoint against a real ``onefeed serve`` (no 5xx, every 4xx names a
field)."""

import random
from types import SimpleNamespace

import pytest
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from onefeed.serve import fuzz
from onefeed.serve.loadgen import Server


@pytest.mark.parametrize("status,body,why", [
    (200, b"{}", None),
    (201, b"not even json", None),  # only errors are checked
    (422, b'{"error": "k: too big", "field": "k"}', None),
    (404, b'{"error": "user: unknown user", "field": "user"}', None),
    (500, b'{"error": "internal error: KeyError"}', "server error 500"),
    (503, b"", "server error 503"),
    (404, b'{"error": "Not Found", "field": null}', "names no field: 'Not Found'"),
    (422, b'{"error": "body: bad", "field": ""}', "names no field"),
    (400, b"<html>bad</html>", "400 body is not JSON"),
    (400, b'{"detail": "bad"}', "no 'error' string"),
    (409, b'["error"]', "no 'error' string"),
])
def test_problem(status, body, why):
    got = fuzz.problem(status, body)
    assert (got is None) if why is None else (why in got), got


def test_config_is_checked():
    with pytest.raises(ValueError, match="examples: 0; at least 1"):
        fuzz.FuzzConfig(examples=0)
    with pytest.raises(ValueError, match=r"modes: \['sideways'\]"):
        fuzz.FuzzConfig(modes=("sideways",))


def _case(path, body, path_parameters=None):
    return SimpleNamespace(operation=SimpleNamespace(path=path), body=body,
                           path_parameters=path_parameters or {})


def test_known_ids_make_requests_reach_the_model():
    known = fuzz.KnownIds(users=("u0",), items=("i3",), max_k=8)
    body = {"history": [{"behaviour": "rec_click", "item": "zz"}, {"behaviour": "search_query",
                                                                    "query": "x"}], "k": 900}
    case = _case("/recommend", body)
    assert known.realise(case, random.Random(0), 1.0)
    assert body["user"] == "u0" and body["history"][0]["item"] == "i3"
    assert "item" not in body["history"][1] and 1 <= body["k"] <= 8
    suggest = _case("/suggest", {"user": None, "trigger_item": "q", "k": 3})
    known.realise(suggest, random.Random(0), 1.0)
    assert suggest.body == {"user": "u0", "trigger_item": "i3", "k": 3}
    hist = _case("/users/{user_id}/history", None, {"user_id": "\n"})
    known.realise(hist, random.Random(0), 1.0)
    assert hist.path_parameters == {"user_id": "u0"}
    for path, kept in (("/items", {"item": "new", "text": "t"}),  # a new item id stays new
                       ("/recommend", True), ("/admin/reload", {"run": "x"})):  # not a body
        case = _case(path, kept.copy() if isinstance(kept, dict) else kept)
        assert not known.realise(case, random.Random(0), 1.0) and case.body == kept
    events = [{"user": "x", "kind": "click", "timestamp": 1.0},
              {"user": "x", "kind": "dwell", "timestamp": 2.0, "item": "q"},
              {"user": "x", "kind": "query", "timestamp": 3.0}, {"kind": "look"}, 7]
    feedback = _case("/feedback", {"events": events})
    assert known.realise(feedback, random.Random(0), 1.0)
    assert events[0] == {"user": "u0", "kind": "click", "timestamp": 1.0, "item": "i3"}
    assert events[1]["item"] == "i3" and 0 <= events[1]["dwell_ms"] <= 60000
    assert events[2]["query"] and "item" not in events[2]
    assert events[3:] == [{"kind": "look"}, 7]  # not a kind it knows: left for a 422
    untouched = {"user": "zz", "k": 900}
    assert not known.realise(_case("/search", untouched), random.Random(0), 0.0)
    assert untouched == {"user": "zz", "k": 900}


def test_it_catches_a_server_error():
    import schemathesis

    class Body(BaseModel):
        n: int

    app = FastAPI()

    @app.post("/half")
    async def half(body: Body) -> JSONResponse:  # every even n: the bug answers 500
        if body.n % 2 == 0:
            return JSONResponse({"error": "internal error"}, status_code=500)
        return JSONResponse({"half": body.n // 2})

    schema = schemathesis.openapi.from_asgi("/openapi.json", app, config=schemathesis.Config())
    (result,) = fuzz.run(schema, fuzz.FuzzConfig(examples=30, modes=("positive",)))
    assert result.label == "POST /half" and result.requests == 30
    assert result.statuses.get("500", 0) > 0 and result.n_failures == result.statuses["500"]
    assert result.failures[0]["problem"].startswith("server error 500")
    assert "curl -X POST" in result.failures[0]["request"]


@pytest.fixture(scope="module")
def server(runs, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fuzz")
    with Server(runs["joint"], ["beam=4", "suggest_beam=3", f"catalogue={tmp / 'cat.jsonl'}",
                                f"feedback={tmp / 'feedback.sqlite'}"]) as s:
        yield s


def test_every_endpoint_keeps_the_error_contract(server):
    schema = fuzz.load_schema(server.url)
    labels = [op.label for op in fuzz.operations(schema)]
    assert {"POST /recommend", "POST /search", "GET /users",
            "GET /users/{user_id}/history", "DELETE /items/{item_id}"} <= set(labels)
    skip = fuzz.unavailable()
    known = fuzz.known_ids(server.url)
    assert known.users[:2] == ("u0", "u1") and "i1" in known.items
    results = fuzz.run(schema, fuzz.FuzzConfig(examples=6, seed=1, exclude=tuple(skip)),
                       server.url, known)
    assert sorted(r.label for r in results) == sorted(set(labels) - set(skip))
    assert all(r.requests >= 1 for r in results)
    assert sum(r.statuses.get("200", 0) for r in results if r.label == "POST /recommend") > 0
    failures = [(r.label, f["problem"], f["request"]) for r in results for f in r.failures]
    assert failures == []
    assert fuzz.summary(results)["server_errors"] == 0
