"""Train/valid/test split protocols. Each adds a ``split`` column to a working event frame.

Input: events with ``user``, ``item``, ``position`` (chronological, 0-based within user, rows
grouped by user — required: per-user windows use the run id ``USER_RUN``), ``timestamp`` and ``behaviour`` — the output of
``preprocess.chronological``/``k_core``. ids may be strings or ints.

* ``leave_one_out`` — TIGER / SASRec: per user the last item event is test, the second-to-last
  valid, the rest train.
* ``temporal`` — OneFeed §4.1: global time boundaries; the earliest period trains, the middle
  validates, the latest tests. Items first seen after the train boundary are *cold* items
  (OneFeed §4.3: they get IDs from metadata later); ``item_first_split`` names them.

Non-item events (``search_query``) belong to the item event they lead to: in leave-one-out a
query takes the split of the next item event of its user (or of the previous one if none
follows); in the temporal split it follows its own timestamp like every event.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import polars as pl

from onefeed.data.preprocess import IS_ITEM_EVENT, USER_RUN, _renumber
from onefeed.data.schemas import DataError

SPLIT_RANK = {"train": 0, "valid": 1, "test": 2}


@dataclass
class SplitResult:
    events: pl.DataFrame  # input columns + split (Utf8)
    info: dict[str, Any] = field(default_factory=dict)  # goes to manifest["split"]


def leave_one_out(events: pl.DataFrame, drop_short_users: bool = True) -> SplitResult:
    """Last item event of each user -> test, second-to-last -> valid, earlier -> train.

    Users with fewer than 3 item events are dropped (``drop_short_users``) or kept with all
    their events in train (they then contribute history but no evaluation case).
    """
    runs, users = events.select((USER_RUN.max() + 1).alias("r"), pl.col("user").n_unique()).row(0)
    if events.height and runs != users:
        raise ValueError("leave_one_out: events must be grouped by user (sorted by user, position)")
    n_item = pl.col("_is_item").cast(pl.Int32).sum().over(USER_RUN)
    ev = events.with_columns(IS_ITEM_EVENT.alias("_is_item"))
    ev = ev.with_columns(n_item.alias("_n_items"))
    short = ev.filter(pl.col("_n_items") < 3).select(pl.col("user").n_unique()).item()
    drop = drop_short_users and short > 0  # nothing to drop: no copy of every column
    if drop:
        ev = ev.filter(pl.col("_n_items") >= 3)
    # k-th item event from the end, counted from the event itself onwards (reverse cumsum).
    from_end = pl.col("_is_item").cast(pl.Int32).cum_sum(reverse=True).over(USER_RUN)
    ev = ev.with_columns(from_end.alias("_from_end"))
    # A query before the item event it leads to shares that event's _from_end; trailing
    # queries after the last item (from_end == 0) join the test split.
    split = (pl.when(pl.col("_n_items") < 3).then(pl.lit("train"))
             .when(pl.col("_from_end") <= 1).then(pl.lit("test"))
             .when(pl.col("_from_end") == 2).then(pl.lit("valid"))
             .otherwise(pl.lit("train")))
    ev = ev.with_columns(split.alias("split")).drop("_is_item", "_n_items", "_from_end")
    if drop:
        ev = _renumber(ev)
    info = {"protocol": "leave_one_out", "short_users": int(short),
            "short_users_policy": "dropped" if drop_short_users else "kept train-only",
            "rule": "per user: last item event test, second-to-last valid, rest train"}
    return SplitResult(ev, info)


def quantile_boundaries(events: pl.DataFrame, valid_frac: float,
                        test_frac: float) -> tuple[int, int]:
    """(valid_start, test_start) timestamps leaving ~``test_frac`` of item events in test etc."""
    if not (0 < valid_frac < 1 and 0 < test_frac < 1 and valid_frac + test_frac < 1):
        raise ValueError(f"valid_frac={valid_frac}, test_frac={test_frac}: each must be in (0, 1) "
                         "and their sum < 1")
    ts = events.filter(IS_ITEM_EVENT)["timestamp"]
    valid_start = ts.quantile(1 - valid_frac - test_frac, interpolation="higher")
    test_start = ts.quantile(1 - test_frac, interpolation="higher")
    return int(valid_start), int(test_start)


def temporal(events: pl.DataFrame, valid_frac: float = 0.1, test_frac: float = 0.1,
             boundaries: tuple[int, int] | list[int] | None = None) -> SplitResult:
    """Global time split: ts < valid_start -> train, < test_start -> valid, else test.

    ``boundaries`` = (valid_start, test_start) in the events' timestamp unit; otherwise they
    are the (1 - valid_frac - test_frac) and (1 - test_frac) quantiles of item-event times.
    """
    n_null = events["timestamp"].null_count()
    if n_null:
        raise DataError(f"temporal split needs timestamps, but {n_null} of {events.height} events "
                        "have none (this source carries only order, e.g. Amazon P5 sequences); "
                        "use protocol = \"leave_one_out\"")
    if boundaries is None:
        valid_start, test_start = quantile_boundaries(events, valid_frac, test_frac)
        how = (f"quantiles {1 - valid_frac - test_frac:.4g} / {1 - test_frac:.4g} "
               "of item-event times")
    else:
        if len(boundaries) != 2:
            raise ValueError(f"boundaries must be [valid_start, test_start], got {boundaries!r}")
        valid_start, test_start = int(boundaries[0]), int(boundaries[1])
        how = "explicit"
    if valid_start > test_start:
        raise ValueError(f"valid_start {valid_start} is after test_start {test_start}")
    ts = pl.col("timestamp")
    split = (pl.when(ts < valid_start).then(pl.lit("train"))
             .when(ts < test_start).then(pl.lit("valid")).otherwise(pl.lit("test")))
    ev = events.with_columns(split.alias("split"))
    counts = ev.filter(IS_ITEM_EVENT).group_by("split").len()
    first = item_first_split(ev)
    cold = first.group_by("first_split").len()
    info = {"protocol": "temporal", "boundaries": {"valid_start": valid_start,
                                                   "test_start": test_start, "how": how},
            "item_events_by_split": {s: int(n) for s, n in zip(counts["split"], counts["len"])},
            "cold_items": {s: int(n) for s, n in zip(cold["first_split"], cold["len"])
                           if s != "train"},
            "users_without_train_history": _users_without_train(ev)}
    return SplitResult(ev, info)


def _users_without_train(ev: pl.DataFrame) -> int:
    per_user = ev.filter(IS_ITEM_EVENT).group_by("user").agg(
        (pl.col("split") == "train").any().alias("has_train"))
    return int(per_user.filter(~pl.col("has_train")).height)


def item_first_split(events: pl.DataFrame) -> pl.DataFrame:
    """Per item, the earliest split it occurs in: ``item``, ``first_split`` (train|valid|test)."""
    rank = (pl.col("split").to_physical().cast(pl.Int8)  # the Enum of SPLITS' order
            if isinstance(events.schema["split"], pl.Enum)
            else pl.col("split").replace_strict(SPLIT_RANK, return_dtype=pl.Int8))
    names = {v: k for k, v in SPLIT_RANK.items()}
    return (events.filter(IS_ITEM_EVENT).group_by("item", maintain_order=True)
            .agg(rank.min().alias("_r"))
            .select("item", pl.col("_r").replace_strict(names, return_dtype=pl.Utf8)
                    .alias("first_split")))
