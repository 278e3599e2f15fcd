"""``decoding.state_cache``: content keys, LRU bound, hit/miss counts (cached answers equal to
fresh ones through ``Predictor``: tests/serve/test_predict.py)."""

import pytest
import torch

from onefeed.decoding.state_cache import StateCache, row_keys, select
from onefeed.models.transformer import Events


def _events(items: list[list[int]]) -> Events:
    it = torch.tensor(items)
    return Events(items=it, codes=torch.stack([it, it % 3], -1), behaviours=torch.ones_like(it),
                  words=None, valid=it >= 0)


class CountingEncoder:
    """states = the sum of each row's items, so which rows were encoded is visible."""

    def __init__(self, ev: Events) -> None:
        self.ev, self.rows = ev, 0

    def __call__(self, rows: list[int]) -> torch.Tensor:
        self.rows += len(rows)
        sub = select(self.ev, rows)
        return sub.items.clamp(min=0).sum(1, keepdim=True).float().repeat(1, 4)


def _get(cache, task, items):
    ev = _events(items)
    enc = CountingEncoder(ev)
    return cache.get(task, row_keys(ev), enc), enc.rows


def test_misses_are_encoded_once_together_and_hits_read():
    cache = StateCache(10)
    first, n = _get(cache, "NRIP", [[1, 2, 3], [4, 5, 6]])
    assert n == 2 and first[:, 0].tolist() == [6.0, 15.0]
    again, n = _get(cache, "NRIP", [[4, 5, 6], [7, 8, 9], [1, 2, 3]])
    assert n == 1  # only [7, 8, 9] was new
    assert again[:, 0].tolist() == [15.0, 24.0, 6.0]
    assert cache.stats() == {"entries": 3, "capacity": 10, "hits": 2, "misses": 3}
    _, n = _get(cache, "NSQP", [[1, 2, 3]])  # a task has its own states
    assert n == 1
    cache.clear()
    assert len(cache) == 0 and _get(cache, "NRIP", [[1, 2, 3]])[1] == 1


def test_any_hashable_key_names_a_row():
    cache = StateCache(10)
    calls = []

    def encode(rows):
        calls.append(rows)
        return torch.arange(len(rows), dtype=torch.float32)[:, None] + 10 * len(calls)

    a = cache.get("t", [("user", 3, "all"), ("user", 4, "all")], encode)
    b = cache.get("t", [("user", 4, "all"), ("user", 5, "all")], encode)
    assert calls == [[0, 1], [1]]
    assert a[:, 0].tolist() == [10.0, 11.0] and b[:, 0].tolist() == [11.0, 20.0]


def test_least_recently_used_rows_are_dropped():
    cache = StateCache(2)
    _get(cache, "t", [[1, 1, 1]])
    _get(cache, "t", [[2, 2, 2]])
    _get(cache, "t", [[1, 1, 1]])  # touch: [2, 2, 2] is now the oldest
    _get(cache, "t", [[3, 3, 3]])
    assert len(cache) == 2
    assert _get(cache, "t", [[1, 1, 1]])[1] == 0
    assert _get(cache, "t", [[2, 2, 2]])[1] == 1


def test_capacity_must_be_positive():
    with pytest.raises(ValueError, match="capacity 0"):
        StateCache(0)
