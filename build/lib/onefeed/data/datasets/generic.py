"""Your own logs: CSV / TSV / JSONL / Parquet events (+ items) described by a TOML column mapping.

No code needed: copy ``configs/datasets/example_generic.toml``, name your files and columns,
then ``load_raw("generic", config="my.toml")``. File paths in the mapping are relative to
``path`` when given, else to the TOML file's folder. An empty string means "not present".
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import polars as pl

from onefeed import config as config_mod
from onefeed.data.datasets.files import (cast_strict, decode, items_for, json_lines, need_columns,
                                         no_nulls, read_bytes, source_record, unique_ids)
from onefeed.data.schemas import (BEHAVIOURS, ITEM_SCHEMA, RAW_EVENT_SCHEMA, DataError, RawData,
                                  conform)

Format = Literal["csv", "tsv", "jsonl", "parquet"]


@dataclass
class EventColumns:
    file: str = "events.csv"
    format: Format = "csv"
    separator: str = ","  # csv only
    encoding: str = "utf-8"
    user: str = "user_id"
    item: str = "item_id"
    timestamp: str = ""  # "" = the log has no time; rows keep file order
    timestamp_format: str = "unix"  # unix (seconds) | unix_ms | a strptime pattern
    behaviour: str = ""  # "" = every row is a rec_click
    behaviour_values: dict[str, str] = field(default_factory=dict)  # source -> canonical
    query: str = ""
    strength: str = ""
    review: str = ""


@dataclass
class ItemColumns:
    file: str = ""  # "" = no item file (items get ids only)
    format: Format = "csv"
    separator: str = ","
    encoding: str = "utf-8"
    id: str = "item_id"
    title: str = ""
    description: str = ""
    brand: str = ""
    categories: str = ""  # a list column, or a string split on category_separator
    category_separator: str = ">"
    tags: str = ""
    tag_separator: str = "|"


@dataclass
class GenericMapping:
    name: str = "generic"
    events: EventColumns = field(default_factory=EventColumns)
    items: ItemColumns = field(default_factory=ItemColumns)


def read_table(path: Path, fmt: str, separator: str, encoding: str) -> tuple[pl.DataFrame, int,
                                                                             str]:
    """Read a file as a frame; returns (frame, file line of row 0, "line" or "row")."""
    if fmt == "parquet":
        if not path.is_file():
            raise DataError(f"{path}: file not found")
        try:
            frame = pl.read_parquet(path)
        except Exception as exc:  # polars/pyarrow raise several types
            raise DataError(f"{path}: not a readable parquet file ({exc})") from None
        if frame.height == 0:
            raise DataError(f"{path}: file has no rows")
        return frame, 0, "row"
    if fmt == "jsonl":
        rows = list(json_lines(path))
        frame = pl.DataFrame([obj for _, obj in rows], infer_schema_length=None)
        if rows[-1][0] - rows[0][0] == len(rows) - 1:  # no blank lines in between
            return frame, rows[0][0], "line"
        return frame, 1, "non-blank line"
    text = decode(path, read_bytes(path), encoding)
    sep = "\t" if fmt == "tsv" else separator
    try:
        frame = pl.read_csv(io.StringIO(text), separator=sep, infer_schema=False)
    except pl.exceptions.PolarsError as exc:
        raise DataError(f"{path}: cannot parse as {sep!r}-separated text ({exc})") from None
    if frame.height == 0:
        raise DataError(f"{path}: file has a header but no rows")
    return frame, 2, "line"


def _timestamps(values: pl.Series, fmt: str, at: tuple) -> pl.Series:
    if fmt in ("unix", "unix_ms"):
        seconds = cast_strict(values.cast(pl.Utf8), pl.Float64, *at)
        return (seconds / (1000 if fmt == "unix_ms" else 1)).floor().cast(pl.Int64)
    text = values.cast(pl.Utf8).str.strip_chars()
    parsed = text.str.strptime(pl.Datetime("us"), fmt, strict=False)
    bad = parsed.is_null() & text.is_not_null()
    if bad.any():
        row = int(bad.arg_max())
        path, column, first, unit = at
        raise DataError(f"{path}: {unit} {row + first}, column '{column}': cannot parse "
                        f"{text[row]!r} with timestamp_format {fmt!r}")
    return parsed.dt.epoch("s")


def _behaviours(values: pl.Series, mapping: dict[str, str], at: tuple) -> pl.Series:
    bad_targets = sorted(set(mapping.values()) - set(BEHAVIOURS))
    if bad_targets:
        raise DataError(f"behaviour_values maps to {bad_targets}; allowed: {BEHAVIOURS}")
    full = {**{b: b for b in BEHAVIOURS}, **mapping}
    text = values.cast(pl.Utf8).str.strip_chars()
    out = text.replace_strict(full, default=None, return_dtype=pl.Utf8)
    bad = out.is_null()
    if bad.any():
        row = int(bad.arg_max())
        path, column, first, unit = at
        raise DataError(f"{path}: {unit} {row + first}, column '{column}': unknown behaviour "
                        f"{text[row]!r}; map it in [events.behaviour_values] to one of "
                        f"{BEHAVIOURS}")
    return out


def read_events(path: Path, cols: EventColumns) -> pl.DataFrame:
    frame, first, unit = read_table(path, cols.format, cols.separator, cols.encoding)
    named = {k: getattr(cols, k) for k in ("user", "item", "timestamp", "behaviour", "query",
                                           "strength", "review") if getattr(cols, k)}
    need_columns(frame, list(named.values()), path)

    def at(key: str) -> tuple:
        return (path, named[key], first, unit)

    no_nulls(frame[cols.user], *at("user"))
    out = {"user_id": frame[cols.user].cast(pl.Utf8),
           "item_id": frame[cols.item].cast(pl.Utf8),
           "order": pl.int_range(frame.height, eager=True, dtype=pl.Int64)}
    if cols.timestamp:
        no_nulls(frame[cols.timestamp], *at("timestamp"))
        out["timestamp"] = _timestamps(frame[cols.timestamp], cols.timestamp_format,
                                       at("timestamp"))
    out["behaviour"] = (_behaviours(frame[cols.behaviour], cols.behaviour_values,
                                    at("behaviour")) if cols.behaviour
                        else pl.repeat("rec_click", frame.height, eager=True))
    if cols.query:
        out["query"] = frame[cols.query].cast(pl.Utf8)
    if cols.strength:
        out["strength"] = cast_strict(frame[cols.strength].cast(pl.Utf8), pl.Float32,
                                      *at("strength"))
    if cols.review:
        out["review"] = frame[cols.review].cast(pl.Utf8)
    events = pl.DataFrame(out)
    item_rows = events["behaviour"] != "search_query"
    no_nulls(events["item_id"].filter(item_rows), path, cols.item, first, unit)
    return conform(events, RAW_EVENT_SCHEMA, str(path))


def _list_column(values: pl.Series, separator: str) -> pl.Series:
    if values.dtype == pl.List(pl.Utf8):
        return values
    if isinstance(values.dtype, pl.List):
        return values.cast(pl.List(pl.Utf8))
    return (values.cast(pl.Utf8).str.split(separator)
            .list.eval(pl.element().str.strip_chars().filter(pl.element() != "")))


def read_items(path: Path, cols: ItemColumns) -> pl.DataFrame:
    frame, first, unit = read_table(path, cols.format, cols.separator, cols.encoding)
    text = {k: getattr(cols, k) for k in ("title", "description", "brand") if getattr(cols, k)}
    lists = {k: getattr(cols, k) for k in ("categories", "tags") if getattr(cols, k)}
    need_columns(frame, [cols.id, *text.values(), *lists.values()], path)
    ids = frame[cols.id].cast(pl.Utf8)
    no_nulls(ids, path, cols.id, first, unit)
    unique_ids(ids, path, cols.id, first, unit)
    out = {"item_id": ids, **{k: frame[c].cast(pl.Utf8) for k, c in text.items()}}
    seps = {"categories": cols.category_separator, "tags": cols.tag_separator}
    out.update({k: _list_column(frame[c], seps[k]) for k, c in lists.items()})
    return conform(pl.DataFrame(out), ITEM_SCHEMA, str(path))


def load_generic(path: str | Path | None = None,
                 config: str | Path | GenericMapping | None = None) -> RawData:
    """Events (+ items) named by a ``GenericMapping`` (or a TOML file holding one)."""
    if config is None:
        raise DataError("generic loader needs config= (a TOML column mapping; see "
                        "configs/datasets/example_generic.toml)")
    if isinstance(config, GenericMapping):
        mapping, base = config, Path(path) if path is not None else Path.cwd()
    else:
        toml = Path(config)
        if not toml.is_file():
            raise DataError(f"{toml}: mapping file not found")
        mapping = config_mod.load(GenericMapping, toml)
        base = Path(path) if path is not None else toml.resolve().parent
    events_path = base / mapping.events.file
    events = read_events(events_path, mapping.events)
    files = [events_path]
    items = None
    if mapping.items.file:
        items_path = base / mapping.items.file
        items = read_items(items_path, mapping.items)
        files.append(items_path)
    has_time = bool(mapping.events.timestamp)
    notes = [] if has_time else ["No timestamp column: order is the file's row order."]
    source = source_record(mapping.name, base, files, has_time, notes)
    return RawData(events, items_for(events, items), source)
