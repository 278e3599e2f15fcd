"""Amazon Reviews 2014 in the raw McAuley form (He & McAuley WWW'16; McAuley et al. SIGIR'15).

Files (any category; ``<root>/amazon2014-<Category>/``):

* ``reviews_<Category>_5.json.gz`` (required): JSON lines with ``reviewerID``, ``asin``,
  ``overall``, ``unixReviewTime``, ``summary``, ``reviewText``;
* ``meta_<Category>.json.gz`` (optional): one item per line, written as Python dict literals
  in the 2014 dump (parsed with ``ast.literal_eval`` when JSON fails): ``title``, ``brand``,
  ``categories`` (list of category paths), ``description``, ``price``.

Each review is a ``rec_click`` at ``unixReviewTime`` with ``strength`` = ``overall`` and
``review`` = summary + review text; ``order`` is the line index.
"""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any

import polars as pl

from onefeed.data.datasets.amazon import unescape
from onefeed.data.datasets.files import (decode, items_for, json_lines, read_bytes, require, show,
                                         source_record, text_id, unique_ids)
from onefeed.data.preprocess import MAX_STRENGTH, MAX_TIMESTAMP
from onefeed.data.schemas import ITEM_SCHEMA, RAW_EVENT_SCHEMA, DataError, RawData, conform
from onefeed.paths import raw_root


def _number(obj: dict, key: str, kind: type, path: Path, line: int, low: float,
            high: float) -> Any:
    """``obj[key]`` as a finite ``kind`` in [low, high]; else ``DataError`` naming the line."""
    value = obj.get(key)
    if value is None:
        raise DataError(f"{path}: line {line}, column '{key}' is missing")
    try:
        number = kind(value) if not isinstance(value, bool) else None
    except (TypeError, ValueError, OverflowError):
        number = None
    if number is None or not math.isfinite(number) or not low <= number <= high:
        raise DataError(f"{path}: line {line}, column '{key}': cannot read {show(value)} "
                        f"as {kind.__name__} in [{low:g}, {high:g}]")
    return number


REVIEW_FIELDS: dict[str, pl.DataType] = {"reviewerID": pl.Utf8, "asin": pl.Utf8,
                                         "unixReviewTime": pl.Int64, "overall": pl.Float64,
                                         "summary": pl.Utf8, "reviewText": pl.Utf8}


def read_reviews_reference(path: Path) -> pl.DataFrame:
    """Line-by-line reader: the obviously-correct version, and the one that names bad lines."""
    cols: dict[str, list] = {k: [] for k in ("user_id", "item_id", "timestamp", "strength",
                                             "review")}
    for line, obj in json_lines(path):
        cols["user_id"].append(text_id(obj, "reviewerID", path, line))
        cols["item_id"].append(text_id(obj, "asin", path, line))
        cols["timestamp"].append(_number(obj, "unixReviewTime", int, path, line, 0,
                                         MAX_TIMESTAMP))
        cols["strength"].append(_number(obj, "overall", float, path, line, -MAX_STRENGTH,
                                        MAX_STRENGTH))
        parts = [unescape(obj.get("summary")), unescape(obj.get("reviewText"))]
        cols["review"].append("\n".join(p for p in parts if p) or None)
    return _events(pl.DataFrame(cols, schema_overrides={"timestamp": pl.Int64,
                                                       "strength": pl.Float32}), path)


def _events(frame: pl.DataFrame, path: Path) -> pl.DataFrame:
    return conform(frame.with_columns(pl.int_range(frame.height, dtype=pl.Int64).alias("order"),
                                      pl.lit("rec_click").alias("behaviour")),
                   RAW_EVENT_SCHEMA, str(path))


def _unescape_text(col: pl.Series) -> pl.Series:
    """``unescape`` on the few values holding an entity or blank (Python only where needed)."""
    col = col.str.strip_chars()
    fix = (col.str.contains("&", literal=True) | (col == "")).fill_null(False)
    rows = fix.arg_true()
    return col.scatter(rows, pl.Series([unescape(v) for v in col.gather(rows)], dtype=pl.Utf8))


def read_reviews(path: Path) -> pl.DataFrame:
    """``reviews_<Category>_5.json.gz`` -> rec_click events with rating, time and review text.

    Fast path: polars' JSON reader; any problem falls back to ``read_reviews_reference``,
    which raises a ``DataError`` naming the line and column.
    """
    data = read_bytes(path)
    decode(path, data)  # bad bytes -> DataError with the line
    try:
        raw = pl.read_ndjson(io.BytesIO(data), schema=REVIEW_FIELDS)
    except Exception:  # polars raises several error types on malformed input
        return read_reviews_reference(path)
    required = raw.select("reviewerID", "asin", "unixReviewTime", "overall")
    # polars turns true / [..] / {..} into text: send such ids to the reference reader
    odd = pl.col("reviewerID", "asin").str.contains(r"^[\[{]|^(true|false)$|^$").any()
    out_of_range = (~pl.col("unixReviewTime").is_between(0, MAX_TIMESTAMP)
                    | ~pl.col("overall").is_between(-MAX_STRENGTH, MAX_STRENGTH)).any()
    if required.null_count().sum_horizontal().item() or raw.select(odd).row(0) != (False,
                                                                                  False) \
            or raw.select(out_of_range).item():
        return read_reviews_reference(path)  # names the line
    summary, text = _unescape_text(raw["summary"]), _unescape_text(raw["reviewText"])
    review = pl.select(pl.concat_str([summary, text], separator="\n", ignore_nulls=True))
    frame = pl.DataFrame({
        "user_id": raw["reviewerID"], "item_id": raw["asin"],
        "timestamp": raw["unixReviewTime"], "strength": raw["overall"].cast(pl.Float32),
        "review": review.to_series().replace("", None)})
    return _events(frame, path)


def _categories(value: Any, path: Path, line: int) -> list[str]:
    """List of category paths (coarse to fine) -> one de-duplicated flat list, order kept."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise DataError(f"{path}: line {line}, column 'categories': expected a list of lists")
    flat: list[str] = []
    for entry in value:
        for name in (entry if isinstance(entry, list) else [entry]):
            if not isinstance(name, str):
                raise DataError(f"{path}: line {line}, column 'categories': expected category "
                                f"names (strings), got {type(name).__name__}")
            name = unescape(name)
            if name and name not in flat:
                flat.append(name)
    return flat


def read_meta(path: Path) -> pl.DataFrame:
    """``meta_<Category>.json.gz`` -> ITEM_SCHEMA rows (price kept as a ``price:`` tag)."""
    rows = []
    for line, obj in json_lines(path, python_literals=True):
        item_id = text_id(obj, "asin", path, line)
        price = obj.get("price")
        rows.append({"item_id": item_id, "title": unescape(obj.get("title")),
                     "description": unescape(obj.get("description")),
                     "brand": unescape(obj.get("brand")),
                     "categories": _categories(obj.get("categories"), path, line),
                     "tags": [f"price:{price}"] if price is not None else []})
    frame = pl.DataFrame(rows, schema=ITEM_SCHEMA)
    unique_ids(frame["item_id"], path, "asin")
    return frame


def load_amazon_raw(path: str | Path | None = None, category: str = "Beauty") -> RawData:
    """Raw McAuley 2014 5-core reviews (+ metadata) for ``category`` -> RawData."""
    folder = Path(path) if path is not None else raw_root() / f"amazon2014-{category}"
    reviews_name = f"reviews_{category}_5.json.gz"
    (reviews,) = require(folder, [reviews_name],
                         f"{reviews_name} (and optionally meta_{category}.json.gz) from the "
                         "McAuley lab's Amazon 2014 product data "
                         "(https://jmcauley.ucsd.edu/data/amazon/)")
    events = read_reviews(reviews)
    files, notes = [reviews], ["Each 5-core review is a rec_click at unixReviewTime "
                               "(day resolution); strength = star rating."]
    meta_path = folder / f"meta_{category}.json.gz"
    meta = None
    if meta_path.is_file():
        meta = read_meta(meta_path)
        files.append(meta_path)
    else:
        notes.append(f"No meta_{category}.json.gz: items have ids only.")
    items = items_for(events, meta)
    source = source_record(f"amazon-raw-{category}", folder, files, True, notes)
    return RawData(events, items, source)
