"""POST /suggest with a trigger_item on a server given a OneBar artifact: the content-grounded
suggester's answer (the same as TriggerSuggester's), [REJECT] as rejected=true with no query,
unknown ids as 404s naming the field; without a trigger_item the NSQP path is unchanged."""

import importlib.util
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from onefeed.onebar.serving import TriggerSuggester
from onefeed.predict import PredictError
from onefeed.serve import ServeSettings, create_app

_spec = importlib.util.spec_from_file_location(
    "_onebar_world", Path(__file__).parents[1] / "onebar" / "world.py")
world = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(world)


@pytest.fixture(scope="module")
def onebar(tmp_path_factory):
    root = tmp_path_factory.mktemp("serve-onebar")
    world.build_world(root)
    return root / "onebar"


@pytest.fixture(scope="module")
def client(runs, joint_pred, onebar, tmp_path_factory):
    cat = tmp_path_factory.mktemp("app-onebar") / "catalogue.jsonl"
    settings = ServeSettings(catalogue=str(cat), beam=6, suggest_beam=5, onebar=str(onebar))
    with TestClient(create_app(runs["joint"], settings, joint_pred)) as c:
        yield c


def test_trigger_suggest_is_the_onebar_answer(client, onebar):
    direct = TriggerSuggester.from_dir(onebar, "anchor-cascade")
    run = direct.run
    items = run.dataset().items.sort("item")["item_id"].to_list()
    planted = {items[i] for i in run.planted.tolist()}
    answered = 0
    for item in items[:20]:
        r = client.post("/suggest", json={"trigger_item": item, "user": "u1", "k": 4})
        assert r.status_code == 200, r.text
        body = r.json()
        want = direct.suggest(item, "u1", 4)
        assert body["source"] == "onebar:anchor-cascade"
        assert body["queries"] == want.queries and body["rejected"] == want.reject
        answered += bool(body["queries"])
        if item in planted:
            assert body["rejected"] and body["queries"] == []
    assert answered > 0
    for item in planted:
        body = client.post("/suggest", json={"trigger_item": item, "k": 4}).json()
        assert body["rejected"] and body["queries"] == []


def test_trigger_suggest_errors_name_the_field(client):
    r = client.post("/suggest", json={"trigger_item": "no-such-item", "k": 4})
    assert r.status_code == 404 and r.json()["field"] == "trigger_item"
    assert "no-such-item" in r.json()["error"]
    items_ok = "i0"
    r = client.post("/suggest", json={"trigger_item": items_ok, "user": "nobody", "k": 4})
    assert r.status_code == 404 and r.json()["field"] == "user"
    r = client.post("/suggest", json={"trigger_item": items_ok, "k": 4,
                                      "history": [{"behaviour": "rec_click", "item": "i1"}]})
    assert r.status_code == 422 and r.json()["field"] == "history"


def test_without_a_trigger_the_next_query_head_answers(client):
    body = client.post("/suggest", json={"user": "u0", "k": 3}).json()
    assert body["source"] == "nsqp" and body["rejected"] is False


def test_a_bad_onebar_dir_stops_the_start(runs, joint_pred, tmp_path):
    settings = ServeSettings(catalogue=str(tmp_path / "c.jsonl"), onebar=str(tmp_path / "none"))
    with pytest.raises(PredictError, match="onebar"):
        create_app(runs["joint"], settings, joint_pred)
