"""What the training loop asks of a task (``onefeed.train.loop.fit`` runs any of these).

A task owns its data and its metric; the loop owns everything else (optimizer, schedule,
guards, validation cadence, early stopping, checkpoints, DDP). All randomness of an epoch's
batches is drawn in :meth:`Task.batches` from the ``rng`` the loop derives from
``(seed, epoch)``, so ``loss`` is a function of (model, batch) and a resumed run repeats the
uninterrupted one exactly.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch


@runtime_checkable
class Task(Protocol):
    def steps_per_epoch(self, world: int) -> int:
        """Optimizer steps of one epoch on each of ``world`` ranks (equal on every rank)."""
        ...

    def batches(self, epoch: int, rng: np.random.Generator, rank: int, world: int
                ) -> Iterator[Any]:
        """This rank's batches of ``epoch``, in order; at most ``steps_per_epoch(world)``."""
        ...

    def loss(self, model: torch.nn.Module, batch: Any) -> tuple[torch.Tensor, dict[str, float]]:
        """(scalar loss to minimise, loss value of each sub-task by name) on one batch.

        ``model`` is the bare model or, under DDP, the wrapped one only via ``forward`` —
        the loop routes this call through DistributedDataParallel itself."""
        ...

    def validate(self, model: torch.nn.Module, rank: int, world: int) -> dict[str, float]:
        """Validation metrics with a ``score`` key (higher is better; early stopping watches
        it). Every rank must return the same numbers (shard and sum, or compute all)."""
        ...


def rank_shard(n: int, rng: np.random.Generator, rank: int, world: int) -> np.ndarray:
    """Rows of ``rank``: a seeded permutation of ``range(n)`` dealt round-robin, cut so every
    rank holds ``n // world`` rows (the same ``rng`` state on every rank)."""
    return rng.permutation(n)[rank::world][: n // world]


def steps_for(n_rows: int, batch_size: int, world: int) -> int:
    """Batches of ``batch_size`` over one rank's ``n_rows // world`` rows."""
    return -(-(n_rows // world) // batch_size)
