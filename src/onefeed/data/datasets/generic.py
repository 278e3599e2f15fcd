"""Your own logs: CSV / TSV / JSONL / Parquet events (+ items) described by a TOML column mapping.

No code needed: copy ``configs/datasets/example_generic.toml``, name your files and columns,
then ``load_raw("generic", config="my.toml")``. File paths in the mapping are relative to
``path`` when given, else to the TOML file's folder. An empty string means "not present".
"""

from __future__ import annotations

import datetime as dt
import io
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import polars as pl

from onefeed import config as config_mod
from onefeed.data.datasets.files import (cast_strict, check_finite, decode, items_for, json_frame,
                                         json_lines, known_encoding, need_columns, no_nulls,
                                         read_bytes, short_rows, show, source_record, unique_ids)
from onefeed.data.preprocess import MAX_STRENGTH, MAX_TIMESTAMP
from onefeed.data.schemas import (BEHAVIOURS, ITEM_SCHEMA, RAW_EVENT_SCHEMA, DataError, RawData,
                                  conform)

Format = Literal["csv", "tsv", "jsonl", "parquet"]
ISO_8601 = re.compile(r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?"
                      r"(Z|[+-]\d{2}:?\d{2})?$")


def check_file_format(separator: str, encoding: str) -> None:
    """A separator polars can split on and an encoding Python knows (ValueError otherwise)."""
    if len(separator) != 1 or not separator.isascii() or separator in '"\r\n':
        raise ValueError(f"separator = {show(separator)}: must be one ASCII character other "
                         "than a quote or newline (e.g. ',', ';', '|'; format = 'tsv' for tabs)")
    if not known_encoding(encoding):
        raise ValueError(f"encoding = {show(encoding)}: unknown (e.g. utf-8, latin-1, cp1252)")


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

    def check(self) -> None:
        check_file_format(self.separator, self.encoding)


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

    def check(self) -> None:
        check_file_format(self.separator, self.encoding)


@dataclass
class GenericMapping:
    name: str = "generic"
    events: EventColumns = field(default_factory=EventColumns)
    items: ItemColumns = field(default_factory=ItemColumns)


Table = tuple[pl.DataFrame, int, str, dict[str, tuple[int, str]]]


def read_table(path: Path, fmt: str, separator: str, encoding: str) -> Table:
    """Read a file as a frame; returns (frame, file line of row 0, "line" or "row", problems).

    ``problems``: per column, the first (row, what) a loader must not accept in a column it
    reads (objects, booleans, invalid UTF-8 bytes ...); unread columns may hold anything.
    """
    if fmt == "parquet":
        return _read_parquet(path)
    if fmt == "jsonl":
        rows = list(json_lines(path))
        frame, problems = json_frame(rows)
        if rows[-1][0] - rows[0][0] == len(rows) - 1:  # no blank lines in between
            return frame, rows[0][0], "line", problems
        return frame, 1, "non-blank line", problems
    text = decode(path, read_bytes(path), encoding)
    sep = "\t" if fmt == "tsv" else separator
    try:
        frame = pl.read_csv(io.StringIO(text), separator=sep, infer_schema=False)
    except pl.exceptions.PolarsError as exc:
        header = len(text.splitlines()[0].split(sep)) if text else 0
        line, n = short_rows(text, sep, header)
        if line > 0:
            raise DataError(f"{path}: line {line}: row has {n} fields, expected {header} (the "
                            f"header's, separator {sep!r})") from None
        raise DataError(f"{path}: cannot parse as {sep!r}-separated text "
                        f"({str(exc).splitlines()[0]})") from None
    if frame.height == 0:
        raise DataError(f"{path}: file has a header but no rows")
    if frame[frame.columns[-1]].null_count():  # a short row leaves the last column empty
        line, n = short_rows(text, sep, frame.width)
        if line > 0:
            raise DataError(f"{path}: line {line}: row has {n} fields, expected {frame.width} "
                            f"(the header's, separator {sep!r})")
    return frame, 2, "line", {}


def _read_parquet(path: Path) -> Table:
    if not path.is_file():
        raise DataError(f"{path}: file not found (looked at {path.resolve()})")
    try:
        frame = pl.read_parquet(path)
    except Exception as exc:  # polars/pyarrow raise several types
        raise DataError(f"{path}: not a readable parquet file ({exc})") from None
    if frame.height == 0:
        raise DataError(f"{path}: file has no rows")
    problems: dict[str, tuple[int, str]] = {}
    for name, dtype in frame.schema.items():
        column = frame[name]
        if dtype == pl.Binary:
            try:
                frame = frame.with_columns(column.cast(pl.Utf8))
            except pl.exceptions.PolarsError:  # invalid UTF-8 somewhere: find the row
                row = next(i for i, b in enumerate(column.to_list()) if not _utf8(b))
                problems[name] = (row, "holds bytes that are not valid UTF-8")
                frame = frame.with_columns(pl.lit(None, pl.Utf8).alias(name))
        elif dtype == pl.Boolean:
            problems[name] = (0, "holds booleans")
        elif isinstance(dtype, (pl.Struct, pl.Object)) or (
                isinstance(dtype, (pl.List, pl.Array)) and not dtype.inner.is_numeric()
                and dtype.inner not in (pl.Utf8, pl.Categorical)):
            problems[name] = (0, f"holds {dtype} values, not text or numbers")
        elif dtype.is_float():
            bad = column.is_nan() | column.is_infinite()
            if bad.any() and name not in problems:
                problems[name] = (int(bad.arg_max()), f"holds {column[int(bad.arg_max())]!r}")
    return frame, 0, "row", problems


def _utf8(data: bytes | None) -> bool:
    if data is None:
        return True
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _usable(frame: pl.DataFrame, problems: dict[str, tuple[int, str]], scalar: list[str],
            lists: list[str], path: Path, first: int, unit: str) -> None:
    """Raise for a problem in a read column, or a list in a single-value column."""
    for name in [*scalar, *lists]:
        if name in problems:
            row, what = problems[name]
            raise DataError(f"{path}: {unit} {row + first}, column '{name}' {what}")
    for name in scalar:
        if isinstance(frame.schema[name], (pl.List, pl.Array)):
            row = int(frame[name].is_not_null().arg_max())
            raise DataError(f"{path}: {unit} {row + first}, column '{name}' holds lists; "
                            "expected one value per row")


def _timestamps(values: pl.Series, fmt: str, at: tuple) -> pl.Series:
    """Unix seconds (Int64) in [0, MAX_TIMESTAMP]; ``unix`` also reads ISO-8601 text."""
    path, column, first, unit = at
    text = values.cast(pl.Utf8).str.strip_chars()
    if fmt in ("unix", "unix_ms"):
        numbers = text.cast(pl.Float64, strict=False)
        bad = numbers.is_null() & text.is_not_null()
        if fmt == "unix" and bad.any() and text.str.contains(ISO_8601.pattern).all():
            seconds = _iso_seconds(text, at)
        elif bad.any():
            row = int(bad.arg_max())
            raise DataError(f"{path}: {unit} {row + first}, column '{column}': cannot read "
                            f"{show(text[row])} as {fmt} seconds; set [events] "
                            "timestamp_format to unix | unix_ms | a strptime pattern such as "
                            "'%Y-%m-%d %H:%M:%S' (ISO-8601 is detected automatically)")
        else:
            seconds = numbers / (1000 if fmt == "unix_ms" else 1)
    else:
        parsed = text.str.strptime(pl.Datetime("us"), fmt, strict=False)
        bad = parsed.is_null() & text.is_not_null()
        if bad.any():
            row = int(bad.arg_max())
            raise DataError(f"{path}: {unit} {row + first}, column '{column}': cannot parse "
                            f"{show(text[row])} with timestamp_format {fmt!r}")
        seconds = parsed.dt.epoch("s").cast(pl.Float64)
    check_finite(seconds, path, column, first, unit, 0, MAX_TIMESTAMP,
                 "[0, 253402300799] unix seconds (1970 .. 9999)")
    return seconds.floor().cast(pl.Int64)


def _iso_seconds(text: pl.Series, at: tuple) -> pl.Series:
    """ISO-8601 strings -> float unix seconds (naive times are taken as UTC)."""
    seen: dict[str, float] = {}
    for value in text.unique().to_list():
        try:
            stamp = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError as exc:
            path, column, first, unit = at
            row = int((text == value).arg_max())
            raise DataError(f"{path}: {unit} {row + first}, column '{column}': {show(value)} "
                            f"is not an ISO-8601 time ({exc})") from None
        if stamp.tzinfo is None:
            stamp = stamp.replace(tzinfo=dt.timezone.utc)
        seen[value] = stamp.timestamp()
    return text.replace_strict(seen, return_dtype=pl.Float64)


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
                        f"{show(text[row])}; map it in [events.behaviour_values] to one of "
                        f"{BEHAVIOURS}")
    return out


def read_events(path: Path, cols: EventColumns) -> pl.DataFrame:
    frame, first, unit, problems = read_table(path, cols.format, cols.separator, cols.encoding)
    named = {k: getattr(cols, k) for k in ("user", "item", "timestamp", "behaviour", "query",
                                           "strength", "review") if getattr(cols, k)}
    need_columns(frame, list(named.values()), path)
    _usable(frame, problems, list(named.values()), [], path, first, unit)

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
    if cols.behaviour:
        no_nulls(frame[cols.behaviour], *at("behaviour"))
        out["behaviour"] = _behaviours(frame[cols.behaviour], cols.behaviour_values,
                                       at("behaviour"))
    else:
        out["behaviour"] = pl.repeat("rec_click", frame.height, eager=True)
    if cols.query:
        out["query"] = frame[cols.query].cast(pl.Utf8)
    if cols.strength:
        strength = cast_strict(frame[cols.strength].cast(pl.Utf8), pl.Float64, *at("strength"))
        check_finite(strength.fill_null(0.0), *at("strength"), -MAX_STRENGTH, MAX_STRENGTH,
                     f"[-{MAX_STRENGTH:g}, {MAX_STRENGTH:g}]")
        out["strength"] = strength.cast(pl.Float32)
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
    frame, first, unit, problems = read_table(path, cols.format, cols.separator, cols.encoding)
    text = {k: getattr(cols, k) for k in ("title", "description", "brand") if getattr(cols, k)}
    lists = {k: getattr(cols, k) for k in ("categories", "tags") if getattr(cols, k)}
    need_columns(frame, [cols.id, *text.values(), *lists.values()], path)
    _usable(frame, problems, [cols.id, *text.values()], list(lists.values()), path, first, unit)
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
    if isinstance(config, GenericMapping):  # re-built so its ranges and checks run
        mapping = config_mod.from_dict(GenericMapping, config_mod.to_dict(config))
        base = Path(path) if path is not None else Path.cwd()
    else:
        toml = Path(config)
        if not toml.is_file():
            raise DataError(f"{toml}: mapping file not found (looked at {toml.resolve()})")
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
