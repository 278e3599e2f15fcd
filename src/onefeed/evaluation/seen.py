"""The seen-item rule, for any model that recommends from a beam: whether its own lists may
contain the user's history items ("keep") or not ("exclude"), and choosing between the two on
validation cases ("auto").

Models plug in through a ``Decode`` callable, so the generative core
(``evaluation.generative``) and the joint model (``evaluation.joint``) share one rule.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from onefeed.evaluation.metrics import ndcg_at_k, take_kept, target_ranks, unseen_positions

Decode = Callable[[np.ndarray, int, int], tuple[np.ndarray, np.ndarray]]
"""(rows (n,) case indices, beam, k) -> ((n, k) item ids, (n, k) scores), best first."""

SEEN_RULES = ("keep", "exclude", "auto")


def check_seen_rule(rule: str, who: str) -> str:
    """``rule`` if it is one of ``SEEN_RULES``, else a ValueError naming ``who``."""
    if rule not in SEEN_RULES:
        raise ValueError(f"{who}: params.seen {rule!r}: expected keep, exclude or auto")
    return rule


def decode_unseen(decode: Decode, rows: np.ndarray, histories: np.ndarray, beam: int, k: int
                  ) -> tuple[np.ndarray, np.ndarray]:
    """(n, k) item ids not in each case's history, and their scores (-1 / -inf where fewer
    remain): the beam is widened by the history length H so excluded items cannot crowd the
    others out, then history items are dropped.

    rows: (n,) case indices passed to ``decode``; histories: (n, H) those cases' history item
    ids (-1 = padding or a non-item event).
    """
    wide = beam + histories.shape[1]
    topk, scores = decode(rows, wide, wide)
    pos, valid = unseen_positions(topk, histories, k)
    return take_kept(topk, pos, valid, -1).astype(np.int64), take_kept(scores, pos, valid, -np.inf)


def choose_seen(decode: Decode, histories: np.ndarray, targets: np.ndarray, beam: int,
                max_cases: int = 5000, seed: int = 0) -> dict[str, Any]:
    """Keep or exclude history items, whichever gives the higher NDCG@10 on these (validation)
    cases; at most ``max_cases`` of them, a seeded sample.

    histories: (N, H) history item ids; targets: (N,) item ids. Returns ``seen`` (the choice),
    ``seen_valid_ndcg@10`` ({"keep": .., "exclude": ..}) and ``seen_cases``.
    The model-side counterpart of SASRec's learned seen-item offset: on data where a user never
    consumes an item twice (ratings, most purchases) excluding wins, on re-consumption data
    keeping does. The evaluation protocol itself filters nothing.
    """
    rows = np.arange(len(histories))
    if len(rows) > max_cases:
        rows = np.sort(np.random.default_rng(seed).choice(rows, max_cases, replace=False))
    tgt = targets[rows]
    keep, _ = decode(rows, beam, 10)
    excl, _ = decode_unseen(decode, rows, histories[rows], beam, 10)
    ndcg = {name: float(ndcg_at_k(target_ranks(top, tgt), 10).mean())
            for name, top in (("keep", keep), ("exclude", excl))}
    return {"seen": "exclude" if ndcg["exclude"] > ndcg["keep"] else "keep",
            "seen_valid_ndcg@10": ndcg, "seen_cases": int(len(rows))}
