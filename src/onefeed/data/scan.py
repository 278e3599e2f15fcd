"""Out-of-core front of ``prepare``: lazy raw events -> a compact integer-coded event frame.

Raw events may be a ``pl.LazyFrame`` (a scan of Parquet, CSV or JSONL files, see
``scan_raw_files``) or an in-memory frame. The streaming engine validates them (one pass of
counts and first offending rows, the same checks and messages as ``preprocess.validate``) and
replaces the string ``user_id``/``item_id`` by Int32 codes in order of first appearance, so the
string ids are held once per user and item (``Encoded.user_names``/``item_names``) instead of
once per event. Every later step only groups, windows and joins ids, so codes give the same
result as the strings they stand for (``remap_ids`` turns them back into the source ids).

``memory_budget_gib`` (``PrepareConfig``) sets the streaming engine's chunk size and the row
groups of files written in chunks; ``check_budget`` warns when the in-memory core (k-core,
split, sessions) is likely to exceed it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from onefeed.data.preprocess import ValidationReport, row_checks, show
from onefeed.data.schemas import (BEHAVIOURS, ITEM_SCHEMA, RAW_EVENT_SCHEMA, SPLITS, DataError,
                                  RawData, conform)

log = logging.getLogger(__name__)

# Bytes one working event takes in the in-memory core (codes, timestamp, order, split and the
# temporary columns of the widest step), measured on the synthetic world at 1M and 10M events.
BYTES_PER_EVENT = 120
RAW_SUFFIXES = (".parquet", ".csv", ".tsv", ".jsonl", ".ndjson")
# Working frames hold ``behaviour`` as a one-byte Enum (validated values only); the saved
# events have it as text again (``prepare._final_events``).
BEHAVIOUR = pl.Enum(list(BEHAVIOURS))
SPLIT = pl.Enum(list(SPLITS))  # ``split`` likewise, from the split step on


def chunk_rows(budget_gib: float, bytes_per_row: int = 200, share: float = 0.05) -> int:
    """Rows per streaming chunk / written row group: ``share`` of the budget, in [10k, 1M]."""
    return int(min(1_000_000, max(10_000, budget_gib * 2**30 * share / bytes_per_row)))


def configure_streaming(budget_gib: float) -> None:
    """Size the streaming engine's chunks from the memory budget."""
    pl.Config.set_streaming_chunk_size(chunk_rows(budget_gib))


def collect(lf: pl.LazyFrame) -> pl.DataFrame:
    return lf.collect(engine="streaming")


@dataclass(frozen=True)
class Encoded:
    events: pl.DataFrame  # RAW_EVENT_SCHEMA columns, user_id/item_id as Int32 codes
    user_names: pl.Series  # code -> source user id
    item_names: pl.Series  # code -> source item id


def as_lazy(events: pl.DataFrame | pl.LazyFrame) -> pl.LazyFrame:
    return events.lazy() if isinstance(events, pl.DataFrame) else events


def conform_lazy(events: pl.LazyFrame, where: str) -> pl.LazyFrame:
    """RAW_EVENT_SCHEMA columns in order (missing optional ones null); a present column of the
    wrong type is cast strictly when collected (a failed cast names the column)."""
    schema = events.collect_schema()
    cols = []
    for name, dtype in RAW_EVENT_SCHEMA.items():
        if name not in schema:
            cols.append(pl.lit(None, dtype=dtype).alias(name))
        elif schema[name] == dtype:
            cols.append(pl.col(name))
        elif dtype == pl.Utf8 and schema[name] not in (pl.Utf8, pl.Categorical, pl.Null) \
                and not schema[name].is_integer():
            raise DataError(f"{where}: column '{name}' has type {schema[name]}, expected {dtype}")
        else:
            cols.append(pl.col(name).cast(dtype, strict=True))
    return events.select(cols)


def validate_lazy(events: pl.LazyFrame, items: pl.DataFrame, source: str) -> ValidationReport:
    """``preprocess.validate`` for a lazy frame: the same checks, messages and report, computed
    by the streaming engine in two passes (checks and counts, then per-user counts)."""
    return validate_and_users(events, items, source)[0]


def validate_and_users(events: pl.LazyFrame, items: pl.DataFrame, source: str
                       ) -> tuple[ValidationReport, pl.Series]:
    """``validate_lazy`` + the distinct user ids in first-appearance order (for ``encode_ids``)."""
    where = f"{source} events"
    schema = events.collect_schema()
    checks = row_checks(pl.DataFrame(schema=schema), where)
    has_ts = "timestamp" in schema
    aggs = [pl.len().alias("_n")]
    for j, (_, mask, _) in enumerate(checks):
        aggs += [mask.sum().alias(f"_bad{j}"), pl.col("_row").filter(mask).min().alias(f"_at{j}")]
    if has_ts:
        aggs.append(pl.col("timestamp").null_count().alias("_ts_null"))
    aggs += [(pl.col("behaviour") == b).sum().alias(f"_b_{b}") for b in BEHAVIOURS]
    found = collect(events.with_row_index("_row").select(aggs)).row(0, named=True)
    if found["_n"] == 0:
        raise DataError(f"{where}: no events (empty dataset)")
    for j, (column, _, what) in enumerate(checks):
        n_bad = found[f"_bad{j}"]
        if n_bad:
            row = int(found[f"_at{j}"])
            value = collect(events.select(column).slice(row, 1))[column][0]
            raise DataError(f"{where}: row {row}, column '{column}' {what} "
                            f"(value {show(value)}; {n_bad} such rows)")
    _validate_items(items, source)
    per_user = user_counts(events)
    single = per_user.filter(pl.col("len") == 1)
    return ValidationReport(
        n_events=found["_n"], n_users=per_user.height, n_items_with_metadata=items.height,
        events_by_behaviour={b: int(found[f"_b_{b}"]) for b in BEHAVIOURS if found[f"_b_{b}"]},
        has_timestamps=bool(has_ts and found["_ts_null"] < found["_n"]),
        single_event_users=single.height,
        single_event_examples=single["user_id"].head(5).to_list()), per_user["user_id"]


def user_counts(events: pl.LazyFrame) -> pl.DataFrame:
    """user_id (in order of first appearance), len: read by validation and by ``encode_ids``."""
    return collect(events.group_by("user_id", maintain_order=True).len())


def _validate_items(items: pl.DataFrame, source: str) -> None:
    if "item_id" not in items.columns:
        raise DataError(f"{source} items: missing column 'item_id'")
    for mask, what in ((pl.col("item_id").is_null(), "is null"),):
        bad = items.with_row_index("_row").filter(mask)
        if bad.height:
            raise DataError(f"items: row {bad['_row'][0]}, column 'item_id' {what} "
                            f"({bad.height} such rows)")
    bad = items.with_row_index("_row").filter(pl.col("item_id").is_duplicated())
    if bad.height:
        row = int(bad["_row"][0])
        raise DataError(f"items: row {row}, column 'item_id' duplicate id "
                        f"{items['item_id'][row]!r} ({bad.height} rows share a duplicated id)")


def encode_ids(events: pl.LazyFrame, users: pl.Series | None = None) -> Encoded:
    """Streaming: the distinct user and item ids in order of first appearance, then the events
    with ``user_id``/``item_id`` replaced by their Int32 index in those lists (and
    ``behaviour`` as the ``BEHAVIOUR`` Enum)."""
    if users is None:  # else the distinct ids in first-appearance order, e.g. user_counts'
        users = collect(events.select(pl.col("user_id").unique(maintain_order=True)))["user_id"]
    items = collect(events.select(pl.col("item_id").drop_nulls().unique(maintain_order=True))
                    )["item_id"]
    if users.len() >= 2**31 or items.len() >= 2**31:
        raise DataError(f"{users.len():,} users / {items.len():,} items: more than Int32 codes")

    def code(name: str, ids: pl.Series) -> pl.Expr:
        return pl.col(name).replace_strict(ids, pl.int_range(ids.len(), dtype=pl.Int32,
                                                             eager=True), default=None)
    try:
        frame = collect(events.with_columns(code("user_id", users), code("item_id", items),
                                            pl.col("behaviour").cast(BEHAVIOUR)))
    except pl.exceptions.InvalidOperationError as exc:  # a strict cast in conform_lazy failed
        raise DataError(f"raw events: {str(exc).splitlines()[0]}") from None
    return Encoded(frame, users, items)


def check_budget(n_events: int, budget_gib: float) -> None:
    need = n_events * BYTES_PER_EVENT / 2**30
    if need > budget_gib:
        log.warning("%s events: the in-memory core of prepare (k-core, split, sessions) needs "
                    "~%.1f GiB, over memory_budget_gib = %g", f"{n_events:,}", need, budget_gib)


def scan_raw_files(folder: str | Path) -> pl.LazyFrame:
    """A lazy scan of ``folder/events.*`` or the files in ``folder/events/`` (all one format:
    Parquet, CSV/TSV with a header, or JSONL) with RAW_EVENT_SCHEMA column names."""
    folder = Path(folder)
    files = sorted(p for p in (folder / "events").glob("*") if p.suffix in RAW_SUFFIXES) \
        if (folder / "events").is_dir() else \
        [p for p in (folder / f"events{s}" for s in RAW_SUFFIXES) if p.is_file()]
    if not files:
        raise DataError(f"{folder}: no events.parquet|csv|tsv|jsonl and no events/ folder of such "
                        "files")
    kinds = {p.suffix for p in files}
    if len(kinds) > 1:
        raise DataError(f"{folder}: event files of mixed formats {sorted(kinds)}")
    kind = kinds.pop()
    if kind == ".parquet":
        return pl.scan_parquet(files)
    if kind in (".jsonl", ".ndjson"):
        return pl.scan_ndjson(files, schema={k: v for k, v in RAW_EVENT_SCHEMA.items()},
                              infer_schema_length=None)
    overrides = {"user_id": pl.Utf8, "item_id": pl.Utf8, "behaviour": pl.Utf8,
                 "query": pl.Utf8, "review": pl.Utf8}
    return pl.scan_csv(files, separator="\t" if kind == ".tsv" else ",",
                       schema_overrides=overrides)



def load_raw_files(path: str | Path | None = None) -> RawData:
    """``load_raw("raw-files", FOLDER)``: events already in RAW_EVENT_SCHEMA columns, scanned
    lazily (``scan_raw_files``), + optional ``items.parquet|jsonl`` (ITEM_SCHEMA) and
    ``source.json`` (the writer's source record, e.g. ``synthetic.write_parquet``'s)."""
    import json



    if path is None:
        raise DataError("raw-files needs a path: the folder holding events.* or events/")
    folder = Path(path)
    if not folder.is_dir():
        raise DataError(f"{folder}: not a folder (raw-files reads FOLDER/events.* or "
                        "FOLDER/events/*)")
    events = scan_raw_files(folder)
    files = sorted(str(p) for p in [*(folder / "events").glob("*"),
                                     *folder.glob("events.*")] if p.is_file())
    items = pl.DataFrame(schema=ITEM_SCHEMA)
    for name in ("items.parquet", "items.jsonl"):
        if (folder / name).is_file():
            read = pl.read_parquet if name.endswith("parquet") else pl.read_ndjson
            items = conform(read(folder / name), ITEM_SCHEMA, f"{folder / name}")
            files.append(str(folder / name))
            break
    source = {"name": folder.name}
    if (folder / "source.json").is_file():
        source = json.loads((folder / "source.json").read_text())
    source.update(root=str(folder), files=files)
    return RawData(events, items, source)
