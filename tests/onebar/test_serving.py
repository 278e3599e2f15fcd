"""TriggerSuggester: ids -> indices, history, the exposure guard, clear errors."""

from pathlib import Path
import importlib.util

import pytest

from onefeed.onebar.baselines import AnchorCascade
from onefeed.onebar.evidence import parse
from onefeed.onebar.labels import REJECT, is_blocked
from onefeed.onebar.serving import SuggestError, SuggestResult, TriggerSuggester

_spec = importlib.util.spec_from_file_location("_onebar_world", Path(__file__).parent / "world.py")
world = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(world)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    return world.build_world(tmp_path_factory.mktemp("serving"))


class EchoModel:
    """Answers each evidence's history (then a blocked query and its anchors)."""

    def __init__(self):
        self.texts = []

    def suggest(self, evidence_texts, k, beam):
        self.texts += evidence_texts
        out = []
        for t in evidence_texts:
            ev = parse(t)
            out.append(ev.history + ["weapon deal"] + ev.anchors)
        return out


def test_baseline_method_matches_the_baseline_and_names_ids(built):
    _, _, run = built
    s = TriggerSuggester(run, "anchor-cascade")
    ds = run.dataset()
    base = AnchorCascade()
    base.fit(ds, run.index, run.cfg)
    item_id = ds.items.sort("item")["item_id"][7]
    want = base.suggest(7, [], 5)
    got = s.suggest(item_id, k=5)
    assert got == SuggestResult([q for q in want if q != REJECT], want == [REJECT],
                                "anchor-cascade")
    assert item_id == "i26" and s.suggest(7, k=5) == got  # an index works when no id matches
    assert s.suggest("7", k=5) == got


def test_planted_items_are_rejected_and_nothing_blocked_is_shown(built):
    _, _, run = built
    s = TriggerSuggester(run, "query-prior")
    for item in run.planted.tolist():
        r = s.suggest(item)
        assert r.reject and r.queries == []
    for item in range(run.index.n_items):
        r = s.suggest(item)
        assert len(r.queries) <= run.cfg.k
        assert not any(is_blocked(q, run.cfg.block_list) for q in r.queries)


def test_model_method_sees_the_users_filtered_history_and_is_guarded(built):
    _, _, run = built
    model = EchoModel()
    s = TriggerSuggester(run, "model", model=model)
    ds = run.dataset()
    user_id = ds.users["user_id"][3]
    history = s.history(3)
    assert history  # the synthetic users search
    item = next(i for i in range(run.index.n_items) if i not in set(run.planted.tolist())
                and run.index.anchors[i])  # a safe item with evidence
    r = s.suggest(item, user_id, k=8)
    assert parse(model.texts[-1]).history == run.index.filter_history(item, history)
    assert "weapon deal" not in r.queries and r.method == "model"
    s.suggest(item, k=8)
    assert parse(model.texts[-1]).history == []


def test_unknown_item_user_method_and_missing_model_are_clear_errors(built):
    _, _, run = built
    s = TriggerSuggester(run, "keyword")
    with pytest.raises(SuggestError, match=r"item 'no-such-item' not found \(items.item_id"):
        s.suggest("no-such-item")
    with pytest.raises(SuggestError, match=r"user 'nobody' not found \(users.user_id"):
        s.suggest(0, "nobody")
    with pytest.raises(SuggestError, match=r"method 'gpt' unknown"):
        TriggerSuggester(run, "gpt")
    with pytest.raises(SuggestError, match=r"no model checkpoint \(expected .*/model/"):
        TriggerSuggester(run, "model")
