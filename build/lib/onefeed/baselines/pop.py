"""MostPop: rank every item by its number of train-split interactions (same list for all users)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from onefeed.baselines.base import TrainLog, recommend_in_chunks
from onefeed.data.schemas import Dataset
from onefeed.data.views import RecCases, train_sequences


@dataclass
class PopConfig:
    filter_seen: bool = False


def train_popularity(ds: Dataset) -> np.ndarray:
    """(n_items,) float64 count of each item in the train split."""
    seqs = train_sequences(ds)
    flat = np.concatenate(seqs) if seqs else np.empty(0, dtype=np.int64)
    return np.bincount(flat, minlength=ds.n_items).astype(np.float64)


class MostPop:
    Config = PopConfig

    def __init__(self) -> None:
        self.cfg = PopConfig()
        self.counts: np.ndarray | None = None

    def fit(self, ds: Dataset, cfg: PopConfig, seed: int) -> TrainLog:
        self.cfg = cfg
        counts = train_popularity(ds)
        order = np.lexsort((np.arange(ds.n_items), -counts))  # count desc, then lower id
        self.counts = np.empty(ds.n_items, dtype=np.float32)  # score = n_items - position
        self.counts[order] = np.arange(ds.n_items, 0, -1, dtype=np.float32)
        return TrainLog()

    def recommend(self, cases: RecCases, k: int) -> np.ndarray:
        if self.counts is None:
            raise RuntimeError("MostPop.recommend called before fit")
        row = torch.as_tensor(self.counts)
        return recommend_in_chunks(lambda h: row.expand(len(h), -1).clone(), cases, k,
                                   self.cfg.filter_seen)
