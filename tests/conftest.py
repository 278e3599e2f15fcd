"""Shared fixtures: a tiny prepared dataset built by hand, and the real-data path."""

from __future__ import annotations

import os
from pathlib import Path

import polars as pl
import pytest
import torch

from onefeed.data.schemas import EVAL_QUERY_SCHEMA, EVENT_SCHEMA, QUERY_SCHEMA, Dataset

SHARED = Path(os.environ.get("ONEFEED_DATA_ROOT",
                             Path(__file__).resolve().parents[2] / "shared" / "datasets"))


def real_data(sub: str) -> Path:
    """Path of a real dataset folder, or skip the test when it is not on this machine."""
    path = SHARED / sub
    if not path.exists():
        pytest.skip(f"real data not found at {path} (set ONEFEED_DATA_ROOT)")
    return path


def make_tiny_dataset(sequences: list[list[int]], n_items: int) -> Dataset:
    """Leave-one-out dataset from item sequences (all rec_click; last=test, second-last=valid)."""
    rows = []
    for user, seq in enumerate(sequences):
        for pos, item in enumerate(seq):
            split = "test" if pos == len(seq) - 1 else "valid" if pos == len(seq) - 2 else "train"
            rows.append((user, item, pos, None, "rec_click", None, None, split))
    events = pl.DataFrame(rows, schema=EVENT_SCHEMA, orient="row")
    items = pl.DataFrame({
        "item": pl.Series(range(n_items), dtype=pl.Int32),
        "first_split": ["train"] * n_items,
        "item_id": [f"i{i}" for i in range(n_items)],
        "title": [f"item {i} {'red' if i % 2 else 'blue'} shoe" for i in range(n_items)],
        "description": [None] * n_items,
        "brand": [f"brand{i % 3}" for i in range(n_items)],
        "categories": [["shoes", "red" if i % 2 else "blue"] for i in range(n_items)],
        "tags": [[] for _ in range(n_items)],
    }, schema_overrides={"categories": pl.List(pl.Utf8), "tags": pl.List(pl.Utf8),
                         "description": pl.Utf8})
    users = pl.DataFrame({"user": pl.Series(range(len(sequences)), dtype=pl.Int32),
                          "user_id": [f"u{u}" for u in range(len(sequences))]})
    queries = pl.DataFrame(schema=QUERY_SCHEMA)
    eval_queries = pl.DataFrame(schema=EVAL_QUERY_SCHEMA)
    return Dataset(events, items, users, queries, eval_queries,
                   {"name": "tiny", "protocol": "leave_one_out", "seed": 0})


@pytest.fixture
def tiny_dataset() -> Dataset:
    seqs = [[0, 1, 2, 3, 4], [1, 2, 3, 4, 5], [2, 3, 4, 5, 6], [5, 6, 7, 0, 1], [3, 4, 5, 6, 7]]
    return make_tiny_dataset(seqs, n_items=8)


@pytest.fixture(autouse=True)
def _one_thread():
    """One torch thread: tiny ops on a shared 2-core machine are slower with two (spin-waiting)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def free_port() -> int:
    """A TCP port free on loopback right now (torchrun's rendezvous; a fixed port collides with
    any other run on the machine)."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class CommitCrash:
    """``arm(n)``: ``checkpoint.commit`` saves, then raises KeyboardInterrupt on its n-th call
    (a run killed right after a checkpoint); ``disarm()`` restores the real one."""

    def __init__(self, monkeypatch) -> None:
        from onefeed import checkpoint

        self.monkeypatch, self.checkpoint, self.real = monkeypatch, checkpoint, checkpoint.commit

    def arm(self, after: int) -> None:
        calls = []

        def commit_then_crash(*args, **kwargs):
            self.real(*args, **kwargs)
            calls.append(1)
            if len(calls) == after:
                raise KeyboardInterrupt

        self.monkeypatch.setattr(self.checkpoint, "commit", commit_then_crash)

    def disarm(self) -> None:
        self.monkeypatch.setattr(self.checkpoint, "commit", self.real)


@pytest.fixture
def commit_crash(monkeypatch) -> CommitCrash:
    return CommitCrash(monkeypatch)
