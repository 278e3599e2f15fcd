"""Shared machinery of the neural sequential baselines (SASRec, GRU4Rec, BERT4Rec).

Item ids are shifted by one inside the networks (0 is padding). One training pass covers all
positions of each user's train sequence at once (the SASRec recipe): the last
``max_history + 1`` train items give ``max_history`` (input, next-item) pairs. Early stopping
keeps the weights with the best valid NDCG@10 (full ranking).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from onefeed.baselines.base import (EarlyStopper, Timer, TrainLog, recommend_in_chunks, set_seed,
                                    valid_cases, valid_ndcg10)
from onefeed.data.schemas import Dataset
from onefeed.data.views import RecCases, train_sequences
from onefeed.tasks.rec import length_batches


@dataclass
class SeqConfig:
    """Training hyperparameters common to the sequential baselines."""

    max_history: int = 50  # model window; TIGER's protocol uses 20
    d_model: int = 64
    n_layers: int = 2
    n_heads: int = 2
    dropout: float = 0.2
    lr: float = 1e-3
    weight_decay: float = 0.0
    batch_size: int = 256
    max_epochs: int = 200
    patience: int = 5  # epochs without valid NDCG@10 gain before stopping
    valid_users: int | None = None  # early-stop on a fixed subset of valid users (None = all)
    filter_seen: bool = False  # TIGER protocol: do not remove history items from the ranking
    progress: bool = True
    time_limit_min: float = 0.0  # stop after the epoch that passes this wall time (0 = none)


def left_pad(seqs: list[np.ndarray], length: int, shift: int = 1) -> np.ndarray:
    """Last ``length`` ids of each sequence, ``+shift``, left-padded with 0: (n, length) int64."""
    out = np.zeros((len(seqs), length), dtype=np.int64)
    for row, seq in enumerate(seqs):
        tail = seq[-length:] if length else seq[:0]
        if len(tail):
            out[row, length - len(tail):] = tail + shift
    return out


def history_tokens(history: np.ndarray, length: int) -> torch.Tensor:
    """(n, H) item ids left-padded -1 -> (n, length) tokens (item+1, 0 = pad)."""
    h = history[:, -length:] + 1
    if h.shape[1] < length:
        h = np.concatenate([np.zeros((len(h), length - h.shape[1]), dtype=np.int64), h], axis=1)
    return torch.as_tensor(np.maximum(h, 0))


def trim_left(*arrays: torch.Tensor, pad_from: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Drop leading columns that are padding in every row of ``pad_from`` (speed, same result
    up to absolute positions, which are counted from the right in every model here)."""
    used = (pad_from != 0).any(dim=0).nonzero()
    start = int(used[0]) if len(used) else pad_from.shape[1] - 1
    return tuple(a[:, start:] for a in arrays)


class SequentialRecommender:
    """Base class: subclasses build ``self.net`` and define ``examples``, ``loss``, ``scores``."""

    Config: type = SeqConfig

    def __init__(self) -> None:
        self.cfg: Any = None
        self.net: torch.nn.Module | None = None
        self.n_items = 0

    # --- subclass hooks -------------------------------------------------------------
    def build(self, n_items: int, cfg: Any) -> torch.nn.Module:
        raise NotImplementedError

    def examples(self, seqs: list[np.ndarray], cfg: Any) -> tuple[np.ndarray, np.ndarray]:
        """Default (causal): inputs = window[:-1], targets = window[1:], both (n, L), 0 = pad."""
        window = left_pad(seqs, cfg.max_history + 1)
        return window[:, :-1], window[:, 1:]

    def loss(self, inputs: torch.Tensor, targets: torch.Tensor,
             rng: np.random.Generator) -> torch.Tensor:
        raise NotImplementedError

    def scores(self, history: np.ndarray) -> torch.Tensor:
        """(c, H) item ids left-padded -1 -> (c, n_items) scores."""
        raise NotImplementedError

    # --- the shared fit / recommend -------------------------------------------------
    def fit(self, ds: Dataset, cfg: Any, seed: int) -> TrainLog:
        self.cfg, self.n_items = cfg, ds.n_items
        rng = set_seed(seed)
        self.net = self.build(ds.n_items, cfg)
        seqs = [s for s in train_sequences(ds) if len(s) >= 2]
        inputs, targets = self.examples(seqs, cfg)
        valid = valid_cases(ds, cfg.max_history, cfg.valid_users, seed)
        opt = torch.optim.Adam(self.net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        stopper, log = EarlyStopper(cfg.patience), TrainLog()
        started = time.perf_counter()
        with _progress(cfg.progress) as bar:
            task = bar.add_task(type(self).__name__, total=cfg.max_epochs)
            for epoch in range(1, cfg.max_epochs + 1):
                with Timer() as t:
                    loss = self._epoch(inputs, targets, opt, rng, cfg.batch_size)
                score = valid_ndcg10(self, valid)
                log.epochs.append(epoch)
                log.loss.append(loss)
                log.valid_ndcg10.append(score)
                log.epoch_seconds.append(t.seconds)
                bar.update(task, advance=1, description=f"{type(self).__name__} loss {loss:.3f} "
                                                        f"valid ndcg@10 {score:.4f}")
                if cfg.progress and not bar.console.is_terminal:  # logs: one line per epoch
                    bar.console.print(f"{type(self).__name__} epoch {epoch} loss {loss:.4f} "
                                      f"valid ndcg@10 {score:.4f} ({t.seconds:.0f}s)")
                if stopper.step(epoch, score, self.net):
                    break
                if cfg.time_limit_min and time.perf_counter() - started > 60 * cfg.time_limit_min:
                    log.choices["stopped"] = "time_limit"  # the kept weights: best epoch so far
                    break
        stopper.restore(self.net)
        log.best_epoch = stopper.best_epoch
        return log

    def _epoch(self, inputs: np.ndarray, targets: np.ndarray, opt: torch.optim.Optimizer,
               rng: np.random.Generator, batch_size: int) -> float:
        assert self.net is not None
        self.net.train()
        total, n = 0.0, 0
        for idx in length_batches((inputs != 0).sum(1), batch_size, rng, pool=32):
            x, y = torch.as_tensor(inputs[idx]), torch.as_tensor(targets[idx])
            x, y = trim_left(x, y, pad_from=x)
            loss = self.loss(x, y, rng)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
            n += len(idx)
        return total / max(n, 1)

    @torch.no_grad()
    def recommend(self, cases: RecCases, k: int) -> np.ndarray:
        if self.net is None:
            raise RuntimeError(f"{type(self).__name__}.recommend called before fit")
        self.net.eval()
        return recommend_in_chunks(self.scores, cases, k, self.cfg.filter_seen)



def _progress(enabled: bool) -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("epoch {task.completed}"),
                    TimeElapsedColumn(), disable=not enabled, transient=False)
