"""Catalogue updates on a served UniSearch run: cold-start codes from the item encoder alone,
the item in the LearnedIndex trie at once (searched, scored by id), the journal replaying the
recorded code tuples, removal freeing the slot, and the same through the API."""

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient

from onefeed.predict import (Catalogue, CatalogueConflict, PredictError, Predictor,
                             UnknownItem)
from onefeed.serve import ServeSettings, create_app

# on the session's tiny run "zebra sparkle" gets learned codes of its own and is the query's
# top hit; "green shampoo" shares the crowded code tuple of the base items (a high slot)
ZEBRA, GREEN = "zebra sparkle", "green shampoo"


def _ids(hits):
    return [h.item for h in hits]


def _live_codes(p, item_id):
    return p.model[1].trie.codes_of(p.index[item_id])


def test_an_added_item_gets_encoder_codes_and_is_searched_and_scored(unisearch_run):
    from onefeed.tasks.unisearch import word_ids

    p = Predictor.from_run(unisearch_run)
    model, index = p.model
    n = p.n_live
    assert p.encode_item(ZEBRA)[:-1] == model.assign_codes(
        torch.as_tensor(word_ids([ZEBRA], model.cfg.max_item_words)))[0].tolist()
    out = p.add_item("zebra", ZEBRA, "Zebra")
    assert out["index"] == n and len(out["codes"]) == index.n_levels + 1
    assert list(index.trie.codes_of(n)) == out["codes"] and p.n_live == n + 1
    assert p.describe()["n_added"] == 1
    hits = p.search([ZEBRA], [None], k=3, beam=p.n_live)[0]
    assert "zebra" in _ids(hits) and hits[_ids(hits).index("zebra")].title == "Zebra"
    scores = p.score([None], [_ids(hits)], queries=[ZEBRA])[0]  # candidates by id
    assert np.allclose(scores, [h.score for h in hits], atol=1e-4)
    # a second item under the base items' crowded code tuple takes the next free slot
    green = p.add_item("green", GREEN)
    key = tuple(green["codes"][:-1])
    assert green["codes"][-1] == len(index.members[key]) - 1
    assert "green" in _ids(p.search([GREEN], [None], k=p.n_live, beam=p.n_live)[0])
    assert "green" in _ids(p.search([GREEN], [None], k=3, fuse_bm25=0.5)[0])  # BM25 knows it
    with pytest.raises(CatalogueConflict, match="'zebra' is already") as exc:
        p.add_item("zebra", "anything")
    assert exc.value.field == "item"
    with pytest.raises(PredictError, match="text is empty") as exc:
        p.add_item("blank", "  ")
    assert exc.value.field == "text"
    taken = [int(c) for c in index.trie.codes_of(0)]
    with pytest.raises(CatalogueConflict, match="already belong to item 'i0'") as exc:
        p.add_item("dup", "anything", codes=taken)  # a replayed tuple someone else holds
    assert exc.value.field == "codes" and "dup" not in p.index
    with pytest.raises(PredictError, match="do not fit"):
        p.add_item("dup", "anything", codes=taken[:-1])


def test_journal_replay_remove_and_readd(unisearch_run, tmp_path):
    path = tmp_path / "cat.jsonl"
    p = Predictor.from_run(unisearch_run)
    p.attach(Catalogue(path))
    n = p.n_live
    z = p.add_and_log("zebra", ZEBRA, "Zebra")
    g = p.add_and_log("green", GREEN)
    q = Predictor.from_run(unisearch_run)  # a restart
    assert q.attach(Catalogue(path)) == 2 and q.n_live == n + 2
    for item, out in (("zebra", z), ("green", g)):
        assert list(_live_codes(q, item)) == out["codes"]
        assert torch.allclose(q.model[1].vectors[q.index[item]],
                              p.model[1].vectors[p.index[item]])
    for query in (ZEBRA, GREEN):
        a = p.search([query], [None], k=5, beam=n + 2)[0]
        b = q.search([query], [None], k=5, beam=n + 2)[0]
        assert _ids(a) == _ids(b) and np.allclose([h.score for h in a], [h.score for h in b])
    assert "zebra" in _ids(q.search([ZEBRA], [None], k=3, beam=n + 2)[0])

    p.remove_and_log("zebra")
    assert p.n_live == n + 1 and "zebra" not in _ids(p.search([ZEBRA], [None], k=n + 1,
                                                             beam=n + 1)[0])
    assert p.score([None], [["zebra"]], queries=[ZEBRA])[0, 0] == -np.inf
    with pytest.raises(UnknownItem, match="removed from the catalogue"):
        p.remove_item("zebra")
    assert q.sync() == 1 and "zebra" not in _ids(q.search([ZEBRA], [None], k=n + 1,
                                                          beam=n + 1)[0])
    again = p.add_and_log("zebra", ZEBRA, "Zebra")  # re-added: a new index, its slot reused
    assert again["index"] != z["index"] and again["codes"] == z["codes"]
    assert "zebra" in _ids(p.search([ZEBRA], [None], k=3, beam=n + 2)[0])
    r = Predictor.from_run(unisearch_run)
    assert r.attach(Catalogue(path)) == 4 and r.n_live == n + 2
    assert list(_live_codes(r, "zebra")) == again["codes"]
    assert list(_live_codes(r, "green")) == g["codes"]
    assert q.sync() == 1 and list(_live_codes(q, "zebra")) == again["codes"]


def _searched(c, query, k):
    """POST /search's items (a UniSearch run answers from the query alone)."""
    r = c.post("/search", json={"query": query, "k": k})
    assert r.status_code == 200, r.text
    assert r.json()["model"] == "unisearch"
    return [i["item"] for i in r.json()["items"]]


def test_items_through_the_api_on_a_unisearch_run(unisearch_run, tmp_path):
    settings = ServeSettings(catalogue=str(tmp_path / "cat.jsonl"), beam=20)
    with TestClient(create_app(unisearch_run, settings)) as c:
        n = c.get("/health").json()["n_items"]
        r = c.post("/items", json={"item": "zebra", "text": ZEBRA, "title": "Zebra"})
        assert r.status_code == 201 and r.json()["n_items"] == n + 1
        codes = r.json()["codes"]
        assert len(codes) == 3 and "zebra" in _searched(c, ZEBRA, 3)
        r = c.post("/items", json={"item": "zebra", "text": "again"})
        assert r.status_code == 409 and r.json()["field"] == "item"
        r = c.post("/items", json={"item": "blank", "text": " "})
        assert 400 <= r.status_code < 500 and r.json()["field"] == "text"
    with TestClient(create_app(unisearch_run, settings)) as c:  # a restart
        assert c.get("/health").json()["n_items"] == n + 1
        assert list(_live_codes(c.app.state.serve.predictor, "zebra")) == codes
        assert "zebra" in _searched(c, ZEBRA, 3)
        d = c.delete("/items/zebra")
        assert d.status_code == 200 and d.json() == {"item": "zebra", "removed": True,
                                                     "n_items": n}
        assert "zebra" not in _searched(c, ZEBRA, n)
        assert c.delete("/items/zebra").status_code == 404
        r = c.post("/items", json={"item": "zebra", "text": ZEBRA})
        assert r.status_code == 201 and r.json()["codes"] == codes
        assert "zebra" in _searched(c, ZEBRA, 3)
