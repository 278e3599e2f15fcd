"""Batched, vectorised trie-constrained beam search over code tuples.

Knows nothing of any model class: it takes a *step function*

    step(state, prefix (N, level) int64, level) -> (log_probs (N, V_level), state)

and a ``reorder(state, index)`` that gathers per-beam state rows (KV cache, hidden state...).
All B users' W beams advance together. The trie constraint is applied in its sparse form: the
trie gives every beam's K_level slots at once (``trie.slot_rows``: allowed codes + a 0/-inf
padding bias; K_level is small past the first level: 40/16/10 on Beauty against
V = 256/256/10), their log-probs are gathered from the step's (N, V) output, selection is one
``topk`` over (B, W * K_level) rather than (B, W * V), and the chosen slots give the codes and
next trie nodes in one lookup (``trie.follow``). No (N, V) mask is ever built. Any trie with
``root / width / slot_rows / follow`` works (``Trie``, the CSR trie; ``DenseTrie``, the dense
tables it replaced). Because every complete path is a distinct item (unique SID rows), the W
final beams are W distinct items.

The step runs on blocks of beams (about 2 MB of log-probs each) and each block's candidates
are gathered right away, while its log-probs are still in cache: at beam 50 a level's full
(N, V) output is ~13 MB and reading it back from memory cost more than the gather itself.
Blocking needs the step to treat rows independently (as the ``reorder`` contract implies) and
is used only with the default ``reorder`` (a state whose dim 0 is the beam, so blocks are
slices); a custom ``reorder`` gets one step call per level, as before.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, NamedTuple

import torch

from onefeed.decoding.dense_trie import DenseTrie
from onefeed.decoding.trie import Trie

StepFn = Callable[[Any, torch.Tensor, int], tuple[torch.Tensor, Any]]
NEG_INF = float("-inf")
BLOCK_BYTES = 2 << 20  # log-probs of one block of beams: stays in cache until gathered
profile_clock: Callable[[], float] = time.perf_counter  # ``profile`` timings (both decoders);
# ``onefeed bench decode`` swaps in time.thread_time (CPU time: waiting for a core on a shared
# machine does not count)


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


def _slice_state(state: Any, start: int, stop: int) -> Any:
    """Rows ``start:stop`` (views) of a tensor / tuple / list state (None stays None)."""
    if state is None or isinstance(state, torch.Tensor):
        return state if state is None else state[start:stop]
    return type(state)(_slice_state(s, start, stop) for s in state)


def _cat_state(parts: list[Any]) -> Any:
    if parts[0] is None or isinstance(parts[0], torch.Tensor):
        return parts[0] if parts[0] is None else torch.cat(parts)
    return type(parts[0])(_cat_state(list(p)) for p in zip(*parts))


def _sliceable(state: Any) -> bool:
    if state is None or isinstance(state, torch.Tensor):
        return True
    return isinstance(state, (tuple, list)) and all(_sliceable(s) for s in state)


def beam_search(step: StepFn, state: Any, trie: "Trie | DenseTrie", n_users: int, beam: int,
                k: int | None = None, reorder: Callable[[Any, torch.Tensor], Any] = reorder_state,
                profile: dict[str, float] | None = None) -> BeamResult:
    """Top-``k`` (default ``beam``) distinct items per user under the trie constraint.

    ``state`` has one row per user; ``profile`` (if given) accumulates seconds spent in
    ``mask`` (all trie work: slot lookups, gather, bias, advancing beams), ``advance`` (the
    part of ``mask`` that looks up the chosen codes and next nodes), ``step`` (the step
    function) and ``total``.
    """
    k = beam if k is None else k
    if k > beam:
        raise ValueError(f"k={k} needs beam >= k (beam={beam})")
    t_start = profile_clock()
    timing = {"mask": 0.0, "advance": 0.0, "step": 0.0}
    with torch.no_grad():
        items, scores, prefix = _search(step, state, trie, n_users, beam, reorder, timing)
    b, width, n_levels = n_users, scores.shape[1], trie.n_levels
    items, scores, codes = items[:, :k], scores[:, :k], prefix.view(b, width, n_levels)[:, :k]
    if width < k:  # catalogue smaller than k
        pad = k - width
        items = torch.cat([items, items.new_full((b, pad), -1)], 1)
        scores = torch.cat([scores, scores.new_full((b, pad), NEG_INF)], 1)
        codes = torch.cat([codes, codes.new_full((b, pad, n_levels), -1)], 1)
    if profile is not None:
        for key, seconds in timing.items():
            profile[key] = profile.get(key, 0.0) + seconds
        profile["total"] = profile.get("total", 0.0) + profile_clock() - t_start
    return BeamResult(items, scores, codes)


def _search(step: StepFn, state: Any, trie: "Trie | DenseTrie", b: int, beam: int,
            reorder: Callable[[Any, torch.Tensor], Any], timing: dict[str, float]
            ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The level loop: -> items (b, W), scores (b, W), prefixes (b * W, L).

    Beams live in rows ``user * width + j``; ``nodes`` are their trie nodes at the current
    depth (a dead node once a beam can no longer reach an item).
    """
    nodes = trie.root(b)
    scores = torch.zeros(b, 1)
    prefix = torch.zeros(b, 0, dtype=torch.long)
    width = 1  # beams per user so far
    users = torch.arange(b).unsqueeze(1)
    for level in range(trie.n_levels):
        rows = max(1, BLOCK_BYTES // (4 * trie.codebook_sizes[level]))
        if reorder is not reorder_state or not _sliceable(state):
            rows = len(nodes)
        cand, state = _candidates(step, state, prefix, level, nodes, trie, rows, timing)
        n_kids = cand.shape[1]
        cand = cand.add_(scores.view(-1, 1)).view(b, width * n_kids)
        w_next = min(beam, width * n_kids)
        scores, top = cand.topk(w_next, dim=1)  # (b, w_next), best first
        beam_of = top // n_kids  # (b, w_next) parent beam within its user
        parent = (users * width + beam_of).view(-1)
        t0 = profile_clock()
        code, nodes = trie.follow(level, nodes.index_select(0, parent),
                                  top.sub(beam_of, alpha=n_kids).view(-1))
        spent = profile_clock() - t0  # item ids after the last level
        timing["mask"] += spent
        timing["advance"] += spent
        prefix = torch.cat([prefix.index_select(0, parent), code.unsqueeze(1)], dim=1)
        if level < trie.n_levels - 1:
            state = reorder(state, parent)
        width = w_next
    items = torch.where(scores > NEG_INF, nodes.view(b, width).long(), -1)
    return items, scores, prefix


def _candidates(step: StepFn, state: Any, prefix: torch.Tensor, level: int,
                nodes: torch.Tensor, trie: "Trie | DenseTrie", rows: int,
                timing: dict[str, float]
                ) -> tuple[torch.Tensor, Any]:
    """Run the step and gather every beam's allowed log-probs: -> (N, K) (-inf at padding),
    new state. Blocks of ``rows`` beams go through step + gather together (module docstring)."""
    n = len(nodes)
    cands, states, same = [], [], True
    for start in range(0, n, rows):
        stop = min(n, start + rows)
        block = _slice_state(state, start, stop) if stop - start < n else state
        t0 = profile_clock()
        logp, out = step(block, prefix[start:stop], level)  # (stop - start, V)
        t1 = profile_clock()
        code, bias = trie.slot_rows(level, nodes[start:stop])  # (rows, K), 0 / -inf
        if code is None:  # slot == code: the whole row, masked by the bias
            cand = bias.add_(logp)
        else:  # gather the log-probs of each beam's allowed codes only
            cand = logp.gather(1, code).add_(bias)
        timing["step"] += t1 - t0
        timing["mask"] += profile_clock() - t1
        cands.append(cand)
        states.append(out)
        same = same and out is block
    if len(cands) == 1:
        return cands[0], states[0]
    return torch.cat(cands), state if same else _cat_state(states)
