"""The one DDP helper: process group, rank, reductions and gathers under ``torchrun`` (gloo).

Every training path (``train/loop.py``, ``embeddings/biencoder.py``, ``sid/rqvae.py``) takes its
rank and world size from :func:`dist_info` and wraps its module in torch's
``DistributedDataParallel`` (:func:`wrap`); nothing here averages gradients by hand. In a
single process every function is the identity, so code paths are the same with and without
``torchrun``. Multi-node: ``torchrun --nnodes N --node_rank R --rdzv_backend c10d
--rdzv_endpoint HOST:PORT`` (docs/SCALE.md).
"""

from __future__ import annotations

import os

import numpy as np
import torch
import torch.distributed as dist


def dist_info() -> tuple[int, int]:
    """(rank, world_size), initialising the gloo process group under torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("gloo")
    return (dist.get_rank(), world) if world > 1 else (0, 1)


def active() -> bool:
    return dist.is_available() and dist.is_initialized()


def all_sum(values: np.ndarray) -> np.ndarray:
    """``values`` summed over the DDP ranks (unchanged in a single process)."""
    if not active():
        return values
    t = torch.as_tensor(values, dtype=torch.float64)
    dist.all_reduce(t)
    return t.numpy()


def any_rank(flag: bool) -> bool:
    """True on every rank when ``flag`` holds on any rank."""
    return bool(all_sum(np.array([float(flag)]))[0] > 0)


def barrier() -> None:
    if active():
        dist.barrier()


def wrap(module: torch.nn.Module, find_unused_parameters: bool = False) -> torch.nn.Module:
    """``module`` in ``DistributedDataParallel`` under torchrun (gradients averaged over ranks
    in backward; rank 0's weights broadcast at wrap time), else ``module`` itself."""
    if not active() or dist.get_world_size() == 1:
        return module
    return torch.nn.parallel.DistributedDataParallel(
        module, find_unused_parameters=find_unused_parameters)


def gather_rows(local: torch.Tensor, rows: list[int]) -> list[torch.Tensor]:
    """Every rank's ``local`` (``rows[r]`` rows each, any trailing shape), detached, in rank
    order; rows are padded for the collective and cut back."""
    if not active():
        return [local.detach()]
    pad = max(rows)
    buf = local.detach().new_zeros((pad, *local.shape[1:]))
    buf[: local.shape[0]] = local.detach()
    out = [torch.empty_like(buf) for _ in rows]
    dist.all_gather(out, buf)
    return [o[:n] for o, n in zip(out, rows)]


def split_rows(n: int, world: int) -> list[int]:
    """Row counts of ``n`` rows dealt round-robin over ``world`` ranks (rank r: rows r, r+W…)."""
    return [len(range(r, n, world)) for r in range(world)]
