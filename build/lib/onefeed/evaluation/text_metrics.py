"""Text-similarity metrics of generated queries (OneFeed §4.5, OneBar §5.1), pure functions.

BLEU is sacrebleu's sentence BLEU (exponential smoothing, effective n-gram order, so a 2-word
query can score), divided by 100 to lie in [0, 1]. ROUGE-L is rouge-score's LCS F-measure.
Distinct-n is the share of unique n-grams among all n-grams of a set of texts (Li et al. 2016).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import sacrebleu


def sentence_bleu(hypothesis: str, reference: str) -> float:
    """Sentence BLEU in [0, 1] of one hypothesis against one reference."""
    if not hypothesis.strip() or not reference.strip():
        return 0.0
    return sacrebleu.sentence_bleu(hypothesis, [reference]).score / 100.0


def bleu_at_k(hypotheses: Sequence[str], reference: str, k: int) -> float:
    """Best sentence BLEU among the top-k hypotheses (OneBar §5.1 "BLEU@K")."""
    return max((sentence_bleu(h, reference) for h in hypotheses[:k]), default=0.0)


@lru_cache(maxsize=1)
def _rouge():
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)


def rouge_l(hypothesis: str, reference: str) -> float:
    """ROUGE-L F-measure in [0, 1] (longest common subsequence of tokens)."""
    if not hypothesis.strip() or not reference.strip():
        return 0.0
    return float(_rouge().score(reference, hypothesis)["rougeL"].fmeasure)


def ngrams(tokens: Sequence[str], n: int) -> list[tuple[str, ...]]:
    return [tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1)]


def distinct_n(texts: Sequence[str], n: int) -> float:
    """Unique n-grams / total n-grams over all ``texts`` (whitespace tokens, lowercased);
    0.0 when there are no n-grams."""
    grams = [g for t in texts for g in ngrams(t.lower().split(), n)]
    return len(set(grams)) / len(grams) if grams else 0.0
