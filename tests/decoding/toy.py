"""A toy model-free step function and catalogue for decoding tests."""

from __future__ import annotations

import numpy as np
import torch


class ToyStep:
    """log p(c_j | state, prefix) from fixed random matrices; state is (N, d)."""

    def __init__(self, sizes: tuple[int, ...], d: int = 8, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        self.w = [torch.randn(d, v, generator=g) * 2 for v in sizes]
        self.e = [torch.randn(v, d, generator=g) for v in sizes]
        self.calls = 0

    def __call__(self, state, prefix, level):
        self.calls += 1
        z = state.clone()
        for i in range(level):
            z = z + self.e[i][prefix[:, i]]
        return torch.log_softmax(torch.tanh(z) @ self.w[level], dim=-1), state


def toy_catalogue(n_items: int, sizes: tuple[int, ...], seed: int = 0) -> np.ndarray:
    """(n_items, L) unique random code rows."""
    rng = np.random.default_rng(seed)
    total = int(np.prod(sizes))
    flat = rng.choice(total, size=n_items, replace=False)
    return np.stack(np.unravel_index(flat, sizes), axis=1).astype(np.int64)


def toy_state(n_users: int, d: int = 8, seed: int = 1) -> torch.Tensor:
    return torch.randn(n_users, d, generator=torch.Generator().manual_seed(seed))
