"""Next-item recommendation examples (GenSAR §3.3.1, NRIP) as model inputs.

Training uses every position of a user's train sequence in one pass: a window of ``T + 1``
items gives inputs ``w[:-1]`` and next-item targets ``w[1:]`` (SASRec / decoder-only style).
Long sequences are cut into consecutive windows so each transition is trained exactly once.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch

from onefeed.models.transformer import Events
from onefeed.sid.table import SidTable
from onefeed.tokens import Vocab


class RecBatch(NamedTuple):
    events: Events  # (B, T) left-padded histories
    target_codes: torch.Tensor  # (B, T, L) codes of the next item at each position, -1 = none
    target_items: torch.Tensor  # (B, T) next item ids, -1 = none


def training_windows(sequences: list[np.ndarray], max_len: int) -> np.ndarray:
    """Per-user item sequences -> (n_windows, max_len + 1) int64, left-padded with -1."""
    rows = []
    for seq in sequences:
        end = len(seq)
        while end >= 2:
            chunk = seq[max(0, end - max_len - 1):end]
            row = np.full(max_len + 1, -1, dtype=np.int64)
            row[max_len + 1 - len(chunk):] = chunk
            rows.append(row)
            end -= max_len
    if not rows:
        return np.empty((0, max_len + 1), dtype=np.int64)
    return np.stack(rows)


def history_events(items: np.ndarray | torch.Tensor, codes: torch.Tensor, vocab: Vocab,
                   behaviour: str = "rec_click") -> Events:
    """(B, T) item ids (-1 = pad) -> Events; ``codes`` is the (n_items, L) SID table tensor."""
    items = torch.as_tensor(items, dtype=torch.long)
    valid = items >= 0
    item_codes = torch.where(valid.unsqueeze(-1), codes[items.clamp(min=0)], -1)
    behaviours = torch.where(valid, vocab.behaviour(behaviour), 0)
    return Events(items, item_codes, behaviours)


def rec_batch(windows: np.ndarray, codes: torch.Tensor, vocab: Vocab) -> RecBatch:
    """(B, T + 1) windows -> RecBatch with inputs ``[:, :-1]`` and targets ``[:, 1:]``."""
    w = torch.as_tensor(windows, dtype=torch.long)
    used = (w[:, :-1] >= 0).any(dim=0).nonzero()
    first = int(used[0]) if len(used) else w.shape[1] - 2
    w = w[:, first:]  # drop leading all-padding columns (positions count from the end)
    inputs, targets = w[:, :-1], w[:, 1:]
    targets = torch.where(inputs >= 0, targets, -1)
    tcodes = torch.where((targets >= 0).unsqueeze(-1), codes[targets.clamp(min=0)], -1)
    return RecBatch(history_events(inputs, codes, vocab), tcodes, targets)


def length_bucketed_batches(windows: np.ndarray, batch_size: int, rng: np.random.Generator,
                            pool: int = 50) -> list[np.ndarray]:
    """Shuffled batches of row indices where each batch holds windows of similar length
    (``windows`` left-padded with -1); see :func:`length_batches`."""
    return length_batches((windows >= 0).sum(axis=1), batch_size, rng, pool)


def length_batches(lengths: np.ndarray, batch_size: int, rng: np.random.Generator,
                   pool: int = 50) -> list[np.ndarray]:
    """Shuffled batches of similar length (less padding, same examples every epoch).

    Rows are shuffled, cut into pools of ``pool`` batches, sorted by length inside a pool,
    batched, and the batch order shuffled again: little padding, still random.
    """
    order = rng.permutation(len(lengths))
    batches = []
    for start in range(0, len(order), pool * batch_size):
        chunk = order[start:start + pool * batch_size]
        chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
        batches += [chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


def sid_tensor(sid: SidTable) -> torch.Tensor:
    return torch.as_tensor(sid.codes, dtype=torch.long)
