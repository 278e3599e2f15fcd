"""Semi-synthetic joint search + recommendation sessions (Ai et al. 2017, as GenSAR §4.1 used).

Public logs hold only recommendation-style interactions. Following the semi-synthetic Amazon
search sets, a share of TRAIN-split item interactions is turned into a search: the
interaction becomes ``search_query`` (a query drawn from the item's *train* weak queries)
immediately followed by ``search_click`` on the same item with the same query. Histories then
mix GenSAR §3.1's three behaviours (R_I, S_Q, S_I).

Valid/test events are never converted (search evaluation uses the held-out queries in
``eval_queries`` instead), and events that already are real searches are left as they are.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from onefeed.data.preprocess import USER_RUN


@dataclass
class SessionResult:
    events: pl.DataFrame  # same columns, positions renumbered, query rows inserted
    position_map: pl.DataFrame  # user, old_position, position (for every pre-existing event)
    stats: dict


def make_joint_sessions(events: pl.DataFrame, queries: pl.DataFrame, share: float,
                        seed: int, chunk_rows: int = 1_000_000, consume: bool = False
                        ) -> SessionResult:
    """Convert ``round(share * n)`` of the n eligible train rec_clicks into search pairs.

    events: integer events grouped by user in ``position`` order, with ``split``.
    queries: weak queries with ``split``; only ``split == "train"`` ones are drawn.
    Eligible: train-split ``rec_click`` events whose item has at least one train query.
    ``chunk_rows``: output rows assembled at a time (memory, not the result). ``consume``:
    take the columns out of ``events`` as they are used (it is left empty; saves one copy).
    """
    if not 0 <= share <= 1:
        raise ValueError(f"search_share must be in [0, 1], got {share}")
    # Each item's train queries, sorted, as one flat column plus (start, count) per item: the
    # eligible clicks carry two integers instead of a copy of their item's query list.
    flat = queries.filter(pl.col("split") == "train").select("item", "query").sort(
        ["item", "query"])
    per_item = (flat.group_by("item", maintain_order=True).len("_n")
                .with_columns((pl.col("_n").cum_sum() - pl.col("_n")).alias("_start")))
    ev = events.select("item", "split", "behaviour").with_row_index("_row")  # narrow, then filter
    eligible = (ev.filter((pl.col("split") == "train") & (pl.col("behaviour") == "rec_click"))
                .select("_row", "item").join(per_item, on="item", how="inner").sort("_row"))
    rng = np.random.default_rng(seed)
    n_convert = int(round(share * eligible.height))
    pick = np.sort(rng.permutation(eligible.height)[:n_convert])
    chosen = eligible[pick]
    u = rng.random(chosen.height)
    qi = (pl.Series(u) * pl.col("_n")).floor().cast(pl.Int64)
    chosen = chosen.select("_row", (pl.col("_start").cast(pl.Int64) + qi).alias("_at"))
    chosen = chosen.select("_row", flat["query"].gather(chosen["_at"]).alias("_q"))
    n_eligible = eligible.height
    del eligible

    # Scatter the drawn queries into a full-length column (no join), then shift every event by
    # the number of queries inserted before it in its user: a query sits right before its click.
    del ev
    q = pl.repeat(None, events.height, dtype=pl.Utf8, eager=True).alias("_q")
    q = q.scatter(chosen["_row"].cast(pl.Int64), chosen["_q"]) if chosen.height else q
    conv = q.is_not_null()
    new_pos = (events.select("user", "position").with_columns(conv.cast(pl.Int32).alias("_c"))
               .select((pl.col("position") + pl.col("_c").cum_sum().over(USER_RUN))
                       .cast(pl.Int32)).to_series())
    position_map = pl.DataFrame({"user": events["user"], "old_position": events["position"],
                                 "position": new_pos})
    # Output row -> source row: a converted event appears twice, its query row first. One
    # select gathers every column once (no concat + sort, no intermediate wide frames).
    src = pl.Series(np.repeat(np.arange(events.height), 1 + conv.to_numpy()))
    isq = pl.Series("_isq", np.r_[src[1:].to_numpy() == src[:-1].to_numpy(), False]
                    if len(src) else [], dtype=pl.Boolean)
    b = events.schema["behaviour"]  # text or the working frames' Enum: kept as it is

    n_train_items, n_real = events.select(
        ((pl.col("split") == "train")
         & pl.col("behaviour").is_in(["rec_click", "search_click"])).sum(),
        (pl.col("behaviour") != "rec_click").sum()).row(0)

    def column(col: pl.Series, at: pl.Series, isq: pl.Series) -> pl.Series:
        c, conv_g = col.name, conv.gather(at)
        g = pl.col(c).gather(at)
        if c == "behaviour":
            g = (pl.when(pl.lit(isq)).then(pl.lit("search_query", dtype=b))
                 .when(pl.lit(conv_g)).then(pl.lit("search_click", dtype=b)).otherwise(g))
        elif c == "query":
            g = pl.when(pl.lit(conv_g)).then(pl.lit(q.gather(at))).otherwise(g)
        elif c == "position":
            g = pl.lit(new_pos.gather(at) - isq.cast(pl.Int32))
        elif c in ("item", "strength", "review"):
            g = pl.when(pl.lit(isq)).then(None).otherwise(g)
        return pl.DataFrame([col]).select(g.alias(c)).to_series()

    # Column by column, each in chunks of output rows: beside the result there are only one
    # input column's chunk temporaries, and with ``consume`` the input column is released as
    # soon as its output exists (the input frame is left empty).
    step = max(1, chunk_rows)
    columns = []
    for name in list(events.columns):
        col = events.drop_in_place(name) if consume else events[name]
        parts = [column(col, src.slice(a, step), isq.slice(a, step))
                 for a in range(0, len(src), step)] or [column(col, src, isq)]
        columns.append(pl.concat(parts, rechunk=False) if len(parts) > 1 else parts[0])
        del col, parts
    out = pl.DataFrame(columns)
    del src, isq
    stats = {"share": share, "seed": seed, "eligible_train_rec_clicks": n_eligible,
             "converted": chosen.height,
             "converted_share_of_train_item_events":
                 round(chosen.height / max(1, n_train_items), 4),
             "real_search_events_kept": int(n_real)}
    return SessionResult(out, position_map, stats)
