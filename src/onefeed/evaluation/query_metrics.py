"""Metrics of generated query lists against one reference query per case (OneBar §5.1,
OneFeed §4.5), pure functions.

* exact HR@K / MRR@K: the reference appears (after ``normalise_query``) among the top-K
  generated queries; reduced to a rank and scored with ``evaluation.metrics``.
* ED-HR@K: a generated query within Levenshtein distance ``max_distance`` (2 in OneBar) of the
  reference counts as a hit.
* retrievability: a generated query retrieves at least one item of the fixed corpus (OneFeed
  §4.5); computed from the number of BM25-matching items per query.
* abstention (OneBar §3.3): reject precision / recall of [REJECT] decisions, and the share of
  exposed suggestions containing a blocked term (must be 0).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from onefeed.evaluation import metrics as rank_metrics
from onefeed.evaluation.metrics import hit_at_k


def normalise_query(text: str) -> str:
    """Lowercase and collapse whitespace: the form in which queries are compared."""
    return " ".join(text.lower().split())


def levenshtein(a: str, b: str) -> int:
    """Character edit distance (insert, delete, substitute all cost 1)."""
    if len(a) < len(b):
        a, b = b, a
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def query_ranks(generated: Sequence[Sequence[str]], references: Sequence[str],
                max_distance: int = 0) -> np.ndarray:
    """(n,) 0-based position of the first generated query matching the reference, -1 if none.

    ``max_distance = 0`` is exact match; ``2`` is OneBar's edit-distance tolerance.
    """
    if len(generated) != len(references):
        raise ValueError(f"{len(generated)} generated lists but {len(references)} references")
    ranks = np.full(len(references), -1, dtype=np.int64)
    for row, (cands, ref) in enumerate(zip(generated, references)):
        ref = normalise_query(ref)
        for pos, cand in enumerate(cands):
            cand = normalise_query(cand)
            hit = cand == ref if max_distance == 0 else (
                abs(len(cand) - len(ref)) <= max_distance
                and levenshtein(cand, ref) <= max_distance)
            if hit:
                ranks[row] = pos
                break
    return ranks


def query_per_case(generated: Sequence[Sequence[str]], references: Sequence[str],
                   ks: Sequence[int] = (1, 5, 10), max_distance: int = 2) -> dict[str, np.ndarray]:
    """Per case ``hr@k``, ``mrr@k`` (exact) and ``ed_hr@k`` (Levenshtein <= max_distance)."""
    exact = query_ranks(generated, references)
    tolerant = query_ranks(generated, references, max_distance)
    out: dict[str, np.ndarray] = {}
    for k in ks:
        out[f"hr@{k}"] = hit_at_k(exact, k)
        out[f"mrr@{k}"] = rank_metrics.mrr_at_k(exact, k)
        out[f"ed_hr@{k}"] = hit_at_k(tolerant, k)
    return out


def retrievable(n_matches: np.ndarray) -> np.ndarray:
    """(n,) 1.0 where a query matches >= 1 corpus item (``n_matches`` from a retriever)."""
    return (np.asarray(n_matches) >= 1).astype(np.float64)


def personal_share(suggestions: Sequence[Sequence[str]], global_list: Sequence[str]) -> float:
    """Share of users whose suggestion list differs from the global most-frequent list (as
    sets of normalised queries, compared on the first len(user list) global entries)."""
    if not suggestions:
        return 0.0
    glob = [normalise_query(q) for q in global_list]
    differs = [set(normalise_query(q) for q in s) != set(glob[:len(s)]) for s in suggestions]
    return float(np.mean(differs))


def most_frequent(queries: Sequence[str], n: int) -> list[str]:
    """The ``n`` most frequent queries (normalised; ties broken alphabetically): the global
    list a non-personal suggester shows everyone."""
    counts: dict[str, int] = {}
    for q in queries:
        key = normalise_query(q)
        if key:
            counts[key] = counts.get(key, 0) + 1
    return [q for q, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:n]]


def hr_at_k(generated: Sequence[Sequence[str]], references: Sequence[str], k: int,
            max_distance: int = 0) -> np.ndarray:
    """(n,) 1.0 where a top-``k`` generated query matches the reference (exact, or within
    Levenshtein ``max_distance``: OneBar's ED-HR@K uses 2)."""
    return hit_at_k(query_ranks(generated, references, max_distance), k)


def mrr_at_k(generated: Sequence[Sequence[str]], references: Sequence[str], k: int,
             max_distance: int = 0) -> np.ndarray:
    """(n,) 1 / (1 + rank) of the first matching generated query within the top ``k``, else 0
    (not ``metrics.mrr_at_k``, which takes ranks)."""
    return rank_metrics.mrr_at_k(query_ranks(generated, references, max_distance), k)


def query_tokens(text: str) -> list[str]:
    """Lowercased word tokens (punctuation dropped): the form blocked terms are matched in."""
    return re.findall(r"\w+", text.lower())


def blocked(text: str, block_list: Sequence[str]) -> bool:
    """True when ``text`` contains a blocked word or phrase as whole word tokens (case-
    insensitive: "Gun" blocks "gun shop", not "shotgun")."""
    padded = f" {' '.join(query_tokens(text))} "
    return any(f" {' '.join(query_tokens(b))} " in padded for b in block_list if query_tokens(b))


def reject_precision_recall(predicted_reject: Sequence[bool], true_reject: Sequence[bool]
                            ) -> tuple[float, float]:
    """(precision, recall) of abstentions. With no predicted rejects precision is 1.0 when
    there is nothing to reject, else 0.0; with nothing to reject recall is 1.0."""
    pred, true = np.asarray(predicted_reject, dtype=bool), np.asarray(true_reject, dtype=bool)
    if pred.shape != true.shape:
        raise ValueError(f"{pred.shape} predictions but {true.shape} labels")
    hits = int((pred & true).sum())
    precision = hits / pred.sum() if pred.any() else float(not true.any())
    recall = hits / true.sum() if true.any() else 1.0
    return float(precision), float(recall)


def blocked_exposed(suggestions: Sequence[Sequence[str]], block_list: Sequence[str],
                    reject: str = "[REJECT]") -> float:
    """Share of exposed suggestions (every query of every list, ``reject`` excluded) that
    contain a blocked term; 0.0 when nothing is exposed."""
    exposed = [q for s in suggestions for q in s if q != reject]
    if not exposed:
        return 0.0
    return sum(blocked(q, block_list) for q in exposed) / len(exposed)
