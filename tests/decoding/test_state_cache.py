"""``decoding.state_cache``: content keys, LRU bound, hit/miss counts (cached answers equal to
fresh ones through ``Predictor``: tests/serve/test_predict.py)."""

import pytest
import torch

from onefeed.decoding.state_cache import StateCache, row_keys
from onefeed.models.transformer import Events


def _events(items: list[list[int]]) -> Events:
    it = torch.tensor(items)
    return Events(items=it, codes=torch.stack([it, it % 3], -1), behaviours=torch.ones_like(it),
                  words=None, valid=it >= 0)


class CountingEncoder:
    """states = the sum of each row's items, so which rows were encoded is visible."""

    def __init__(self) -> None:
        self.rows = 0

    def __call__(self, ev: Events) -> torch.Tensor:
        self.rows += ev.items.shape[0]
        return ev.items.clamp(min=0).sum(1, keepdim=True).float().repeat(1, 4)


def test_keys_follow_content_not_position():
    a, b, c = row_keys(_events([[1, 2, 3], [1, 2, 4], [1, 2, 3]]))
    assert a != b and c == a and len(a) == 16
    # one differing tensor (the codes) is a different row
    ev = _events([[1, 2, 3]])
    other = ev._replace(codes=ev.codes + 1)
    assert row_keys(ev) != row_keys(other)


def test_misses_are_encoded_once_together_and_hits_read():
    enc, cache = CountingEncoder(), StateCache(10)
    first = cache.get("NRIP", _events([[1, 2, 3], [4, 5, 6]]), enc)
    assert enc.rows == 2 and first[:, 0].tolist() == [6.0, 15.0]
    again = cache.get("NRIP", _events([[4, 5, 6], [7, 8, 9], [1, 2, 3]]), enc)
    assert enc.rows == 3  # only [7, 8, 9] was new
    assert again[:, 0].tolist() == [15.0, 24.0, 6.0]
    assert cache.stats() == {"entries": 3, "capacity": 10, "hits": 2, "misses": 3}
    cache.get("NSQP", _events([[1, 2, 3]]), enc)  # a task has its own states
    assert enc.rows == 4


def test_least_recently_used_rows_are_dropped():
    enc, cache = CountingEncoder(), StateCache(2)
    cache.get("t", _events([[1, 1, 1]]), enc)
    cache.get("t", _events([[2, 2, 2]]), enc)
    cache.get("t", _events([[1, 1, 1]]), enc)  # touch: [2, 2, 2] is now the oldest
    cache.get("t", _events([[3, 3, 3]]), enc)
    assert len(cache) == 2
    n = enc.rows
    cache.get("t", _events([[1, 1, 1]]), enc)
    assert enc.rows == n
    cache.get("t", _events([[2, 2, 2]]), enc)
    assert enc.rows == n + 1


def test_capacity_must_be_positive():
    with pytest.raises(ValueError, match="capacity 0"):
        StateCache(0)
