"""Batched beam search over word pieces (query generation: NSQP, ID2DESC).

Knows nothing of the model: ``next_logits(rows, words)`` maps (N,) row indices into the
conditioning batch and (N, t) local word ids generated so far to (N, V) unnormalised scores of
the next local token, where local token 0 is EOS. Every beam that ends (EOS) becomes a
finished hypothesis; the top ``k`` finished hypotheses by (optionally length-normalised)
log-prob are returned per row. Beams are distinct token sequences, so the ``k`` outputs are
distinct.

Per step the model sees only the live beams (at the first step one per row, not ``beam``
copies of the empty prefix), and one top-k per row over all its beams' continuations picks the
next beams: on CPU a single wide top-k is several times cheaper than a top-k per beam
followed by a cross-beam one. Without length normalisation a beam leaves as soon as it can no
longer enter its row's top ``k`` (scores only fall as words are added), and a row with no beam
left is no longer fed to the model.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

NEG_INF = float("-inf")
EOS = 0


def text_beam_search(next_logits: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                     n_rows: int, beam: int, k: int, max_len: int,
                     length_penalty: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """-> (tokens (n_rows, k, max_len) local ids 0-padded, scores (n_rows, k); -inf = none).

    Score of a finished hypothesis of n words: sum log p / n ** length_penalty.
    """
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
        live = scores[rows]  # (A, W)
        logp = _live_log_probs(next_logits, rows, seqs[rows], live > NEG_INF)  # (A, W, V)
        if t > 0:  # finishing here: a query of t words
            fin = torch.full((b, w), NEG_INF)
            fin[rows] = (live + logp[:, :, EOS]) / (t ** length_penalty)
            fin_scores = torch.cat([fin_scores, fin], dim=1)
            fin_tokens = torch.cat([fin_tokens, torch.nn.functional.pad(seqs, (0, max_len - t))],
                                   dim=1)
        logp[:, :, EOS] = NEG_INF
        v = logp.shape[2]
        # one top-k per row over every beam's continuations (one wide top-k is far cheaper
        # on CPU than a top-k per beam followed by a cross-beam one)
        new_scores, pick = logp.add_(live.unsqueeze(-1)).view(a, w * v).topk(w, dim=1)
        parent, word = pick // v, pick % v
        new_seqs = torch.cat([seqs[rows].gather(1, parent.unsqueeze(-1).expand(-1, -1, t)),
                              word.unsqueeze(-1)], dim=2)
        seqs = torch.cat([seqs, torch.zeros(b, w, 1, dtype=torch.long)], dim=2)
        seqs[rows] = new_seqs
        scores[rows] = new_scores
        scores[~active] = NEG_INF
        if length_penalty == 0.0 and fin_scores.shape[1] >= k:
            # a beam no better than the k-th finished hypothesis never enters the top k
            # (scores only fall): it leaves the beam, and a row with no beam left stops
            kth = fin_scores.topk(k, dim=1).values[:, -1:]
            scores.masked_fill_(scores <= kth, NEG_INF)
            active &= scores.max(dim=1).values > NEG_INF
    if active.any():  # hypotheses still open at max_len count as finished (truncated)
        open_scores = torch.where(active.unsqueeze(1), scores, NEG_INF)
        fin_scores = torch.cat([fin_scores, open_scores / (max_len ** length_penalty)], dim=1)
        fin_tokens = torch.cat([fin_tokens, torch.nn.functional.pad(
            seqs, (0, max_len - seqs.shape[2]))], dim=1)
    best, pick = fin_scores.topk(min(k, fin_scores.shape[1]), dim=1)
    tokens = torch.gather(fin_tokens, 1, pick.unsqueeze(-1).expand(-1, -1, max_len))
    return tokens, best


def _live_log_probs(next_logits: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                    rows: torch.Tensor, seqs: torch.Tensor, live: torch.Tensor) -> torch.Tensor:
    """(A, W, V) next-token log-probs of the beams ``seqs`` (A, W, t) of ``rows``; only the
    ``live`` (A, W) beams are fed to the model (at the first step one beam per row), the dead
    ones get -inf."""
    a, w, t = seqs.shape
    if bool(live.all()):
        return torch.log_softmax(next_logits(rows.repeat_interleave(w), seqs.reshape(a * w, t))
                                 .float(), dim=1).view(a, w, -1)
    flat = live.flatten().nonzero().squeeze(1)
    logp = torch.log_softmax(next_logits(rows[flat // w], seqs.reshape(a * w, t)[flat]).float(),
                             dim=1)
    out = torch.full((a * w, logp.shape[1]), NEG_INF)
    out[flat] = logp
    return out.view(a, w, -1)


def prefix_parents(prev_rows: torch.Tensor | None, prev_prefix: torch.Tensor, rows: torch.Tensor,
                   prefix: torch.Tensor) -> torch.Tensor | None:
    """For a cached decoder between two ``next_logits`` calls: (N,) index of each prefix's
    parent among the previous call's prefixes (same row, same first t - 1 tokens), or None
    when some prefix has none (first call, a different length, or any other pattern) and the
    caller must run the full-prefix pass.

    Matched by a polynomial hash of (row, tokens) and then checked token by token, so a hash
    collision can only cost a full pass, never a wrong parent."""
    if prev_rows is None or prefix.shape[1] != prev_prefix.shape[1] + 1:
        return None
    prev = torch.cat([prev_rows.unsqueeze(1), prev_prefix], dim=1)
    cur = torch.cat([rows.unsqueeze(1), prefix[:, :-1]], dim=1)
    if not len(prev) or not len(cur):
        return None
    powers = _HASH_BASE ** torch.arange(prev.shape[1], dtype=torch.long)  # wraps mod 2^64
    h_prev, h_cur = (prev * powers).sum(1), (cur * powers).sum(1)
    order = h_prev.argsort()
    at = torch.searchsorted(h_prev[order], h_cur).clamp_(max=len(prev) - 1)
    parent = order[at]
    return parent if torch.equal(prev[parent], cur) else None


_HASH_BASE = 1_000_003
