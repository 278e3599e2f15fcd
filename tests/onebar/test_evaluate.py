import numpy as np
import pytest

from onefeed.onebar.evaluate import evaluate, exposed, paired, score
from onefeed.onebar.labels import REJECT, Example

EXAMPLES = [Example(0, 0, "red shoe", False, "test"), Example(1, 1, "blue boot", False, "test"),
            Example(2, 5, REJECT, True, "test"), Example(3, 4, "hat", False, "test"),
            Example(4, 5, REJECT, True, "test")]
SUGGESTIONS = [["blue boot", "red shoe"], ["blue boots"], [REJECT], [], ["weapon toy"]]


def test_score_against_hand_computed_values(make_cfg):
    def n_matches(queries):
        return np.array([int("boot" in q) for q in queries])

    out = score(SUGGESTIONS, EXAMPLES, make_cfg(), n_matches)
    m = out["metrics"]
    # answerable: red shoe at rank 1, blue boot only within edit distance 1, hat abstained
    assert m["hr@1"] == 0.0 and m["hr@4"] == pytest.approx(1 / 3)
    assert m["mrr@4"] == pytest.approx(0.5 / 3) and m["mrr@8"] == pytest.approx(0.5 / 3)
    assert m["edit_hr@1"] == pytest.approx(1 / 3) and m["edit_hr@8"] == pytest.approx(2 / 3)
    # abstained on examples 2 (right) and 3 (wrong); missed example 4
    assert (m["reject_precision"], m["reject_recall"]) == (0.5, 0.5)
    # exposed: blue boot, red shoe, blue boots, weapon toy
    assert m["blocked_exposed"] == 0.25 and m["retrievability"] == 0.5
    assert m["distinct_2"] == 1.0
    assert out["n"] == {"cases": 5, "answerable": 3, "reject": 2, "abstained": 2}
    pc = out["per_case"]
    assert pc["user"].tolist() == [0, 1, 3] and pc["rank"].tolist() == [1, -1, -1]
    assert pc["edit_rank"].tolist() == [1, 0, -1] and pc["hr@4"].tolist() == [1.0, 0.0, 0.0]
    assert set(m) >= {"hr@1", "hr@4", "hr@8", "mrr@1", "mrr@4", "mrr@8", "edit_hr@8",
                      "distinct_2", "retrievability", "reject_precision", "reject_recall",
                      "blocked_exposed"}


def test_without_a_retriever_retrievability_is_none_and_lengths_are_checked(make_cfg):
    assert score(SUGGESTIONS, EXAMPLES, make_cfg())["metrics"]["retrievability"] is None
    with pytest.raises(ValueError, match="4 suggestion lists for 5 examples"):
        score(SUGGESTIONS[:4], EXAMPLES, make_cfg())


def test_only_the_first_k_exposed_suggestions_count(make_cfg):
    assert exposed(["a", REJECT, "b", "c"], 2) == ["a", "b"]
    out = score([["x", "y", "red shoe"]], EXAMPLES[:1], make_cfg(k=2, ks=[1, 2]))
    assert out["metrics"]["hr@2"] == 0.0


def test_evaluate_calls_the_suggester_with_trigger_history_and_k(make_cfg):
    seen = []

    def suggest(trigger, history, k):
        seen.append((trigger, history, k))
        return ["red shoe"]

    ex = [Example(0, 3, "red shoe", False, "test", ("a", "b"))]
    assert evaluate(suggest, ex, make_cfg())["metrics"]["hr@1"] == 1.0
    assert seen == [(3, ["a", "b"], 8)]


def test_paired_matches_cases_by_user_and_trigger(make_cfg):
    ex = [Example(u, u, "q", False, "test") for u in range(6)]
    good = score([["q"]] * 6, ex, make_cfg())
    bad = score([["q"], ["x"], ["x"], ["x"], ["x"], ["x"]], ex, make_cfg())
    out = paired(good, bad, "hr@1")
    assert (out["n"], out["mean_a"], out["mean_b"]) == (6, 1.0, pytest.approx(1 / 6))
    assert out["ttest_p"] < 0.05 and 0 < out["bootstrap_p"] < 0.1
    assert paired(good, good, "hr@1")["ttest_p"] == 1.0
    half = score([["q"]] * 3, ex[:3], make_cfg())
    assert paired(half, bad, "hr@1")["n"] == 3
