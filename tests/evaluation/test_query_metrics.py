import numpy as np
import pytest

from onefeed.evaluation.query_metrics import (levenshtein, normalise_query, query_per_case,
                                              query_ranks, retrievable)


def test_levenshtein_by_hand():
    assert levenshtein("kitten", "sitting") == 3
    assert levenshtein("", "abc") == 3
    assert levenshtein("lipstick", "lipstick") == 0
    assert levenshtein("lip stick", "lipstick") == 1


def test_exact_and_edit_tolerant_ranks():
    gen = [["nail polish", "Red  Lipstick"], ["shampoo"], ["lipstcks", "x"]]
    refs = ["red lipstick", "conditioner", "lipstick"]
    assert normalise_query(" Red  Lipstick ") == "red lipstick"
    assert query_ranks(gen, refs).tolist() == [1, -1, -1]
    # "lipstcks" -> "lipstick": 2 edits (insert i, delete s)
    assert query_ranks(gen, refs, max_distance=2).tolist() == [1, -1, 0]
    assert query_ranks(gen, refs, max_distance=1).tolist() == [1, -1, -1]


def test_query_per_case_hr_mrr():
    gen = [["a", "b", "c"], ["c", "b"], ["z"]]
    refs = ["b", "c", "q"]
    pc = query_per_case(gen, refs, ks=(1, 2), max_distance=0)
    assert pc["hr@1"].tolist() == [0.0, 1.0, 0.0]
    assert pc["hr@2"].tolist() == [1.0, 1.0, 0.0]
    assert pc["mrr@2"] == pytest.approx([0.5, 1.0, 0.0])
    assert pc["ed_hr@2"].tolist() == pc["hr@2"].tolist()


def test_query_ranks_length_mismatch():
    with pytest.raises(ValueError, match="2 generated lists but 1 references"):
        query_ranks([["a"], ["b"]], ["a"])


def test_retrievable():
    assert retrievable(np.array([0, 1, 5])).tolist() == [0.0, 1.0, 1.0]


def test_personal_share_compares_with_the_global_list():
    from onefeed.evaluation.query_metrics import personal_share

    glob = ["lipstick", "shampoo", "nail polish"]
    users = [["Shampoo", "lipstick"], ["lipstick", "mascara"], ["lipstick"], ["shampoo"]]
    # user 0 = the global top 2 (order and case ignored), user 1 differs, user 2 = top 1,
    # user 3 ("shampoo" vs the top-1 "lipstick") differs
    assert personal_share(users, glob) == 0.5
    assert personal_share([], glob) == 0.0


def test_most_frequent_counts_normalised_queries_and_breaks_ties_alphabetically():
    from onefeed.evaluation.query_metrics import most_frequent

    qs = ["Red  Lipstick", "red lipstick", "blue", "alpha", "blue", "zeta", "red lipstick", " "]
    assert most_frequent(qs, 3) == ["red lipstick", "blue", "alpha"]
    assert most_frequent(qs, 10) == ["red lipstick", "blue", "alpha", "zeta"]


def test_hr_and_mrr_at_k_of_query_lists_exact_and_edit_tolerant():
    from onefeed.evaluation.query_metrics import hr_at_k, mrr_at_k

    gen = [["a b", "red shoe"], ["blue boots", "x"], []]
    refs = ["Red  Shoe", "blue boot", "hat"]
    assert hr_at_k(gen, refs, 1).tolist() == [0.0, 0.0, 0.0]
    assert hr_at_k(gen, refs, 2).tolist() == [1.0, 0.0, 0.0]
    assert mrr_at_k(gen, refs, 8).tolist() == [0.5, 0.0, 0.0]
    assert hr_at_k(gen, refs, 1, max_distance=2).tolist() == [0.0, 1.0, 0.0]
    assert mrr_at_k(gen, refs, 4, max_distance=2).tolist() == [0.5, 1.0, 0.0]


def test_reject_precision_recall_hand_computed_and_empty_cases():
    from onefeed.evaluation.query_metrics import reject_precision_recall

    # predicted [T, T, F, F], true [T, F, T, F]: 1 hit of 2 predicted, of 2 true
    assert reject_precision_recall([1, 1, 0, 0], [1, 0, 1, 0]) == (0.5, 0.5)
    assert reject_precision_recall([1, 1, 1], [1, 0, 0]) == (1 / 3, 1.0)
    assert reject_precision_recall([0, 0], [1, 0]) == (0.0, 0.0)  # never abstains
    assert reject_precision_recall([0, 0], [0, 0]) == (1.0, 1.0)  # nothing to reject
    with pytest.raises(ValueError, match="predictions but"):
        reject_precision_recall([1], [1, 0])


def test_blocked_terms_are_whole_words_and_exposure_share_skips_rejects():
    from onefeed.evaluation.query_metrics import blocked, blocked_exposed

    assert blocked("Buy a GUN now", ["gun"]) and not blocked("shotgun shells", ["gun"])
    assert blocked("cheap fire-arm", ["fire arm"]) and not blocked("fire", ["fire arm"])
    assert not blocked("anything", ["", "  "])
    lists = [["red shoe", "gun case"], ["[REJECT]"], [], ["gun"]]
    assert blocked_exposed(lists, ["gun"]) == pytest.approx(2 / 3)
    assert blocked_exposed([["[REJECT]"], []], ["gun"]) == 0.0
