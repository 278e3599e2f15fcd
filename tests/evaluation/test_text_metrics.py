import pytest

from onefeed.evaluation.text_metrics import bleu_at_k, distinct_n, ngrams, rouge_l, sentence_bleu


def test_bleu_identical_and_disjoint():
    assert sentence_bleu("red nail polish", "red nail polish") == pytest.approx(1.0)
    assert sentence_bleu("blue shampoo", "red nail polish") == pytest.approx(0.0, abs=1e-6)
    assert sentence_bleu("", "red nail polish") == 0.0


def test_bleu_partial_is_between_and_best_of_k():
    partial = sentence_bleu("red polish", "red nail polish")
    assert 0.0 < partial < 1.0
    assert bleu_at_k(["blue shampoo", "red polish", "red nail polish"], "red nail polish", 2) \
        == pytest.approx(partial)
    assert bleu_at_k(["blue shampoo", "red polish", "red nail polish"], "red nail polish", 3) \
        == pytest.approx(1.0)
    assert bleu_at_k([], "x", 3) == 0.0


def test_rouge_l_by_hand():
    # LCS("red polish", "red nail polish") = 2 tokens: P = 2/2, R = 2/3, F = 0.8
    assert rouge_l("red polish", "red nail polish") == pytest.approx(0.8)
    assert rouge_l("nail red", "red nail polish") == pytest.approx(2 * 0.5 * (1 / 3) / (0.5 + 1 / 3))
    assert rouge_l("", "x") == 0.0


def test_distinct_n_by_hand():
    texts = ["red nail polish", "red nail gel"]
    assert ngrams("a b c".split(), 2) == [("a", "b"), ("b", "c")]
    # unigrams: red nail polish red nail gel -> 4 unique / 6
    assert distinct_n(texts, 1) == pytest.approx(4 / 6)
    # bigrams: (red nail) (nail polish) (red nail) (nail gel) -> 3 / 4
    assert distinct_n(texts, 2) == pytest.approx(3 / 4)
    assert distinct_n(["one"], 2) == 0.0


def test_semantic_similarity_is_the_cosine_of_the_encoder():
    import numpy as np

    from onefeed.evaluation.text_metrics import semantic_similarity

    table = {"a": [1.0, 0.0], "b": [0.0, 2.0], "c": [1.0, 1.0], "": [0.0, 0.0]}
    encode = lambda texts: np.array([table[t] for t in texts])  # noqa: E731
    got = semantic_similarity(["a", "a", "c", ""], ["b", "c", "c", "a"], encode)
    assert np.allclose(got, [0.0, 1 / np.sqrt(2), 1.0, 0.0])
    with pytest.raises(ValueError, match="2 hypotheses but 1 references"):
        semantic_similarity(["a", "b"], ["a"], encode)
