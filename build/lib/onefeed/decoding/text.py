"""Batched beam search over word pieces (query generation: NSQP, ID2DESC).

Knows nothing of the model: ``next_logits(rows, words)`` maps (N,) row indices into the
conditioning batch and (N, t) local word ids generated so far to (N, V) unnormalised scores of
the next local token, where local token 0 is EOS. Every beam that ends (EOS) becomes a
finished hypothesis; the top ``k`` finished hypotheses by (optionally length-normalised)
log-prob are returned per row. Beams are distinct token sequences, so the ``k`` outputs are
distinct.

Per step only each beam's top ``beam`` continuations are kept before the cross-beam top-k
(an exact reduction: no other continuation can enter the beam), so no (N, V) score tensor is
built beside the logits. Without length normalisation a row stops as soon as none of its live
beams can still enter its top ``k`` (scores only fall as words are added), and finished rows
are no longer fed to the model.
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
