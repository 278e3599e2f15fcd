"""Trigger -> next-search-query pairs: what a user searched after watching an item.

* ``session_pairs`` — every ``search_query`` event with the user's last item event before it
  (the trigger); built from the semi-synthetic sessions (``data.sessions``) and real searches.
* ``eval_pairs``    — the valid/test protocol: the held-out query of ``ds.eval_queries`` with the
  user's last item event before the split's target as trigger (the item being watched when
  the user searched for it; the trigger of a test case is the valid target, as in
  ``views.rec_cases``).
* ``UserQueries``   — each user's issued queries in order, to cut the history before a pair.

A pair's history ends before its trigger (``trigger_position``), never between trigger and
query: in a valid/test case that gap holds the real search that led to the target item (the
synthetic world and real logs search in valid/test too), which would leak the answer.

Queries are compared in ``normalise_query`` form (lowercase, single spaces).
"""

from __future__ import annotations

import bisect

import polars as pl

from onefeed.data.schemas import Dataset
from onefeed.data.views import ITEM_BEHAVIOURS, item_events

PAIR_COLUMNS = ("user", "position", "trigger", "trigger_position", "query", "split")


def _normalised(col: str) -> pl.Expr:
    return (pl.col(col).str.to_lowercase().str.replace_all(r"\s+", " ").str.strip_chars()
            .alias(col))


def session_pairs(ds: Dataset, split: str | None = "train") -> pl.DataFrame:
    """``PAIR_COLUMNS`` (``position`` is the query's) — one row per search_query event with a
    preceding item event; with ``split`` only queries and triggers of that split."""
    is_item = pl.col("behaviour").is_in(ITEM_BEHAVIOURS)

    def last_item(col: str) -> pl.Expr:
        return pl.when(is_item).then(pl.col(col)).forward_fill().over("user")

    ev = ds.events.sort(["user", "position"]).with_columns(
        last_item("item").alias("trigger"), last_item("position").alias("trigger_position"),
        last_item("split").alias("_tsplit"))
    pairs = ev.filter((pl.col("behaviour") == "search_query") & pl.col("query").is_not_null()
                      & pl.col("trigger").is_not_null())
    if split is not None:
        pairs = pairs.filter((pl.col("split") == split) & (pl.col("_tsplit") == split))
    pairs = pairs.with_columns(_normalised("query")).filter(pl.col("query") != "")
    return pairs.select(pl.col("user").cast(pl.Int64), pl.col("position").cast(pl.Int64),
                        pl.col("trigger").cast(pl.Int64),
                        pl.col("trigger_position").cast(pl.Int64), "query",
                        pl.col("split").cast(pl.Utf8))


def eval_pairs(ds: Dataset, split: str) -> pl.DataFrame:
    """``PAIR_COLUMNS`` for the ``split`` (valid|test) eval queries; ``position`` is the
    target item event's. Users whose target has no item event before it are left out."""
    if split not in ("valid", "test"):
        raise ValueError(f"split must be 'valid' or 'test', got {split!r}")
    ev = item_events(ds)
    first = (ev.filter(pl.col("split") == split).group_by("user", maintain_order=True)
             .agg(pl.col("position").first().alias("target_pos")))
    trigger = (ev.join(first, on="user").filter(pl.col("position") < pl.col("target_pos"))
               .group_by("user", maintain_order=True)
               .agg(pl.col("item").last().alias("trigger"),
                    pl.col("position").last().alias("trigger_position")))
    eq = ds.eval_queries.filter(pl.col("split") == split).unique("user", keep="first")
    out = (eq.join(first, on="user").join(trigger, on="user")
           .with_columns(_normalised("query")).sort("user"))
    return out.select(pl.col("user").cast(pl.Int64),
                      pl.col("target_pos").cast(pl.Int64).alias("position"),
                      pl.col("trigger").cast(pl.Int64),
                      pl.col("trigger_position").cast(pl.Int64), "query",
                      pl.lit(split).alias("split"))


class UserQueries:
    """Every user's search queries (any split) in position order, for histories."""

    def __init__(self, ds: Dataset) -> None:
        queries = (ds.events.filter((pl.col("behaviour") == "search_query")
                                    & pl.col("query").is_not_null())
                   .sort(["user", "position"]).with_columns(_normalised("query")))
        grouped = queries.group_by("user", maintain_order=True).agg("position", "query")
        self._at = {int(u): (p, q) for u, p, q in grouped.iter_rows()}

    def before(self, user: int, position: int, n: int) -> list[str]:
        """The user's last ``n`` queries strictly before ``position``, most recent last."""
        if user not in self._at or n <= 0:
            return []
        positions, queries = self._at[user]
        end = bisect.bisect_left(positions, position)
        return list(queries[max(0, end - n):end])
