"""History-state cache: a user's encoded history, reused across requests.

Every request for a logged user re-encodes the same history; with the serving model that was
more than half of a batched /recommend (the encoder is compute-bound: it scales with the rows,
so batching cannot amortise it). ``StateCache`` keeps the head-input state of each distinct
history row per task, under a key the caller gives: ``onefeed.predict`` keys a logged user's
history by (user, split) — so a hit skips even building the row's event tensors — and an
explicit history by its content (``row_keys``: a digest of every event tensor). A search state
holds the query, so for search the cache keeps the history's keys and values per block instead
(``GenerativeRecommender.history_kv``) and only the query event is encoded on top of them
(``extend_state``). A cache belongs
to one loaded model (a reload builds a new predictor, and a new cache) and is cleared when the
catalogue changes.

Bounded (least recently used rows are dropped), used from one thread (the model thread).
Rows of a batch that miss are encoded together, in one call.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from typing import Any, Callable, Hashable

import torch

from onefeed.models.transformer import Events

EncodeRows = Callable[[list[int]], torch.Tensor]
"""Row numbers of the batch -> their (n, d) states."""


def row_keys(ev: Events) -> list[bytes]:
    """One 16-byte digest per row of ``ev`` over all of its event tensors (a content key)."""
    parts = [t.reshape(t.shape[0], -1).to(torch.int64) for t in ev if t is not None]
    flat = torch.cat(parts, dim=1).numpy()
    return [hashlib.blake2b(row.tobytes(), digest_size=16).digest() for row in flat]


def select(ev: Events, rows: list[int]) -> Events:
    index = torch.tensor(rows, dtype=torch.long)
    return Events(*(t[index] if t is not None else None for t in ev))


class StateCache:
    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"state cache capacity {capacity}: must be >= 1")
        self.capacity = capacity
        self.states: OrderedDict[tuple[str, Hashable], Any] = OrderedDict()
        self.hits = self.misses = 0

    def __len__(self) -> int:
        return len(self.states)

    def get(self, task: str, keys: list[Hashable], encode_rows: EncodeRows) -> torch.Tensor:
        """(n, d) states of a batch's rows for ``task``, given each row's key: cached rows are
        read, the rest encoded in one call of ``encode_rows`` and kept."""
        full = [(task, k) for k in keys]
        found = self.fetch(full)
        missing = [i for i, s in enumerate(found) if s is None]
        if missing:
            for i, state in zip(missing, encode_rows(missing)):
                found[i] = state.clone()  # not a view that keeps the whole batch alive
                self.put(full[i], found[i])
        return torch.stack(found)  # type: ignore[arg-type]

    def fetch(self, keys: list[tuple[str, Hashable]]) -> list[Any]:
        """What is kept under each key (None where nothing is), counted as hits / misses."""
        found = [self.states.get(k) for k in keys]
        for k, value in zip(keys, found):
            if value is not None:
                self.states.move_to_end(k)
        n_hit = sum(value is not None for value in found)
        self.hits += n_hit
        self.misses += len(found) - n_hit
        return found

    def put(self, key: tuple[str, Hashable], value: Any) -> None:
        """Keep ``value`` (a state, or e.g. a history's keys and values) under ``key``."""
        self.states[key] = value
        self.states.move_to_end(key)
        while len(self.states) > self.capacity:
            self.states.popitem(last=False)

    def clear(self) -> None:
        """Forget every state (the catalogue changed: a user's history may read differently)."""
        self.states.clear()

    def stats(self) -> dict[str, int]:
        return {"entries": len(self.states), "capacity": self.capacity, "hits": self.hits,
                "misses": self.misses}
