"""ItemKNN: item-item cosine similarity of train co-occurrence (scipy.sparse).

Two items co-occur when the same user interacted with both in the train split. A case's score
for item j is ``sum_{i in history} w_i * sim(i, j)`` with recency weights ``w_i = decay**age``
(``decay = 1`` is the classic unweighted sum). Only the ``neighbours`` most similar items of
each item are kept (0 = all), as in Sarwar et al. 2001.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch

from onefeed.baselines.base import TrainLog, recommend_in_chunks
from onefeed.data.schemas import Dataset
from onefeed.data.views import RecCases, train_sequences


@dataclass
class ItemKNNConfig:
    neighbours: int = 100
    shrink: float = 0.0  # cosine shrinkage: sim = co / (sqrt(n_i n_j) + shrink)
    decay: float = 1.0  # recency weight per step back in the history
    max_history: int = 50
    filter_seen: bool = False


def user_item_matrix(seqs: list[np.ndarray], n_items: int) -> sp.csr_matrix:
    """Binary (n_users, n_items) CSR matrix of train interactions."""
    rows = np.concatenate([np.full(len(s), u) for u, s in enumerate(seqs)]) if seqs else []
    cols = np.concatenate(seqs) if seqs else []
    m = sp.csr_matrix((np.ones(len(cols)), (rows, cols)), shape=(len(seqs), n_items))
    m.data[:] = 1.0  # duplicates summed by the constructor count once
    return m


def cosine_similarity(x: sp.csr_matrix, shrink: float = 0.0) -> sp.csr_matrix:
    """(n_items, n_items) item cosine of columns of ``x`` with zero diagonal."""
    co = (x.T @ x).tocsr().astype(np.float64)
    norms = np.sqrt(np.asarray(co.diagonal()))
    co.setdiag(0)
    co.eliminate_zeros()
    coo = co.tocoo()
    denom = norms[coo.row] * norms[coo.col] + shrink
    return sp.csr_matrix((coo.data / denom, (coo.row, coo.col)), shape=co.shape)


def keep_top(sim: sp.csr_matrix, n: int) -> sp.csr_matrix:
    """Keep the ``n`` largest entries of each row (0 = keep all)."""
    if n <= 0:
        return sim
    rows, cols, vals = [], [], []
    for r in range(sim.shape[0]):
        start, end = sim.indptr[r], sim.indptr[r + 1]
        data, idx = sim.data[start:end], sim.indices[start:end]
        if len(data) > n:
            pick = np.argpartition(-data, n - 1)[:n]
            data, idx = data[pick], idx[pick]
        rows.append(np.full(len(idx), r))
        cols.append(idx)
        vals.append(data)
    return sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                         shape=sim.shape)


class ItemKNN:
    Config = ItemKNNConfig

    def __init__(self) -> None:
        self.cfg = ItemKNNConfig()
        self.sim: sp.csr_matrix | None = None

    def fit(self, ds: Dataset, cfg: ItemKNNConfig, seed: int) -> TrainLog:
        self.cfg = cfg
        x = user_item_matrix(train_sequences(ds), ds.n_items)
        self.sim = keep_top(cosine_similarity(x, cfg.shrink), cfg.neighbours)
        return TrainLog()

    def scores(self, history: np.ndarray) -> torch.Tensor:
        assert self.sim is not None
        history = history[:, -self.cfg.max_history:]
        rows, cols = np.nonzero(history >= 0)
        age = history.shape[1] - 1 - cols
        weights = self.cfg.decay ** age
        h = sp.csr_matrix((weights, (rows, history[rows, cols])),
                          shape=(len(history), self.sim.shape[0]))
        return torch.as_tensor((h @ self.sim).toarray())

    def recommend(self, cases: RecCases, k: int) -> np.ndarray:
        if self.sim is None:
            raise RuntimeError("ItemKNN.recommend called before fit")
        return recommend_in_chunks(self.scores, cases, k, self.cfg.filter_seen)
