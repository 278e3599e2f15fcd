"""Raw loader output -> a clean, ordered, filtered event frame with integer ids.

Pure functions on polars frames, applied in this order by ``onefeed.data.prepare``:

    validate -> drop_duplicates [-> keep_first_per_user_item] -> chronological
             -> k_core -> (split, see splits.py) -> remap_ids

Between ``chronological`` and ``remap_ids`` the working frame has the raw columns with
``user_id``/``item_id`` renamed to ``user``/``item`` (still the source's strings) plus a
``position`` column: the 0-based chronological index of the event within its user. Rows stay
grouped by user, users in order of first appearance in the source, so every later step can
keep ``maintain_order`` and never re-sort.

OneFeed §4.1: "we sort user interactions chronologically ... users and items with extremely
sparse interactions are filtered following common sequential recommendation practice".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import polars as pl

from onefeed.data.schemas import BEHAVIOURS, ITEM_SCHEMA, RAW_EVENT_SCHEMA, DataError, RawData

ITEM_BEHAVIOURS: tuple[str, ...] = ("rec_click", "search_click")
IS_ITEM_EVENT = pl.col("behaviour").is_in(ITEM_BEHAVIOURS)
# Window key for "per user" in working frames, whose rows are grouped by user: a run id is a
# cheap integer (no string hashing), ~3x faster than ``over("user")`` on string ids.
USER_RUN = pl.col("user").rle_id()


@dataclass
class ValidationReport:
    """What ``validate`` found that is worth knowing but not an error."""

    n_events: int
    n_users: int
    n_items_with_metadata: int
    events_by_behaviour: dict[str, int]
    has_timestamps: bool
    single_event_users: int  # users with exactly one event (they cannot be split; see splits.py)
    single_event_examples: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


MAX_TIMESTAMP = 253_402_300_799  # 9999-12-31T23:59:59Z (unix seconds)
MAX_STRENGTH = 1e9  # |strength|: ratings, dwell ms, counts; larger is a corrupt cell
MISSING_IDS = ("nan", "none", "null", "na", "n/a", "<na>")  # a missing value written as text


def show(value: Any, limit: int = 80) -> str:
    """``repr(value)`` cut to ``limit`` characters (long user ids stay out of messages)."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit - 3]}... ({len(text)} chars)"


def value_checks(ev: pl.DataFrame) -> list[tuple[str, pl.Expr, str]]:
    """(column, bad-row mask, what is wrong) for values no loader may pass on."""
    checks = [(c, pl.col(c).str.strip_chars().str.to_lowercase().is_in(MISSING_IDS),
               f"looks like a missing value written as text {MISSING_IDS}")
              for c in ("user_id", "item_id") if ev.schema.get(c) == pl.Utf8]
    if "timestamp" in ev.columns and ev.schema["timestamp"].is_numeric():
        checks.append(("timestamp", ~pl.col("timestamp").is_between(0, MAX_TIMESTAMP),
                       f"is outside [0, {MAX_TIMESTAMP}] unix seconds (1970 .. 9999)"))
    if "strength" in ev.columns and ev.schema["strength"].is_float():
        checks.append(("strength", pl.col("strength").is_nan() | (pl.col("strength").abs()
                                                                  > MAX_STRENGTH),
                       f"is not a finite number in [-{MAX_STRENGTH:g}, {MAX_STRENGTH:g}]"))
    return checks


def _first_bad_row(frame: pl.DataFrame, mask: pl.Expr) -> tuple[int, int]:
    bad = frame.with_row_index("_row").filter(mask)
    return bad.height, (int(bad["_row"][0]) if bad.height else -1)



def row_checks(events: pl.DataFrame, where: str) -> list[tuple[str, pl.Expr, str]]:
    """The per-row checks of raw events as (column, bad-row mask, what is wrong), shared by the
    in-memory ``validate`` and the streaming ``scan.validate_and_users`` (an empty frame with
    the scan's schema is enough); a missing required column is a ``DataError`` here."""
    missing = [c for c in ("user_id", "item_id", "behaviour", "order")
               if c not in events.columns]
    if missing:
        raise DataError(f"{where}: missing column(s) {missing}")
    checks = [
        ("user_id", pl.col("user_id").is_null(), "is null"),
        ("behaviour", pl.col("behaviour").is_null() | ~pl.col("behaviour").is_in(BEHAVIOURS),
         f"is not one of {BEHAVIOURS}"),
        ("order", pl.col("order").is_null(), "is null"),
        ("item_id", IS_ITEM_EVENT & pl.col("item_id").is_null(), "is null for an item event"),
    ]
    checks += value_checks(events)
    if "query" in events.columns:
        checks.append(("query", (pl.col("behaviour") == "search_query")
                       & (pl.col("query").is_null() | (pl.col("query").str.strip_chars() == "")),
                       "is empty for a search_query event"))
    return checks

def validate(raw: RawData) -> ValidationReport:
    """Check the loader contract; raise ``DataError`` naming the first offending row/column.

    Required: at least one event; ``user_id``, ``behaviour`` and ``order`` non-null;
    ``behaviour`` one of GenSAR §3.1's three; ``item_id`` non-null for item events; ``query``
    non-null for ``search_query``; item ids unique and non-null in the item table.
    """
    where = f"{raw.source.get('name', 'raw data')} events"
    ev = raw.events
    checks = row_checks(ev, where)
    if ev.height == 0:
        raise DataError(f"{where}: no events (empty dataset)")
    for column, mask, what in checks:
        n_bad, row = _first_bad_row(ev, mask)
        if n_bad:
            value = ev[column][row]
            raise DataError(f"{where}: row {row}, column '{column}' {what} "
                            f"(value {show(value)}; {n_bad} such rows)")
    items = raw.items
    if "item_id" not in items.columns:
        raise DataError(f"{raw.source.get('name', 'raw data')} items: missing column 'item_id'")
    n_bad, row = _first_bad_row(items, pl.col("item_id").is_null())
    if n_bad:
        raise DataError(f"items: row {row}, column 'item_id' is null ({n_bad} such rows)")
    n_bad, row = _first_bad_row(items, pl.col("item_id").is_duplicated())
    if n_bad:
        raise DataError(f"items: row {row}, column 'item_id' duplicate id "
                        f"{items['item_id'][row]!r} ({n_bad} rows share a duplicated id)")
    per_user = ev.group_by("user_id").len()
    single = per_user.filter(pl.col("len") == 1)
    counts = ev.group_by("behaviour").len()
    has_ts = "timestamp" in ev.columns and ev["timestamp"].null_count() < ev.height
    return ValidationReport(
        n_events=ev.height, n_users=per_user.height, n_items_with_metadata=items.height,
        events_by_behaviour={b: int(n) for b, n in zip(counts["behaviour"], counts["len"])},
        has_timestamps=bool(has_ts), single_event_users=single.height,
        single_event_examples=single["user_id"].head(5).to_list())


def drop_duplicates(events: pl.DataFrame) -> pl.DataFrame:
    """Drop repeated (user, item, behaviour, query, timestamp) events, keeping the first row, and
    collapse one item interaction logged under two behaviours at the same time (e.g. a search
    click also logged as a view) into its first row. Left in, the copy that lands in training
    would reveal a held-out target.

    Rows without a timestamp are never duplicates of each other: an order-only source gives
    no evidence that two identical rows are the same event rather than a repeat.
    """
    drop = _repeats(events, ["user_id", "item_id", "behaviour", "query", "timestamp"],
                    pl.col("timestamp").is_not_null())
    ev = events.filter(~drop) if drop.any() else events
    timed_item = pl.col("timestamp").is_not_null() & pl.col("item_id").is_not_null() & \
        pl.col("behaviour").is_in(["rec_click", "search_click"])
    # an earlier row of any behaviour with the same (user, item, time) counts, as it always did
    drop = _repeats(ev, ["user_id", "item_id", "timestamp"], pl.lit(True)) \
        & ev.select(timed_item).to_series()
    return ev.filter(~drop) if drop.any() else ev


def _repeats(frame: pl.DataFrame, key: list[str], among: pl.Expr) -> pl.Series:
    """Rows matching ``among`` whose ``key`` equals an earlier such row's (exactly).

    A 64-bit hash of the key finds the candidates; only rows whose hash repeats (the true
    repeats and rare collisions) are compared column by column, so the full key is hashed once
    and never materialised as a struct over every row.
    """
    h = frame.select(pl.when(among).then(pl.struct(key).hash(0)).alias("_h")).to_series()
    # repeated hash values by a sort (several times faster than a hash table at 10M rows)
    hs = h.drop_nulls().sort()
    repeated = hs.filter(hs == hs.shift(1)).unique()
    del hs
    cand = (h.to_frame().with_row_index("_row")
            .filter(pl.col("_h").is_in(repeated.implode()))["_row"]) if repeated.len() else \
        pl.Series("_row", [], dtype=pl.UInt32)
    out = pl.repeat(False, frame.height, dtype=pl.Boolean, eager=True)
    if cand.len():
        sub = frame.select(key).gather(cand)
        repeat = cand.filter(~sub.select(pl.struct(key).is_first_distinct()).to_series())
        out = out.scatter(repeat, True) if repeat.len() else out
    return out


def keep_first_per_user_item(events: pl.DataFrame) -> pl.DataFrame:
    """Keep each user's first item event per item (the S3Rec/P5 pipeline); needs ``chronological``.

    ``search_query`` events are kept, except one that led straight to a dropped click.
    """
    first = ~IS_ITEM_EVENT | pl.col("position").eq(pl.col("position").min().over(["user", "item"]))
    ev = events.with_columns(_leads_to_click().alias("_led")).filter(first)
    return _renumber(ev.filter(~(pl.col("_led") & ~_leads_to_click())).drop("_led"))


def chronological(events: pl.DataFrame) -> pl.DataFrame:
    """Rename ids to ``user``/``item``, order by (timestamp, order) within user, add ``position``.

    Users keep their order of first appearance in the source. Sources without timestamps
    (null) are ordered by ``order`` alone; nothing invents a time for them.
    """
    ev = events.rename({"user_id": "user", "item_id": "item"})
    keys = ev.select("timestamp", "order").with_row_index("_row").with_columns(
        pl.col("_row").min().over(ev["user"]).alias("_user_rank"))
    # The order as a permutation of narrow keys; logs that already are in it (grouped by user
    # in time order, as most exports are) skip the copy of every column.
    perm = keys.select(pl.arg_sort_by(["_user_rank", "timestamp", "order", "_row"],
                                      nulls_last=True, maintain_order=True))["_user_rank"]
    del keys
    if not perm.equals(pl.int_range(ev.height, dtype=perm.dtype, eager=True), check_names=False):
        ev = ev.select(pl.all().gather(perm))
    return _renumber(ev)


def _renumber(events: pl.DataFrame) -> pl.DataFrame:
    """Recompute ``position`` (0..n-1 per user) after rows were removed; order is kept."""
    position = pl.int_range(pl.len(), dtype=pl.Int32).over(USER_RUN)
    return events.with_columns(position.alias("position"))


def k_core(events: pl.DataFrame, k: int, max_rounds: int = 100) -> tuple[pl.DataFrame, list[dict]]:
    """Iteratively keep users and items with >= ``k`` item events; ``k <= 0`` disables.

    Counts are over item events (rec and search clicks). A user whose item events all go also
    loses their ``search_query`` events, and a query that led straight to a removed click goes
    with it. Returns the filtered frame and one record per round.
    """
    keep, rounds = k_core_keep(events, k, max_rounds)
    return (events if keep is None else _renumber(events.filter(keep))), rounds


def k_core_keep(events: pl.DataFrame, k: int, max_rounds: int = 100
                ) -> tuple[pl.Series | None, list[dict]]:
    """``k_core``'s row mask (None: every row stays) and rounds, computed on narrow frames;
    ``_renumber(take_rows(events, keep))`` is ``k_core(events, k)[0]``."""
    rounds: list[dict] = []
    if k <= 0:
        return None, rounds
    # The loop runs on a narrow integer frame (user run id, item code, is-item flag) and the wide
    # frame is filtered once at the end: each round copies three columns, not every column.
    item_code = (pl.col("item").to_physical() if events.schema["item"].is_integer()
                 else pl.col("item").cast(pl.Utf8).cast(pl.Categorical).to_physical())
    ev = events.select(USER_RUN.alias("_u"), item_code.alias("_i"),
                       IS_ITEM_EVENT.alias("_is_item"), pl.int_range(pl.len()).alias("_row"))
    for _ in range(max_rounds):
        items_ev = ev.filter(pl.col("_is_item"))
        item_n = items_ev.group_by("_i").len()
        user_n = items_ev.group_by("_u").len()
        del items_ev
        good_items = item_n.filter(pl.col("len") >= k)["_i"]
        good_users = user_n.filter(pl.col("len") >= k)["_u"]
        n_users = ev["_u"].n_unique()  # users with no item event at all count as dropped
        rounds.append({"users": n_users, "items": item_n.height, "events": ev.height,
                       "drop_users": n_users - good_users.len(),
                       "drop_items": item_n.height - good_items.len()})
        if good_items.len() == item_n.height and good_users.len() == n_users:
            break
        ev = ev.filter(pl.col("_u").is_in(good_users.implode())
                       & (~pl.col("_is_item") | pl.col("_i").is_in(good_items.implode())))
    else:
        raise DataError(f"k_core(k={k}) did not converge in {max_rounds} rounds")
    if ev.height == events.height:  # nothing dropped: no copy, and no orphaned query
        return None, rounds
    keep = pl.repeat(False, events.height, dtype=pl.Boolean, eager=True).scatter(
        ev["_row"], True) if ev.height else pl.repeat(False, events.height, eager=True)
    del ev
    # A query whose click was filtered away would look like an abandoned search: drop it too.
    narrow = events.select("user", "behaviour")
    led = narrow.select(_leads_to_click()).to_series().filter(keep)
    orphan = led & ~narrow.filter(keep).select(_leads_to_click()).to_series()
    if orphan.any():
        keep = keep.scatter(keep.arg_true().filter(orphan), False)
    return keep, rounds


def take_rows(frame: pl.DataFrame, keep: pl.Series) -> pl.DataFrame:
    """``frame.filter(keep)`` column by column, taking each column out of ``frame`` first, so
    beside the result only one input column is alive; ``frame`` is left empty."""
    out = []
    for name in list(frame.columns):
        col = frame.drop_in_place(name)
        out.append(col.filter(keep))
        del col
    return pl.DataFrame(out)


def _leads_to_click() -> pl.Expr:
    """True for a search_query immediately followed by a search_click of the same user.

    Rows must be grouped by user in position order (true of every working frame here), so a
    plain shift is enough (no window).
    """
    nxt = pl.col("behaviour").shift(-1)
    return ((pl.col("behaviour") == "search_query") & (nxt == "search_click")
            & (pl.col("user").shift(-1) == pl.col("user"))).fill_null(False)


@dataclass(frozen=True)
class Remapped:
    events: pl.DataFrame  # user, item (Int32), position, timestamp, behaviour, query, ... split
    users: pl.DataFrame  # user (Int32), user_id (Utf8)
    items: pl.DataFrame  # item (Int32), ITEM_SCHEMA columns (metadata null where missing)
    items_without_metadata: int  # event items absent from the raw item table
    metadata_items_without_events: int  # raw item rows dropped (no surviving event)


def remap_ids(events: pl.DataFrame, items: pl.DataFrame, user_names: pl.Series | None = None,
              item_names: pl.Series | None = None) -> Remapped:
    """Map users and items to 0..n-1 in order of first appearance; keep the source ids.

    ``events`` is a working frame (string ``user``/``item``, or integer codes into
    ``user_names``/``item_names``, see ``scan.encode_ids``); ``items`` the raw item table.
    Items appear in the item table iff some event names them.
    """
    user_map = (events.select(pl.col("user").unique(maintain_order=True).alias("user_id"))
                .with_row_index("user").with_columns(pl.col("user").cast(pl.Int32)))
    item_map = (events.filter(pl.col("item").is_not_null())
                .select(pl.col("item").unique(maintain_order=True).alias("item_id"))
                .with_row_index("item").with_columns(pl.col("item").cast(pl.Int32)))
    ev = (events.rename({"user": "user_id", "item": "item_id"})
          .join(user_map, on="user_id", how="left", maintain_order="left")
          .join(item_map, on="item_id", how="left", maintain_order="left")
          .drop("user_id", "item_id"))
    ev = _renumber(ev)
    if user_names is not None:
        user_map = user_map.with_columns(user_names.gather(user_map["user_id"]).alias("user_id"))
    if item_names is not None:
        item_map = item_map.with_columns(item_names.gather(item_map["item_id"]).alias("item_id"))
    meta = items.select([c for c in ITEM_SCHEMA if c in items.columns])
    table = item_map.join(meta, on="item_id", how="left", maintain_order="left")
    for name, dtype in ITEM_SCHEMA.items():
        if name not in table.columns:
            table = table.with_columns(pl.lit(None, dtype=dtype).alias(name))
    table = table.select(["item", *ITEM_SCHEMA])
    n_known = item_map.join(meta.select("item_id"), on="item_id", how="semi").height
    return Remapped(
        events=ev, users=user_map.select("user", "user_id"), items=table,
        items_without_metadata=item_map.height - n_known,
        metadata_items_without_events=meta.height - n_known)


def conform_raw_events(events: pl.DataFrame, where: str) -> pl.DataFrame:
    """Raw events with exactly RAW_EVENT_SCHEMA's columns (missing optional ones as null)."""
    from onefeed.data.schemas import conform

    return conform(events, RAW_EVENT_SCHEMA, where)
