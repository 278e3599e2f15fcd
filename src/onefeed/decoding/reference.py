"""Plain, obviously-correct references the fast decoder is tested and benchmarked against.

* ``DictTrie`` — nested Python dicts, the usual GENRE / HF constrained-decoding trie.
* ``reference_beam_search`` — the HF ``prefix_allowed_tokens_fn`` way: at every step a Python
  loop over every beam asks the trie which codes may follow and writes a mask row.
* ``exact_scores`` / ``exact_topk`` — score every item's full code tuple (no beam at all).
* ``greedy_constrained`` — beam 1 written as a per-row argmax loop.
* ``reference_text_beam_search`` — word-piece beam search without the live-beam feeding, the
  one wide top-k per row and the beam pruning of ``text.text_beam_search``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from onefeed.decoding import beam as _beam
from onefeed.decoding.beam import NEG_INF, BeamResult, StepFn, reorder_state
from onefeed.decoding.text import EOS


class DictTrie:
    def __init__(self) -> None:
        self.root: dict[int, Any] = {}
        self.size = 0

    @classmethod
    def from_codes(cls, codes: np.ndarray, items: Sequence[int] | None = None) -> "DictTrie":
        trie = cls()
        items = range(len(codes)) if items is None else items
        for item, row in zip(items, np.asarray(codes).tolist()):
            trie.add(int(item), row)
        return trie

    def add(self, item: int, codes: Sequence[int]) -> None:
        node = self.root
        for c in codes[:-1]:
            node = node.setdefault(int(c), {})
        if int(codes[-1]) in node:
            raise ValueError(f"codes {tuple(codes)} already present")
        node[int(codes[-1])] = item  # leaf value = item id
        self.size += 1

    def remove(self, codes: Sequence[int]) -> None:
        path = [self.root]
        for c in codes[:-1]:
            path.append(path[-1][int(c)])
        del path[-1][int(codes[-1])]
        for depth in range(len(codes) - 1, 0, -1):  # prune empty branches
            if not path[depth]:
                del path[depth - 1][int(codes[depth - 1])]
        self.size -= 1

    def allowed(self, prefix: Sequence[int]) -> list[int]:
        """Codes that may follow ``prefix`` (the ``prefix_allowed_tokens_fn`` contract)."""
        node: Any = self.root
        for c in prefix:
            if not isinstance(node, dict) or int(c) not in node:
                return []
            node = node[int(c)]
        return list(node) if isinstance(node, dict) else []

    def item(self, codes: Sequence[int]) -> int:
        node: Any = self.root
        for c in codes:
            node = node[int(c)]
        return int(node)


def reference_beam_search(step: StepFn, state: Any, trie: DictTrie, n_users: int, beam: int,
                          k: int | None = None,
                          reorder: Callable[[Any, torch.Tensor], Any] = reorder_state,
                          profile: dict[str, float] | None = None) -> BeamResult:
    """Same search as ``beam_search`` with per-beam Python masking (HF/GENRE style).

    Per level: one step over every beam, then a Python loop asks the dict trie which codes
    may follow each beam's prefix and opens them in a -inf mask (HF's
    ``PrefixConstrainedLogitsProcessor`` with GENRE's trie), then one ``topk`` over
    (B, W * V). Prefixes are turned into lists once per level, not once per beam.
    """
    k = beam if k is None else k
    t_start = _beam.profile_clock()
    mask_time = step_time = 0.0
    b = n_users
    scores = torch.zeros(b)
    prefix = torch.zeros(b, 0, dtype=torch.long)
    width = 1
    n_levels = _depth(trie)
    for level in range(n_levels):
        t0 = _beam.profile_clock()
        logp, state = step(state, prefix, level)
        v = logp.shape[1]
        step_time += _beam.profile_clock() - t0
        t0 = _beam.profile_clock()
        mask = torch.full_like(logp, NEG_INF)
        for row, seq in enumerate(prefix.tolist()):  # HF PrefixConstrainedLogitsProcessor
            allowed = trie.allowed(seq)  # [] for a dead beam's invalid prefix: stays -inf
            if allowed:
                mask[row, allowed] = 0.0
        mask_time += _beam.profile_clock() - t0
        cand = (scores.unsqueeze(1) + logp + mask).view(b, width * v)
        w_next = min(beam, width * v)
        top_scores, top_idx = cand.topk(w_next, dim=1)
        parent = (torch.arange(b).unsqueeze(1) * width + top_idx // v).view(-1)
        code = (top_idx % v).view(-1)
        scores = top_scores.view(-1)
        prefix = torch.cat([prefix.index_select(0, parent), code.unsqueeze(1)], dim=1)
        width = w_next
        if level < n_levels - 1:
            state = reorder(state, parent)
    items = torch.tensor([trie.item(p) if s > NEG_INF else -1
                          for p, s in zip(prefix.tolist(), scores.tolist())]).view(b, width)
    out = BeamResult(items[:, :k], scores.view(b, width)[:, :k], prefix.view(b, width, -1)[:, :k])
    if profile is not None:
        profile["mask"] = profile.get("mask", 0.0) + mask_time
        profile["step"] = profile.get("step", 0.0) + step_time
        profile["total"] = profile.get("total", 0.0) + _beam.profile_clock() - t_start
    return out


def _depth(trie: DictTrie) -> int:
    node: Any = trie.root
    depth = 0
    while isinstance(node, dict):
        node = next(iter(node.values()))
        depth += 1
    return depth


def exact_scores(step: StepFn, state: Any, codes: np.ndarray, n_users: int,
                 reorder: Callable[[Any, torch.Tensor], Any] = reorder_state) -> torch.Tensor:
    """(B, n_items) log-probability of every item's full code tuple, per user."""
    codes_t = torch.as_tensor(np.asarray(codes), dtype=torch.long)
    n_items, n_levels = codes_t.shape
    out = torch.zeros(n_users, n_items)
    for user in range(n_users):
        st = reorder(state, torch.full((n_items,), user, dtype=torch.long))
        for level in range(n_levels):
            logp, st = step(st, codes_t[:, :level], level)
            out[user] += logp.gather(1, codes_t[:, level:level + 1]).squeeze(1)
    return out


def exact_topk(step: StepFn, state: Any, codes: np.ndarray, n_users: int, k: int,
               reorder: Callable[[Any, torch.Tensor], Any] = reorder_state
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, k) items and scores by exact enumeration of the catalogue."""
    scores = exact_scores(step, state, codes, n_users, reorder)
    top = scores.topk(min(k, scores.shape[1]), dim=1)
    return top.indices, top.values


def greedy_constrained(step: StepFn, state: Any, trie: DictTrie, n_users: int
                       ) -> tuple[torch.Tensor, torch.Tensor]:
    """(B,) items and scores: at each level the most likely allowed code."""
    prefix = torch.zeros(n_users, 0, dtype=torch.long)
    total = torch.zeros(n_users)
    for level in range(_depth(trie)):
        logp, state = step(state, prefix, level)
        chosen = []
        for row, seq in enumerate(prefix.tolist()):
            allowed = trie.allowed(seq)
            best = max(allowed, key=lambda c: float(logp[row, c]))
            chosen.append(best)
            total[row] += logp[row, best]
        prefix = torch.cat([prefix, torch.tensor(chosen).unsqueeze(1)], dim=1)
    items = torch.tensor([trie.item(p) for p in prefix.tolist()])
    return items, total


def reference_text_beam_search(next_logits: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                               n_rows: int, beam: int, k: int, max_len: int,
                               length_penalty: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """``text.text_beam_search`` as first written: every beam (also the ``beam`` copies of the
    empty prefix at the first step) is fed to the model, each beam's top ``beam`` words are
    kept, then a cross-beam top-k picks the next beams; a row stops only when no beam can
    enter its top ``k``. Same outputs (tests), more work per step."""
    if k > beam * max_len:
        raise ValueError(f"k={k} > beam * max_len = {beam * max_len}")
    b, w = n_rows, beam
    seqs = torch.zeros(b, w, 0, dtype=torch.long)
    scores = torch.full((b, w), NEG_INF)
    scores[:, 0] = 0.0  # one live beam at the start
    fin_scores = torch.full((b, 0), NEG_INF)
    fin_tokens = torch.zeros(b, 0, max_len, dtype=torch.long)
    active = torch.ones(b, dtype=torch.bool)
    for t in range(max_len):
        rows = active.nonzero().squeeze(1)  # (A,)
        if not len(rows):
            break
        a = len(rows)
        logits = next_logits(rows.repeat_interleave(w), seqs[rows].reshape(a * w, t)).float()
        lse = torch.logsumexp(logits, dim=1)
        eos = (logits[:, EOS] - lse).view(a, w)
        logits[:, EOS] = NEG_INF
        top_val, top_idx = logits.topk(min(w, logits.shape[1] - 1), dim=1)
        live = scores[rows]  # (A, W)
        if t > 0:  # finishing here: a query of t words
            fin = torch.full((b, w), NEG_INF)
            fin[rows] = (live + eos) / (t ** length_penalty)
            fin_scores = torch.cat([fin_scores, fin], dim=1)
            fin_tokens = torch.cat([fin_tokens, torch.nn.functional.pad(seqs, (0, max_len - t))],
                                   dim=1)
        cand = (live.unsqueeze(-1) + (top_val - lse.unsqueeze(1)).view(a, w, -1)).view(a, -1)
        new_scores, pick = cand.topk(w, dim=1)  # (A, W)
        per_beam = top_val.shape[1]
        parent, word = pick // per_beam, top_idx.view(a, -1).gather(1, pick)
        new_seqs = torch.cat([seqs[rows].gather(1, parent.unsqueeze(-1).expand(-1, -1, t)),
                              word.unsqueeze(-1)], dim=2)
        seqs = torch.cat([seqs, torch.zeros(b, w, 1, dtype=torch.long)], dim=2)
        seqs[rows] = new_seqs
        scores[rows] = new_scores
        scores[~active] = NEG_INF
        if length_penalty == 0.0 and fin_scores.shape[1] >= k:
            kth = fin_scores.topk(k, dim=1).values[:, -1]
            active &= ~(scores.max(dim=1).values <= kth)
    if active.any():  # hypotheses still open at max_len count as finished (truncated)
        open_scores = torch.where(active.unsqueeze(1), scores, NEG_INF)
        fin_scores = torch.cat([fin_scores, open_scores / (max_len ** length_penalty)], dim=1)
        fin_tokens = torch.cat([fin_tokens, torch.nn.functional.pad(
            seqs, (0, max_len - seqs.shape[2]))], dim=1)
    best, pick = fin_scores.topk(min(k, fin_scores.shape[1]), dim=1)
    tokens = torch.gather(fin_tokens, 1, pick.unsqueeze(-1).expand(-1, -1, max_len))
    return tokens, best
