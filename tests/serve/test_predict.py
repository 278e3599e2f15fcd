"""``onefeed.predict.Predictor``: the same answers as the code it wraps, explicit histories,
rec-only runs, catalogue updates and their journal."""

import json

import numpy as np
import torch
import pytest

from onefeed.predict import (Catalogue, CatalogueConflict, Context, Event, Predictor,
                             UnknownItem, UnknownUser, Unsupported)


def _ids(hits):
    return [h.item for h in hits]


def test_joint_answers_match_joint_predictor(joint_pred):
    p = joint_pred
    users = ["u0", "u3", "u5"]
    idx = np.array([p.user(u) for u in users])
    for exclude in (False, True):
        ours = p.recommend(users, 4, 6, exclude_seen=exclude, split="test")
        ref = p.joint.recommend(idx, "test", 4, 6, exclude_seen=exclude)
        assert [_ids(h) for h in ours] == [[p.item_ids[i] for i in r if i >= 0] for r in ref]
    assert p.suggest(users, 3, 5, split="test") == p.joint.generate_queries(idx, "test", 3, 5)
    q = p.joint.jd.query_text[0]  # a query the table knows: JointPredictor.search can take it
    ours = p.search([q] * 3, users, 4, 6, split="test")
    ref = p.joint.search(idx, [q] * 3, "test", 4, 6)
    assert [_ids(h) for h in ours] == [[p.item_ids[i] for i in r if i >= 0] for r in ref]


def test_explicit_history_equals_the_logged_one(joint_pred):
    p = joint_pred
    jd, u = p.joint.jd, p.user("u2")
    lo, hi = jd.user_start[u], jd.user_start[u + 1]
    names = {1: "rec_click", 2: "search_query", 3: "search_click"}
    events = [Event(names[int(b)], p.item_ids[i] if i >= 0 else None,
                    jd.query_text[q] if q >= 0 else None)
              for b, i, q in zip(jd.behaviour[lo:hi], jd.item[lo:hi], jd.query[lo:hi])]
    by_user = p.recommend(["u2"], 5, 6)[0]
    by_events = p.recommend([events], 5, 6)[0]
    assert _ids(by_user) == _ids(by_events)
    assert [h.score for h in by_user] == pytest.approx([h.score for h in by_events], abs=1e-5)
    # scores are log-probs, best first; the user + nothing extra is the user alone
    assert [h.score for h in by_user] == sorted((h.score for h in by_user), reverse=True)
    assert _ids(p.recommend([Context("u2", ())], 5, 6)[0]) == _ids(by_user)
    # a new query text (not in any table) still searches
    assert len(p.search(["green widget never typed"], [events], 3, 6)[0]) == 3


@pytest.mark.parametrize("max_items", [0, 1, 2, 50])
def test_bare_user_rows_equal_the_per_user_history(joint_pred, monkeypatch, max_items):
    """A batch of bare user ids reads the joint data directly (``_logged_rows``): the same
    events as ``_user_flat``, queries kept between the last ``max_items`` item events."""
    p = joint_pred
    monkeypatch.setattr(p, "max_items", max_items)
    users = np.arange(len(p.joint.jd.user_start) - 1)
    rows = p._logged_rows(users)
    assert rows.shape == (len(users), p.max_len)
    for u, row in zip(users, rows):
        flat = p._user_flat(int(u), "all", p.max_len)
        assert row.tolist() == [-1] * (p.max_len - len(flat)) + flat.tolist()
    # and the answers match the general path (a Context with no events takes it)
    names = sorted(p.user_index)[:4]
    fast = p.recommend(names, 4, 6)
    slow = p.recommend([Context(n, ()) for n in names], 4, 6)
    assert [_ids(h) for h in fast] == [_ids(h) for h in slow]


def test_bad_rows_name_the_field(joint_pred):
    with pytest.raises(UnknownUser, match="user: unknown user 'nobody'"):
        joint_pred.recommend(["nobody"], 3)
    with pytest.raises(UnknownItem, match="history: unknown item 'zz'"):
        joint_pred.recommend([[Event("rec_click", "zz")]], 3)


def test_rec_only_run_answers_what_it_can(runs):
    from onefeed.cli.model import recommend_items

    p = Predictor.from_run(runs["rec"])
    assert p.kind == "rec" and p.describe()["tasks"] == ["recommend", "score"]
    got = p.recommend(["u1"], 4, 20)[0]
    cli, _ = recommend_items(runs["rec"], "u1", 4, 20, False)
    assert _ids(got) == [r["item_id"] for r in cli["items"]]
    with pytest.raises(Unsupported, match="suggest: .* is a recommendation-only run"):
        p.suggest(["u1"], 3)
    with pytest.raises(Unsupported, match="search: .* is a recommendation-only run"):
        p.search(["red"], ["u1"], 3)
    scores = p.score(["u1"], [[got[0].item, got[1].item]])
    assert scores[0] == pytest.approx([got[0].score, got[1].score], abs=1e-4)


def test_score_is_the_beam_score(joint_pred):
    top = joint_pred.recommend(["u4"], 3, 6)[0]
    s = joint_pred.score(["u4"], [_ids(top)])[0]
    assert s == pytest.approx([h.score for h in top], abs=1e-4)


def test_items_add_remove_and_replay(runs, tmp_path):
    p = Predictor.from_run(runs["joint"])
    cat = Catalogue(tmp_path / "cat.jsonl")
    assert p.attach(cat) == 0
    n = p.n_live
    out = p.add_and_log("new-red", "Title: red lipstick number 99; Brand: acme", "Red 99")
    codes = out["codes"]
    table = p.joint.layout.codes
    assert len(np.unique(table, axis=0)) == len(table)  # identifiers stay unique
    assert table[-1].tolist() == codes and p.n_live == n + 1
    # recommendable and searchable at once: it is in both tries and lists over all items
    everything = p.n_live
    assert "new-red" in _ids(p.recommend(["u0"], everything, everything)[0])
    assert "new-red" in _ids(p.search(["red lipstick"], [None], everything, everything)[0])
    assert "new-red" in _ids(p.search(["red lipstick"], [None], everything, fuse_bm25=0.1,
                                      bm25_depth=everything)[0])
    with pytest.raises(CatalogueConflict, match="'new-red' is already in the catalogue"):
        p.add_and_log("new-red", "again")
    p.remove_and_log("i3")
    assert "i3" not in _ids(p.recommend(["u0"], everything, everything)[0])
    with pytest.raises(UnknownItem, match="removed from the catalogue"):
        p.remove_item("i3")
    # a restart: a fresh predictor replays the journal to the same catalogue
    q = Predictor.from_run(runs["joint"])
    assert q.attach(Catalogue(tmp_path / "cat.jsonl")) == 2
    assert q.joint.layout.codes[-1].tolist() == codes and "i3" not in _ids(
        q.recommend(["u0"], everything, everything)[0])
    assert [json.loads(x)["op"] for x in (tmp_path / "cat.jsonl").read_text().splitlines()] \
        == ["add", "remove"]
    # another process's change arrives through sync; a torn last line waits for its end
    with open(tmp_path / "cat.jsonl", "a") as fh:
        fh.write(json.dumps({"op": "remove", "item": "i4"}) + "\n" + '{"op": "rem')
    assert p.sync() == 1 and "i4" not in p.tries["rec"]
    assert p.sync() == 0


def test_rec_only_items(runs, tmp_path):
    p = Predictor.from_run(runs["rec"])
    p.attach(Catalogue(tmp_path / "c.jsonl"))
    p.add_and_log("fresh", "Title: blue cream number 50", "Fresh")
    assert "fresh" in _ids(p.recommend([[Event("rec_click", "fresh")]], p.n_live, p.n_live)[0])


def test_cached_predictor_answers_equal_fresh_ones(runs):
    fresh, cached = Predictor.from_run(runs["joint"]), Predictor.from_run(runs["joint"])
    cache = cached.cache_states(1000)
    users = ["u0", "u3", "u5", "u1"]

    def ids(hits):
        return [(h.item, round(h.score, 4)) for h in hits]

    for _ in range(2):  # first call fills, second reads
        for exclude in (False, True):
            got = cached.recommend(users, 4, 6, exclude_seen=exclude)
            want = fresh.recommend(users, 4, 6, exclude_seen=exclude)
            assert [ids(h) for h in got] == [ids(h) for h in want]
        assert cached.suggest(users, 3, 5) == fresh.suggest(users, 3, 5)
    assert cache.hits > 0 and cache.misses > 0
    assert ("NRIP", ("user", cached.user("u3"), "all")) in cache.states  # logged: by user
    # an explicit history is keyed by its content: one more event is a different state
    ctx = Context("u2", (Event("rec_click", cached.item_ids[0]),))
    hits_before = cache.hits
    assert ids(cached.recommend([ctx], 4, 6)[0]) == ids(fresh.recommend([ctx], 4, 6)[0])
    assert cache.hits == hits_before
    assert ids(cached.recommend([ctx], 4, 6)[0]) == ids(fresh.recommend([ctx], 4, 6)[0])
    assert cache.hits == hits_before + 1
    # search: the history's keys / values are cached, the query is encoded on top of them
    q, q2 = cached.joint.jd.query_text[0], "red polish"
    for query in (q, q2, q):
        got = cached.search([query, query], ["u0", Context("u1", (Event("rec_click", "i2"),))],
                            4, 6)
        assert [ids(h) for h in got] == [ids(h) for h in fresh.search([query, query],
                                         ["u0", Context("u1", (Event("rec_click", "i2"),))],
                                         4, 6)]
    assert ("NSIP-history", ("user", cached.user("u0"), "all")) in cache.states
    # fused search and scoring read the same cached histories
    for _ in range(2):
        assert [ids(h) for h in cached.search([q], ["u3"], 4, 6, fuse_bm25=0.1)] == \
            [ids(h) for h in fresh.search([q], ["u3"], 4, 6, fuse_bm25=0.1)]
        for query in (None, [q, q]):
            got = cached.score(["u3", "u5"], [["i1", "i2"], ["i3"]], query)
            assert np.allclose(got, fresh.score(["u3", "u5"], [["i1", "i2"], ["i3"]], query),
                               atol=1e-5)
    assert ("NSIP-history", ("user", cached.user("u5"), "all")) in cache.states
    # u1 came with extra events: its row is encoded whole, never kept under its user
    assert ("NSIP-history", ("user", cached.user("u1"), "all")) not in cache.states
    # a catalogue change forgets every state (a history may read differently now)
    cached.remove_item(cached.item_ids[1])
    assert len(cache) == 0
    assert np.isfinite([h.score for h in cached.recommend(["u0"], 4, 6)[0]]).all()


def test_rec_only_runs_have_no_history_cache(runs):
    assert Predictor.from_run(runs["rec"]).cache_states(10) is None


def test_queries_from_2k_hypotheses_first_equal_the_full_set(joint_pred, monkeypatch):
    """NSQP decodes the top 2k hypotheses first and only rows they give fewer than k distinct
    strings again with all of them: the answers equal one pass over all hypotheses."""
    from onefeed.evaluation import joint as ej

    jp = joint_pred.joint
    users = [str(u) for u in sorted(joint_pred.user_index)]
    mini, idx = joint_pred._joint_rows(users, "all")
    calls = []
    real = jp._text_beam

    def spy(cond, beam, n_hyp, *rest):
        calls.append((len(cond), n_hyp))
        return real(cond, beam, n_hyp, *rest)

    monkeypatch.setattr(jp, "_text_beam", spy)
    strings = jp._strings

    def fewer(tokens, scores, k):  # as if many hypotheses decoded to strings already taken
        kept = [(t, s) for t, s in zip(tokens, scores) if len(t) and t[0] % 3 == 0]
        return strings([t for t, _ in kept], [s for _, s in kept], k)

    for k, beam in [(1, 5), (3, 5), (8, 4), (12, 20)]:
        calls.clear()
        got = jp.generate_from(idx, k, beam, 6, jd=mini)
        full = ej.hypotheses(k, beam, 6)
        with torch.no_grad():  # as generate_from decodes
            tokens, scores = real(jp._states(idx, "NSQP", mini, None), beam, full, 6, 0.0)
        words = torch.where(tokens > 0, jp.model.text_vocab[tokens], 0)
        want = [jp._strings(t, s, k) for t, s in zip(words.tolist(), scores.tolist())]
        assert got == want, (k, beam)
        assert calls[0] == (len(users), min(full, 2 * k))
        if len(calls) > 1:  # the second pass decodes only the short rows, with every hypothesis
            assert calls[1][1] == full and calls[1][0] < len(users)
    monkeypatch.setattr(jp, "_strings", fewer)  # now rows come up short after 2k
    calls.clear()
    got = jp.generate_from(idx, 3, 5, 6, jd=mini)
    with torch.no_grad():
        tokens, scores = real(jp._states(idx, "NSQP", mini, None), 5, ej.hypotheses(3, 5, 6), 6,
                              0.0)
    words = torch.where(tokens > 0, jp.model.text_vocab[tokens], 0)
    assert got == [fewer(t, s, 3) for t, s in zip(words.tolist(), scores.tolist())]
    assert len(calls) == 2 and calls[1][1] == ej.hypotheses(3, 5, 6)
