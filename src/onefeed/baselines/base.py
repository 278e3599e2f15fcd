"""The one shape every recommendation baseline (and the generative model's adapter) shares.

    model = make("sasrec", {"d_model": 64})      # or SASRec(); any ``Recommender``
    log = model.fit(ds, cfg, seed)               # trains on the train split, early-stops on valid
    topk = model.recommend(cases, k)             # (n, k) item ids, full ranking over all items

``recommend`` ranks the *whole* catalogue (no sampled negatives). Seen-item filtering is off
by default, as in TIGER's protocol (a user may re-consume an item); ``filter_seen=True`` removes
every history item from the ranking. Both the bench protocol and the report print the choice.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

import numpy as np
import torch

from onefeed.data.schemas import Dataset
from onefeed.data.views import RecCases, rec_cases
from onefeed.evaluation.metrics import ndcg_at_k, target_ranks


@dataclass
class TrainLog:
    """What ``fit`` reports: per-epoch curves and the epoch whose weights were kept."""

    epochs: list[int] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    valid_ndcg10: list[float] = field(default_factory=list)
    epoch_seconds: list[float] = field(default_factory=list)
    best_epoch: int = -1
    choices: dict[str, Any] = field(default_factory=dict)  # settings picked on validation
    # the training loop's own seconds, summed over resumes (None: the bench times ``fit``);
    # a resumed or reloaded run would otherwise report only its last invocation
    train_seconds: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class Recommender(Protocol):
    """fit on a ``Dataset``'s train split, then rank all items for each case."""

    def fit(self, ds: Dataset, cfg: Any, seed: int) -> TrainLog: ...

    def recommend(self, cases: RecCases, k: int) -> np.ndarray: ...


def set_seed(seed: int) -> np.random.Generator:
    """Seed torch and return a numpy generator (every baseline draws randomness from these)."""
    torch.manual_seed(seed)
    return np.random.default_rng(seed)


def mask_seen(scores: np.ndarray | torch.Tensor, history: np.ndarray) -> None:
    """In place: set each case's history items (ids >= 0) to -inf in (n, n_items) ``scores``."""
    rows, cols = np.nonzero(history >= 0)
    items = history[rows, cols]
    if isinstance(scores, torch.Tensor):
        scores[torch.as_tensor(rows), torch.as_tensor(items)] = float("-inf")
    else:
        scores[rows, items] = -np.inf


def topk_items(scores: torch.Tensor, k: int) -> np.ndarray:
    """(n, n_items) scores -> (n, k) item ids, best first (tie order is torch.topk's)."""
    k = min(k, scores.shape[1])
    return torch.topk(scores, k, dim=1, sorted=True).indices.cpu().numpy().astype(np.int64)


def recommend_in_chunks(score_fn: Callable[[np.ndarray], torch.Tensor], cases: RecCases, k: int,
                        filter_seen: bool, chunk: int = 1024) -> np.ndarray:
    """Full-catalogue top-k, scoring ``chunk`` cases at a time to bound memory.

    ``score_fn`` maps a (c, H) history block to (c, n_items) scores.
    """
    out = []
    for start in range(0, len(cases.users), chunk):
        hist = cases.history[start:start + chunk]
        scores = score_fn(hist).float()
        if filter_seen:
            mask_seen(scores, hist)
        out.append(topk_items(scores, k))
    return np.concatenate(out) if out else np.zeros((0, k), dtype=np.int64)


def valid_ndcg10(model: Recommender, valid: RecCases) -> float:
    """Mean NDCG@10 on the valid cases: the early-stopping signal of every trained baseline."""
    ranks = target_ranks(model.recommend(valid, 10), valid.targets)
    return float(ndcg_at_k(ranks, 10).mean()) if len(ranks) else 0.0


def valid_cases(ds: Dataset, max_history: int, max_users: int | None, seed: int) -> RecCases:
    """Valid cases for early stopping, optionally a fixed random subset of users (speed)."""
    cases = rec_cases(ds, "valid", max_history)
    if max_users is not None and len(cases.users) > max_users:
        pick = np.sort(np.random.default_rng(seed).choice(len(cases.users), max_users, replace=False))
        cases = RecCases(cases.users[pick], cases.history[pick], cases.targets[pick])
    return cases


@dataclass
class EarlyStopper:
    """Keep the best weights by valid NDCG@10; stop after ``patience`` epochs without gain."""

    patience: int
    best: float = -1.0
    best_epoch: int = -1
    state: dict[str, torch.Tensor] | None = None
    bad: int = 0

    def step(self, epoch: int, score: float, module: torch.nn.Module) -> bool:
        """Record ``score``; return True when training should stop."""
        if score > self.best:
            self.best, self.best_epoch, self.bad = score, epoch, 0
            self.state = {k: v.detach().clone() for k, v in module.state_dict().items()}
        else:
            self.bad += 1
        return self.bad >= self.patience

    def restore(self, module: torch.nn.Module) -> None:
        if self.state is not None:
            module.load_state_dict(self.state)


class Timer:
    def __enter__(self) -> "Timer":
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self.start
