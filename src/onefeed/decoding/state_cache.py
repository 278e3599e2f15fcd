"""History-state cache: a user's encoded history, reused across requests.

Every request for a logged user re-encodes the same history; with the serving model that was
more than half of a batched /recommend (the encoder is compute-bound: it scales with the rows,
so batching cannot amortise it). ``StateCache`` keeps the head-input state of each distinct
history row, keyed by the row's content (every event tensor, so the same history gives the
same key however it was sent: a user id or an explicit list of events), per task. The key
holds everything the state depends on except the weights, so a cache belongs to one loaded
model (a reload builds a new predictor, and a new cache); items added to the catalogue get new
codes, hence new keys, and never stale ones.

Bounded (least recently used rows are dropped), used from one thread (the model thread).
Rows of a batch that miss are encoded together, in one call.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from typing import Callable

import torch

from onefeed.models.transformer import Events

Encode = Callable[[Events], torch.Tensor]
"""Events (n, T) -> (n, d) states."""


def row_keys(ev: Events) -> list[bytes]:
    """One 16-byte digest per row of ``ev`` over all of its event tensors."""
    parts = [t.reshape(t.shape[0], -1).to(torch.int64) for t in ev if t is not None]
    flat = torch.cat(parts, dim=1).numpy()
    return [hashlib.blake2b(row.tobytes(), digest_size=16).digest() for row in flat]


def select(ev: Events, rows: torch.Tensor) -> Events:
    return Events(*(t[rows] if t is not None else None for t in ev))


class StateCache:
    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"state cache capacity {capacity}: must be >= 1")
        self.capacity = capacity
        self.states: OrderedDict[tuple[str, bytes], torch.Tensor] = OrderedDict()
        self.hits = self.misses = 0

    def __len__(self) -> int:
        return len(self.states)

    def get(self, task: str, ev: Events, encode: Encode) -> torch.Tensor:
        """(n, d) states of ``ev``'s rows for ``task``: cached rows read, the rest encoded in
        one call of ``encode`` and kept."""
        keys = [(task, k) for k in row_keys(ev)]
        found = [self.states.get(k) for k in keys]
        missing = [i for i, s in enumerate(found) if s is None]
        self.hits += len(keys) - len(missing)
        self.misses += len(missing)
        if missing:
            fresh = encode(select(ev, torch.tensor(missing)) if len(missing) < len(keys) else ev)
            for i, state in zip(missing, fresh):
                found[i] = state.clone()  # not a view that keeps the whole batch alive
                self._put(keys[i], found[i])
        for k in keys:
            if k in self.states:
                self.states.move_to_end(k)
        return torch.stack(found)  # type: ignore[arg-type]

    def _put(self, key: tuple[str, bytes], state: torch.Tensor) -> None:
        self.states[key] = state
        while len(self.states) > self.capacity:
            self.states.popitem(last=False)

    def stats(self) -> dict[str, int]:
        return {"entries": len(self.states), "capacity": self.capacity, "hits": self.hits,
                "misses": self.misses}
