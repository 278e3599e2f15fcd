"""Read-only views of a ``Dataset`` that models and evaluators consume.

Recommendation cases follow one rule for both split protocols: the history of a case is
every item event of the user strictly before the target (``position`` order); the target is
the user's first item event in the requested split. For leave-one-out that is the TIGER /
SASRec protocol (valid: history = train; test: history = train + valid).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import polars as pl

from onefeed.data.schemas import Dataset

ITEM_BEHAVIOURS = ("rec_click", "search_click")


class RecCases(NamedTuple):
    users: np.ndarray  # (n,) int64
    history: np.ndarray  # (n, max_history) int64 item ids, left-padded with -1, most recent last
    targets: np.ndarray  # (n,) int64


def item_events(ds: Dataset) -> pl.DataFrame:
    """Events that name an item (rec and search clicks), sorted by (user, position)."""
    return ds.events.filter(pl.col("behaviour").is_in(ITEM_BEHAVIOURS)).sort(["user", "position"])


def train_sequences(ds: Dataset) -> list[np.ndarray]:
    """Per user (index = user id), the chronological train-split item ids (int64)."""
    ev = item_events(ds).filter(pl.col("split") == "train")
    out = [np.empty(0, dtype=np.int64) for _ in range(ds.n_users)]
    grouped = ev.group_by("user", maintain_order=True).agg(pl.col("item"))
    for user, items in zip(grouped["user"].to_list(), grouped["item"].to_list()):
        out[user] = np.asarray(items, dtype=np.int64)
    return out


def rec_cases(ds: Dataset, split: str, max_history: int) -> RecCases:
    """One case per user that has an item event in ``split``; see the module docstring."""
    if split not in ("valid", "test"):
        raise ValueError(f"split must be 'valid' or 'test', got {split!r}")
    ev = item_events(ds)
    first = (ev.filter(pl.col("split") == split)
             .group_by("user", maintain_order=True)
             .agg(pl.col("position").first().alias("target_pos"), pl.col("item").first()))
    hist = (ev.join(first.select("user", "target_pos"), on="user")
            .filter(pl.col("position") < pl.col("target_pos"))
            .group_by("user", maintain_order=True)
            .agg(pl.col("item").tail(max_history)))
    first = first.join(hist, on="user", how="left", suffix="_hist").sort("user")
    n = first.height
    history = np.full((n, max_history), -1, dtype=np.int64)
    for row, items in enumerate(first["item_hist"].to_list()):
        if items:
            history[row, max_history - len(items):] = items
    return RecCases(first["user"].to_numpy().astype(np.int64), history,
                    first["item"].to_numpy().astype(np.int64))
