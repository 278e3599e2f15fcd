"""GET /users and GET /users/{id}/history against the toy joint world (8 users, 11 events
each: 3 rec clicks, 3 searches with their clicks, then the valid and test rec clicks)."""

import pytest
from fastapi.testclient import TestClient

from onefeed.serve import ServeSettings, create_app


@pytest.fixture(scope="module")
def client(runs, joint_pred, tmp_path_factory):
    cat = tmp_path_factory.mktemp("browse") / "catalogue.jsonl"
    with TestClient(create_app(runs["joint"], ServeSettings(catalogue=str(cat)),
                               joint_pred)) as c:
        yield c


def test_users_pages(client):
    first = client.get("/users", params={"limit": 3}).json()
    assert first == {"users": [{"user": f"u{i}", "events": 11} for i in range(3)],
                     "total": 8, "limit": 3, "offset": 0}
    last = client.get("/users", params={"limit": 3, "offset": 6}).json()
    assert [u["user"] for u in last["users"]] == ["u6", "u7"]
    assert client.get("/users", params={"offset": 8}).json()["users"] == []
    assert len(client.get("/users").json()["users"]) == 8  # default limit 50


def test_history_is_the_logged_events_oldest_first(client, joint_pred):
    out = client.get("/users/u0/history").json()
    assert out["user"] == "u0" and out["total"] == 11 and len(out["events"]) == 11
    ev = joint_pred.ds.events.filter(joint_pred.ds.events["user"] == 0).sort("position")
    assert [e["position"] for e in out["events"]] == list(range(11))
    assert [e["behaviour"] for e in out["events"]] == ev["behaviour"].to_list()
    assert [e["split"] for e in out["events"]][-2:] == ["valid", "test"]
    q = out["events"][1]
    assert q["behaviour"] == "search_query" and q["item"] is None and q["title"] is None \
        and q["query"]
    click = out["events"][2]  # the search's click: the next item of the queried colour
    assert click["behaviour"] == "search_click" and click["query"] == q["query"]
    assert click["title"] == joint_pred.titles[joint_pred.index[click["item"]]]
    assert q["query"].split()[0] in click["title"]
    tail = client.get("/users/u0/history", params={"limit": 2}).json()
    assert tail["total"] == 11 and tail["events"] == out["events"][-2:]


BAD = [  # (path, status, field, message part)
    ("/users?limit=0", 422, "limit", "greater than or equal to 1"),
    ("/users?limit=1001", 422, "limit", "less than or equal to 1000"),
    ("/users?limit=ten", 422, "limit", "valid integer"),
    ("/users?offset=-1", 422, "offset", "greater than or equal to 0"),
    ("/users/nobody/history", 404, "user_id", "unknown user 'nobody'"),
    ("/users/a%2Fb/history", 404, "user_id", "unknown user 'a/b'"),
    ("/users/%0A0/history", 404, "user_id", "unknown user '\\n0'"),  # found by the fuzz
    ("/users//history", 404, "user_id", "unknown user ''"),
    ("/users/u0/history?limit=0", 422, "limit", "greater than or equal to 1"),
]


@pytest.mark.parametrize("path,status,field,message", BAD, ids=[b[0] for b in BAD])
def test_bad_browse_requests(client, path, status, field, message):
    r = client.get(path)
    assert r.status_code == status, r.text
    assert r.json()["field"] == field and message in r.json()["error"], r.json()


def test_demo_page_and_its_files_are_served(client):
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert '<script src="/static/demo.js"' in page.text
    for name, kind in (("demo.js", "javascript"), ("demo.css", "text/css")):
        r = client.get(f"/static/{name}")
        assert r.status_code == 200 and kind in r.headers["content-type"]
    assert "innerHTML" not in client.get("/static/demo.js").text
