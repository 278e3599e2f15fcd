"""Text-similarity metrics of generated queries (OneFeed §4.5, OneBar §5.1), pure functions.

BLEU is sacrebleu's sentence BLEU (exponential smoothing, effective n-gram order, so a 2-word
query can score), divided by 100 to lie in [0, 1]. ROUGE-L is rouge-score's LCS F-measure.
Distinct-n is the share of unique n-grams among all n-grams of a set of texts (Li et al. 2016).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import lru_cache

import numpy as np
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


def semantic_similarity(hypotheses: Sequence[str], references: Sequence[str],
                        encode: Callable[[list[str]], np.ndarray]) -> np.ndarray:
    """(n,) cosine similarity of each hypothesis to its reference under ``encode`` (texts ->
    (m, d) embeddings). With the packaged all-MiniLM-L6-v2 this is the "MiniLM similarity"
    we report: a BERTScore-style semantic score, NOT BERTScore (no token matching, no
    RoBERTa-large); 0.0 where either text is empty."""
    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses but {len(references)} references")
    if not hypotheses:
        return np.zeros(0)
    emb = np.asarray(encode(list(hypotheses) + list(references)), dtype=np.float64)
    a, b = emb[:len(hypotheses)], emb[len(hypotheses):]
    norm = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    cos = (a * b).sum(1) / np.where(norm > 0, norm, 1.0)
    empty = np.array([not h.strip() or not r.strip() for h, r in zip(hypotheses, references)])
    return np.where(empty | (norm == 0), 0.0, cos)
