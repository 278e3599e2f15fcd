"""Batched, vectorised trie-constrained beam search over code tuples.

Knows nothing of any model class: it takes a *step function*

    step(state, prefix (N, level) int64, level) -> (log_probs (N, V_level), state)

and a ``reorder(state, index)`` that gathers per-beam state rows (KV cache, hidden state...).
All B users' W beams advance together: the trie hands back each beam's allowed codes as one
gather of padded child lists (``Trie.candidates``, K_level wide), their log-probs are gathered
from the step's (N, V) output, and selection is one ``topk`` over (B, W * K_level). Because
every complete path is a distinct item (unique SID rows), the W final beams are W distinct
items.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, NamedTuple

import torch

from onefeed.decoding.trie import Trie

StepFn = Callable[[Any, torch.Tensor, int], tuple[torch.Tensor, Any]]
NEG_INF = float("-inf")


class BeamResult(NamedTuple):
    items: torch.Tensor  # (B, K) int64 item ids, best first; -1 when fewer than K exist
    scores: torch.Tensor  # (B, K) float32 sequence log-probabilities; -inf for missing
    codes: torch.Tensor  # (B, K, L) int64 decoded code tuples


def reorder_state(state: Any, index: torch.Tensor) -> Any:
    """Gather rows ``index`` along dim 0 of a tensor, or of every tensor in a tuple/list."""
    if state is None:
        return None
    if isinstance(state, torch.Tensor):
        return state.index_select(0, index)
    if isinstance(state, (tuple, list)):
        return type(state)(reorder_state(s, index) for s in state)
    raise TypeError(f"cannot reorder state of type {type(state).__name__}")


def beam_search(step: StepFn, state: Any, trie: Trie, n_users: int, beam: int,
                k: int | None = None, reorder: Callable[[Any, torch.Tensor], Any] = reorder_state,
                profile: dict[str, float] | None = None) -> BeamResult:
    """Top-``k`` (default ``beam``) distinct items per user under the trie constraint.

    ``state`` has one row per user; ``profile`` (if given) accumulates seconds spent in
    ``mask`` (trie lookups + masking) and ``total``.
    """
    k = beam if k is None else k
    if k > beam:
        raise ValueError(f"k={k} needs beam >= k (beam={beam})")
    t_start = time.perf_counter()
    mask_time = 0.0
    b, n_levels = n_users, trie.n_levels
    nodes = torch.zeros(b, dtype=torch.long)  # depth-0 node (root) per row
    scores = torch.zeros(b)
    prefix = torch.zeros(b, 0, dtype=torch.long)
    width = 1  # beams per user so far
    for level in range(n_levels):
        logp, state = step(state, prefix, level)  # (b * width, V)
        t0 = time.perf_counter()
        kids = trie.candidates(level, nodes.clamp(min=0))  # (b * width, K) codes, -1 = none
        n_kids = kids.shape[1]
        cand = logp.gather(1, kids.clamp(min=0))  # dead beams already score -inf
        cand = torch.where(kids >= 0, cand + scores.unsqueeze(1), NEG_INF).view(b, width * n_kids)
        mask_time += time.perf_counter() - t0
        w_next = min(beam, width * n_kids)
        top_scores, top_idx = cand.topk(w_next, dim=1)  # (b, w_next), sorted best first
        parent = (torch.arange(b).unsqueeze(1) * width + top_idx // n_kids).view(-1)
        t0 = time.perf_counter()
        code = kids.view(-1).index_select(0, (top_idx + (torch.arange(b) * width * n_kids)
                                              .unsqueeze(1)).view(-1))
        nodes = trie.advance(level, nodes.clamp(min=0).index_select(0, parent), code.clamp(min=0))
        mask_time += time.perf_counter() - t0
        scores = top_scores.view(-1)
        nodes = torch.where(torch.isfinite(scores), nodes, -1)
        prefix = torch.cat([prefix.index_select(0, parent), code.unsqueeze(1)], dim=1)
        if level < n_levels - 1:
            state = reorder(state, parent)
        width = w_next
    items = nodes.view(b, width)[:, :k]
    out_scores = scores.view(b, width)[:, :k]
    codes = prefix.view(b, width, n_levels)[:, :k]
    if width < k:  # catalogue smaller than k
        pad = k - width
        items = torch.cat([items, items.new_full((b, pad), -1)], 1)
        out_scores = torch.cat([out_scores, out_scores.new_full((b, pad), NEG_INF)], 1)
        codes = torch.cat([codes, codes.new_full((b, pad, n_levels), -1)], 1)
    if profile is not None:
        profile["mask"] = profile.get("mask", 0.0) + mask_time
        profile["total"] = profile.get("total", 0.0) + time.perf_counter() - t_start
    return BeamResult(items, out_scores, codes)
