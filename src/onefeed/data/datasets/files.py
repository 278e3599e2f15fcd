"""Reading raw files with errors that name the file, line/row and column.

Shared by every loader in this package: locating required files, decoding bytes strictly,
JSON lines, strict column casts, and the ``RawData.source`` record.
"""

from __future__ import annotations

import ast
import codecs
import csv
import gzip
import io
import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl
from rich.progress import track

from onefeed.artifacts import file_sha256
from onefeed.data.preprocess import show
from onefeed.data.schemas import ITEM_SCHEMA, DataError, conform

PROGRESS_LINES = 200_000  # JSON-lines files longer than this show a progress bar


def require(folder: Path, names: list[str], hint: str) -> list[Path]:
    """Paths of ``names`` in ``folder``; else ``DataError`` naming what is missing and ``hint``."""
    missing = [n for n in names if not (folder / n).is_file()]
    if missing:
        raise DataError(f"{folder}: missing {', '.join(missing)}. Put {hint} in {folder} "
                        f"(or pass path=/ set ONEFEED_DATA_ROOT).")
    return [folder / n for n in names]


def read_bytes(path: Path) -> bytes:
    """The file's bytes, gunzipped when the name ends in ``.gz``; empty files raise."""
    if not path.is_file():
        raise DataError(f"{path}: file not found (looked at {path.resolve()})")
    try:
        data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise DataError(f"{path}: cannot read ({exc})") from None
    if not data.strip():
        raise DataError(f"{path}: file is empty")
    return data


def decode(path: Path, data: bytes, encoding: str = "utf-8") -> str:
    """Decode strictly; a bad byte raises ``DataError`` with its line and byte offset."""
    try:
        return data.decode(encoding)
    except LookupError:
        raise DataError(f"{path}: unknown encoding {show(encoding)} (e.g. utf-8, latin-1, "
                        "cp1252)") from None
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        col = exc.start - (data.rfind(b"\n", 0, exc.start) + 1)
        raise DataError(f"{path}: line {line}, byte {col}: not valid {encoding} "
                        f"({data[exc.start:exc.start + 1]!r}); re-encode the file as "
                        f"{encoding} or declare its encoding") from None


def read_text(path: Path, encoding: str = "utf-8") -> str:
    return decode(path, read_bytes(path), encoding)


def json_lines(path: Path, python_literals: bool = False) -> Iterator[tuple[int, dict]]:
    """Yield (line number, object) for each non-blank line of a (gzipped) JSON-lines file.

    ``python_literals``: also accept lines that are Python dict literals (the 2014 Amazon
    ``meta_*.json.gz`` dump is written that way).
    """
    lines = read_text(path).splitlines()
    numbered = enumerate(lines, start=1)
    if len(lines) > PROGRESS_LINES:
        numbered = track(numbered, total=len(lines), description=f"reading {path.name}",
                         transient=True)
    for number, line in numbered:
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except RecursionError:
            raise DataError(f"{path}: line {number}: JSON nested too deeply") from None
        except json.JSONDecodeError as exc:
            obj = _literal(line) if python_literals else None
            if obj is None:
                raise DataError(f"{path}: line {number}: malformed JSON ({exc.msg} at "
                                f"column {exc.colno})") from None
        if not isinstance(obj, dict):
            raise DataError(f"{path}: line {number}: expected a JSON object, "
                            f"got {type(obj).__name__}")
        yield number, obj


def json_frame(rows: list[tuple[int, dict]]) -> tuple[pl.DataFrame, dict[str, tuple[int, str]]]:
    """JSON-lines objects -> a frame of Utf8 (scalars) or List(Utf8) (lists of scalars) columns.

    Scalars become their JSON text (``1`` -> "1", ``1.5`` -> "1.5"); the loader casts them.
    Returns (frame, problems): per column, the first row (0-based) holding an object, a list
    of non-scalars, a boolean, or lists mixed with scalars; a loader raises for the columns it
    uses.
    """
    keys: dict[str, None] = {}
    for _, obj in rows:
        keys.update(dict.fromkeys(obj))
    columns: dict[str, pl.Series] = {}
    problems: dict[str, tuple[int, str]] = {}
    for key in keys:
        values: list[Any] = []
        kinds: set[str] = set()
        for row, (_, obj) in enumerate(rows):
            value, kind = _json_cell(obj.get(key))
            if kind in ("object", "nested list", "boolean") and key not in problems:
                problems[key] = (row, f"holds {kind} {show(obj.get(key), 40)}")
            if kind in ("scalar", "list"):
                kinds.add(kind)
                if len(kinds) == 2 and key not in problems:
                    problems[key] = (row, "mixes lists and single values")
            values.append(value)
        if "list" in kinds and "scalar" not in kinds:
            columns[key] = pl.Series(key, values, dtype=pl.List(pl.Utf8))
        else:
            columns[key] = pl.Series(key, [None if isinstance(v, list) else v for v in values],
                                     dtype=pl.Utf8)
    return pl.DataFrame(columns), problems


def _json_cell(value: Any) -> tuple[Any, str]:
    """(cell as str / list[str] / None, kind) for one JSON value."""
    if value is None:
        return None, "null"
    if isinstance(value, bool):
        return str(value).lower(), "boolean"
    if isinstance(value, (int, float, str)):
        return (str(value) if not isinstance(value, float) else repr(value)), "scalar"
    if isinstance(value, list):
        if all(isinstance(v, (int, float, str)) and not isinstance(v, bool) for v in value):
            return [str(v) for v in value], "list"
        return None, "nested list"
    return None, "object"


def short_rows(text: str, separator: str, expected: int, first_line: int = 2) -> tuple[int, int]:
    """(file line, field count) of the first row whose field count is not ``expected``,
    else (-1, expected). Quoted fields may hold the separator (csv module rules)."""
    reader = csv.reader(io.StringIO(text), delimiter=separator)
    next(reader, None)  # header
    for row in reader:
        if row and len(row) != expected:
            return reader.line_num, len(row)
    return -1, expected


def check_finite(values: pl.Series, path: Path, column: str, first_line: int, unit: str,
                 low: float, high: float, what: str) -> None:
    """Raise when a Float64 value is NaN / inf or outside [low, high], naming line and column."""
    bad = values.is_nan() | (values < low) | (values > high)
    if bad.any():
        row = int(bad.arg_max())
        value = values[row]
        why = "is not a finite number" if not math.isfinite(value) else f"is outside {what}"
        raise DataError(f"{path}: {unit} {row + first_line}, column '{column}': {value!r} {why} "
                        f"({int(bad.sum())} such values)")


def known_encoding(name: str) -> bool:
    try:
        codecs.lookup(name)
    except LookupError:
        return False
    return True


def _literal(line: str) -> dict | None:
    try:
        obj = ast.literal_eval(line)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return None
    return obj if isinstance(obj, dict) else None


def text_id(obj: dict, key: str, path: Path, line: int) -> str:
    """``obj[key]`` as an id: a non-empty JSON string or integer (not a bool, list, object)."""
    value = obj.get(key)
    if value is None or value == "":
        raise DataError(f"{path}: line {line}, column '{key}' is missing")
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise DataError(f"{path}: line {line}, column '{key}': expected a string id, got "
                        f"{type(value).__name__} {show(value, 40)}")
    return str(value)


def need_columns(frame: pl.DataFrame, columns: list[str], path: Path) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(f"{path}: missing column(s) {missing}; found {frame.columns}")


def cast_strict(series: pl.Series, dtype: pl.DataType, path: Path, column: str,
                first_line: int = 1, unit: str = "line") -> pl.Series:
    """Cast ``series`` to ``dtype``; the first unparsable value raises with its line and column.

    ``first_line`` is the file line (or row) of the series' first element.
    """
    if series.dtype == pl.Utf8:
        series = series.str.strip_chars()
    out = series.cast(dtype, strict=False)
    bad = out.is_null() & series.is_not_null()
    if bad.any():
        row = int(bad.arg_max())  # first True
        raise DataError(f"{path}: {unit} {row + first_line}, column '{column}': cannot read "
                        f"{show(series[row])} as {dtype} ({int(bad.sum())} such values)")
    return out


def no_nulls(series: pl.Series, path: Path, column: str, first_line: int = 1,
             unit: str = "line") -> None:
    if series.null_count():
        row = int(series.is_null().arg_max())
        raise DataError(f"{path}: {unit} {row + first_line}, column '{column}' is missing "
                        f"({series.null_count()} such values)")


def unique_ids(ids: pl.Series, path: Path, column: str, first_line: int = 1,
               unit: str = "line") -> None:
    """Raise when an id repeats, naming both lines."""
    dup = ids.is_duplicated()
    if dup.any():
        first = int(dup.arg_max())
        rows = (dup & (ids == ids[first])).arg_true().to_list()
        raise DataError(f"{path}: {unit}s {rows[0] + first_line} and {rows[1] + first_line}, "
                        f"column '{column}': duplicate id {show(ids[first])} "
                        f"({int(dup.sum())} rows share a duplicated id)")


def source_record(name: str, root: Path, files: list[Path], has_timestamps: bool,
                  notes: list[str], **extra: Any) -> dict[str, Any]:
    """``RawData.source``: name, root, files (path relative to root -> sha256), notes."""
    rel = {}
    for f in files:
        try:
            key = str(f.relative_to(root))
        except ValueError:
            key = str(f)
        rel[key] = file_sha256(f)
    return {"name": name, "root": str(root), "files": rel, "has_timestamps": has_timestamps,
            "notes": list(notes), **extra}


def items_for(events: pl.DataFrame, text: pl.DataFrame | None) -> pl.DataFrame:
    """Every event item (first-appearance order) with its text, then text-only items."""
    seen = (events.filter(pl.col("item_id").is_not_null())
            .select(pl.col("item_id").unique(maintain_order=True)))
    if text is None:
        return conform(seen, ITEM_SCHEMA, "items")
    joined = seen.join(text, on="item_id", how="left", maintain_order="left")
    rest = text.join(seen, on="item_id", how="anti", maintain_order="left")
    return pl.concat([conform(joined, ITEM_SCHEMA, "items"), conform(rest, ITEM_SCHEMA, "items")])
