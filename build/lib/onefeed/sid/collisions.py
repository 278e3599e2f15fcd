"""Collisions, disambiguation and codebook statistics.

* ``collision_rate``: GenSAR §4.4.2, ``(1 - #unique identifiers / #unique items) * 100``.
* ``disambiguate``: TIGER's extra code level — items sharing a code tuple get 0, 1, 2, … in
  item-id order, so every row is unique; the new level's codebook size is the largest group.
* ``utilisation`` / ``perplexity``: per-level fraction of codes used and exp(entropy) of the
  code distribution (perplexity == codebook size means perfectly uniform use).
"""

from __future__ import annotations

import numpy as np


def collision_rate(codes: np.ndarray) -> float:
    """Percentage of items that lose a distinct identifier (GenSAR §4.4.2). codes: (n, L)."""
    n = codes.shape[0]
    if n == 0:
        return 0.0
    return (1.0 - np.unique(codes, axis=0).shape[0] / n) * 100.0


def group_ids(codes: np.ndarray) -> np.ndarray:
    """(n,) int64: the index of each row's distinct code tuple (rows equal <=> same id)."""
    _, inverse = np.unique(codes, axis=0, return_inverse=True)
    return inverse.reshape(-1).astype(np.int64)


def disambiguate(codes: np.ndarray) -> tuple[np.ndarray, int]:
    """Append a level numbering items within each colliding group (item-id order).

    codes: (n, L) int64 -> ((n, L+1) int64 with unique rows, size of the new level).
    """
    n = codes.shape[0]
    groups = group_ids(codes)
    order = np.lexsort((np.arange(n), groups))  # by group, then item id
    sorted_groups = groups[order]
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_groups)) + 1]
    rank_sorted = np.arange(n) - np.repeat(starts, np.diff(np.r_[starts, n]))
    extra = np.empty(n, dtype=np.int64)
    extra[order] = rank_sorted
    size = int(extra.max()) + 1 if n else 1
    return np.concatenate([codes.astype(np.int64), extra[:, None]], axis=1), size


def utilisation(codes: np.ndarray, sizes: tuple[int, ...]) -> list[float]:
    """Per level, the fraction of the codebook used by at least one item."""
    return [float(np.unique(codes[:, j]).size / sizes[j]) for j in range(codes.shape[1])]


def perplexity(codes: np.ndarray, sizes: tuple[int, ...]) -> list[float]:
    """Per level, exp(entropy) of the marginal code distribution."""
    out = []
    for j in range(codes.shape[1]):
        counts = np.bincount(codes[:, j], minlength=sizes[j]).astype(np.float64)
        p = counts[counts > 0] / counts.sum()
        out.append(float(np.exp(-(p * np.log(p)).sum())))
    return out


def max_group_size(codes: np.ndarray) -> int:
    """Largest number of items sharing one code tuple."""
    return int(np.bincount(group_ids(codes)).max()) if codes.shape[0] else 0
