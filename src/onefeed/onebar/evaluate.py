"""Score suggestion lists against examples (OneBar §5.1 metrics + abstention).

* matching (``hr@K``, ``mrr@K``, ``edit_hr@K``): over the answerable examples (target is a
  query); an abstention there is an empty list, a miss.
* ``reject_precision`` / ``reject_recall``: over all examples; a prediction abstains when
  nothing is exposed (``[REJECT]`` or an empty list).
* ``distinct_2``, ``retrievability``, ``blocked_exposed``: over every exposed suggestion.
  ``retrievability`` needs a retriever's ``n_matches(queries) -> (n,) int`` (e.g.
  ``search.bm25.BM25Retriever.n_matches``); None without one.

Scores what it is given: wrap a generator with ``labels.safe_suggestions`` before exposure.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from onefeed.evaluation.metrics import hit_at_k, mrr_at_k
from onefeed.evaluation.query_metrics import (blocked_exposed, query_ranks,
                                              reject_precision_recall, retrievable)
from onefeed.evaluation.significance import paired_bootstrap, paired_ttest
from onefeed.evaluation.text_metrics import distinct_n
from onefeed.onebar.config import OneBarConfig
from onefeed.onebar.labels import REJECT, Example

SuggestFn = Callable[[int, list[str], int], list[str]]  # (trigger, history, k) -> queries


def exposed(suggestions: Sequence[str], k: int) -> list[str]:
    """The first ``k`` suggestions without ``[REJECT]``: what the bar shows."""
    return [q for q in suggestions if q != REJECT][:k]


def score(suggestions: Sequence[Sequence[str]], examples: Sequence[Example], cfg: OneBarConfig,
          n_matches: Callable[[list[str]], np.ndarray] | None = None) -> dict[str, Any]:
    """{"metrics": name -> float, "per_case": answerable-aligned arrays (user, trigger, rank,
    edit_rank, hr@K, mrr@K, edit_hr@K) for paired tests, "n": counts}."""
    if len(suggestions) != len(examples):
        raise ValueError(f"{len(suggestions)} suggestion lists for {len(examples)} examples")
    shown = [exposed(s, cfg.k) for s in suggestions]
    answerable = [i for i, ex in enumerate(examples) if not ex.reject]
    gen, refs = [shown[i] for i in answerable], [examples[i].target for i in answerable]
    ranks, edit_ranks = query_ranks(gen, refs), query_ranks(gen, refs, cfg.max_distance)
    per_case: dict[str, np.ndarray] = {
        "user": np.array([examples[i].user for i in answerable], dtype=np.int64),
        "trigger": np.array([examples[i].trigger for i in answerable], dtype=np.int64),
        "rank": ranks, "edit_rank": edit_ranks}
    for k in cfg.ks:
        per_case[f"hr@{k}"] = hit_at_k(ranks, k)
        per_case[f"mrr@{k}"] = mrr_at_k(ranks, k)
        per_case[f"edit_hr@{k}"] = hit_at_k(edit_ranks, k)
    metrics: dict[str, float | None] = {
        name: float(v.mean()) if len(v) else 0.0 for name, v in per_case.items()
        if "@" in name}
    flat = [q for s in shown for q in s]
    metrics["distinct_2"] = distinct_n(flat, 2)
    metrics["retrievability"] = (float(retrievable(n_matches(flat)).mean()) if flat else 0.0
                                 ) if n_matches is not None else None
    precision, recall = reject_precision_recall([not s for s in shown],
                                                [ex.reject for ex in examples])
    metrics["reject_precision"], metrics["reject_recall"] = precision, recall
    metrics["blocked_exposed"] = blocked_exposed(shown, cfg.block_list)
    n = {"cases": len(examples), "answerable": len(answerable),
         "reject": len(examples) - len(answerable), "abstained": sum(not s for s in shown)}
    return {"metrics": metrics, "per_case": per_case, "n": n}


def evaluate(suggest_fn: SuggestFn, examples: Sequence[Example], cfg: OneBarConfig,
             n_matches: Callable[[list[str]], np.ndarray] | None = None) -> dict[str, Any]:
    """``score`` of ``suggest_fn(trigger, list(history), cfg.k)`` on every example."""
    suggestions = [suggest_fn(ex.trigger, list(ex.history), cfg.k) for ex in examples]
    return score(suggestions, examples, cfg, n_matches)


def paired(a: dict[str, Any], b: dict[str, Any], metric: str = "hr@8") -> dict[str, float]:
    """Paired tests of two ``score`` results on ``metric``, cases matched by (user, trigger):
    {"n", "mean_a", "mean_b", "ttest_p", "bootstrap_p"}."""
    def keyed(r: dict[str, Any]) -> dict[tuple[int, int], float]:
        pc = r["per_case"]
        return dict(zip(zip(pc["user"].tolist(), pc["trigger"].tolist()), pc[metric].tolist()))

    ka, kb = keyed(a), keyed(b)
    common = sorted(set(ka) & set(kb))
    x, y = np.array([ka[c] for c in common]), np.array([kb[c] for c in common])
    return {"n": len(common), "mean_a": float(x.mean()) if common else 0.0,
            "mean_b": float(y.mean()) if common else 0.0, "ttest_p": paired_ttest(x, y),
            "bootstrap_p": paired_bootstrap(x, y)}
