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
                        seed: int) -> SessionResult:
    """Convert ``round(share * n)`` of the n eligible train rec_clicks into search pairs.

    events: integer events grouped by user in ``position`` order, with ``split``.
    queries: weak queries with ``split``; only ``split == "train"`` ones are drawn.
    Eligible: train-split ``rec_click`` events whose item has at least one train query.
    """
    if not 0 <= share <= 1:
        raise ValueError(f"search_share must be in [0, 1], got {share}")
    # Each item's train queries, sorted, as one flat column plus (start, count) per item: the
    # eligible clicks carry two integers instead of a copy of their item's query list.
    flat = queries.filter(pl.col("split") == "train").select("item", "query").sort(
        ["item", "query"])
    per_item = (flat.group_by("item", maintain_order=True).len("_n")
                .with_columns((pl.col("_n").cum_sum() - pl.col("_n")).alias("_start")))
    ev = events.with_row_index("_row")
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
    q = pl.repeat(None, ev.height, dtype=pl.Utf8, eager=True).alias("_q")
    q = q.scatter(chosen["_row"].cast(pl.Int64), chosen["_q"]) if chosen.height else q
    ev = ev.with_columns(q)
    converted = pl.col("_q").is_not_null()
    inserted = converted.cast(pl.Int32).cum_sum().over(USER_RUN)
    ev = ev.with_columns((pl.col("position") + inserted).cast(pl.Int32).alias("_new"))
    position_map = ev.select("user", pl.col("position").alias("old_position"),
                             pl.col("_new").alias("position"))
    ev_b = ev.schema["behaviour"]  # text or the working frames' Enum: kept as it is
    ev = ev.with_columns(
        pl.when(converted).then(pl.lit("search_click", dtype=ev_b))
        .otherwise(pl.col("behaviour"))
        .alias("behaviour"),
        pl.when(converted).then(pl.col("_q")).otherwise(pl.col("query")).alias("query"),
        pl.col("_new").alias("position"))
    # Output row -> source row: a converted event appears twice, its query row first (a gather,
    # not a concat + sort, so the frame is copied once).
    conv = ev["_q"].is_not_null().to_numpy()
    src = np.repeat(np.arange(ev.height), 1 + conv)
    is_query = pl.Series("_isq", np.r_[src[1:] == src[:-1], False] if len(src) else [],
                         dtype=pl.Boolean)
    out = ev.drop("_row", "_q", "_new")
    del ev
    out = out.select(pl.all().gather(src)).with_columns(is_query)
    del src
    isq, out_b = pl.col("_isq"), out.schema["behaviour"]
    nulls = [pl.when(isq).then(None).otherwise(pl.col(c)).alias(c)
             for c in ("item", "strength", "review") if c in out.columns]
    out = out.with_columns(
        pl.when(isq).then(pl.lit("search_query", dtype=out_b)).otherwise(pl.col("behaviour"))
        .alias("behaviour"),
        pl.when(isq).then(pl.col("position") - 1).otherwise(pl.col("position")).alias("position"),
        *nulls).drop("_isq")
    n_train_items = events.filter((pl.col("split") == "train")
                                  & pl.col("behaviour").is_in(["rec_click", "search_click"])).height
    stats = {"share": share, "seed": seed, "eligible_train_rec_clicks": n_eligible,
             "converted": chosen.height,
             "converted_share_of_train_item_events":
                 round(chosen.height / max(1, n_train_items), 4),
             "real_search_events_kept": int(events.filter(
                 pl.col("behaviour") != "rec_click").height)}
    return SessionResult(out, position_map, stats)
