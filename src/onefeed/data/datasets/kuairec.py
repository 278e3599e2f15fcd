"""KuaiRec 2.0 (Gao et al., CIKM 2022), the short-video benchmark of OneFeed §4.1.

Files (``<root>/kuairec/``, or its ``data/`` subfolder as unzipped from ``KuaiRec.zip``):

* ``big_matrix.csv`` (default) or ``small_matrix.csv`` (option ``matrix``): ``user_id,
  video_id, play_duration, video_duration, time, date, timestamp, watch_ratio``; ``timestamp``
  is unix seconds with milliseconds (``1593878903.438``), empty on some rows;
* ``item_categories.csv`` (optional): ``video_id, feat`` with ``feat`` a list string
  (``"[27, 9]"``) of category ids without names;
* ``kuairec_caption_category.csv`` (optional): ``video_id, manual_cover_text, caption,
  topic_tag, first/second/third_level_category_name`` (+ ids); ``UNKNOWN`` marks a blank.

A view is a positive ``rec_click`` when ``watch_ratio >= positive_threshold`` (default 2.0, the
KuaiRec paper's "liked" rule; 0 keeps every view); ``strength`` = watch ratio. Items get the
caption as ``title``, the cover text as ``description``, the three category levels as
``categories`` (else the ``feat`` ids as ``feat <id>``) and the topic tags as ``tags``.
Rows without a timestamp are dropped (counted in the notes): the global temporal split
(``protocol = "temporal"``) needs a time for every event.
"""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Literal

import polars as pl

from onefeed.data.datasets.files import (cast_strict, check_finite, decode, items_for, need_columns,
                                         no_nulls, read_text, source_record, unique_ids)
from onefeed.data.preprocess import MAX_STRENGTH, MAX_TIMESTAMP
from onefeed.data.schemas import ITEM_SCHEMA, RAW_EVENT_SCHEMA, DataError, RawData, conform
from onefeed.paths import raw_root

MATRIX_COLUMNS = ["user_id", "video_id", "timestamp", "watch_ratio"]
LEVELS = ["first_level_category_name", "second_level_category_name", "third_level_category_name"]
BLANKS = ("", "UNKNOWN", "[]", "nan")
HINT = ("big_matrix.csv or small_matrix.csv (+ item_categories.csv, kuairec_caption_category.csv) "
        "from KuaiRec.zip (https://kuairec.com/, data/ folder)")


def folder_of(path: str | Path | None) -> Path:
    """The folder holding the CSVs: ``path`` (default raw_root()/kuairec) or its ``data/``."""
    folder = Path(path) if path is not None else raw_root() / "kuairec"
    return folder / "data" if (folder / "data").is_dir() else folder


def _csv(path: Path, text: str) -> pl.DataFrame:
    """All-string frame of a comma-separated text with a header (quoted fields allowed)."""
    try:
        return pl.read_csv(io.StringIO(text), infer_schema=False)
    except pl.exceptions.PolarsError as exc:
        raise DataError(f"{path}: cannot parse as CSV ({type(exc).__name__}: "
                        f"{str(exc)[:200]})") from None


def read_matrix(path: Path, threshold: float) -> tuple[pl.DataFrame, dict[str, int]]:
    """A KuaiRec matrix -> rec_click events of views with ``watch_ratio >= threshold``.

    ``order`` ranks the events by their exact (millisecond) time, then file line, so sorting
    by (whole-second timestamp, order) keeps the source's order. Returns (events, counts)."""
    if path.stat().st_size == 0:
        raise DataError(f"{path}: file is empty")
    try:  # the four columns we need, as strings (checked and cast below)
        header = pl.read_csv(path, n_rows=0, infer_schema=False)  # polars checks UTF-8 itself
        need_columns(header, MATRIX_COLUMNS, path)
        raw = pl.read_csv(path, columns=MATRIX_COLUMNS, infer_schema=False)
    except pl.exceptions.PolarsError as exc:
        if "utf-8" in str(exc):
            decode(path, path.read_bytes())  # names the line and byte
        raise DataError(f"{path}: cannot parse as CSV ({type(exc).__name__}: "
                        f"{str(exc)[:200]})") from None
    for col in ("user_id", "video_id", "watch_ratio"):
        no_nulls(raw[col], path, col, first_line=2)
    users = cast_strict(raw["user_id"], pl.Int64, path, "user_id", first_line=2)
    videos = cast_strict(raw["video_id"], pl.Int64, path, "video_id", first_line=2)
    ratio = cast_strict(raw["watch_ratio"], pl.Float64, path, "watch_ratio", first_line=2)
    check_finite(ratio, path, "watch_ratio", 2, "line", 0, MAX_STRENGTH, "[0, 1e9]")
    seconds = cast_strict(raw["timestamp"].replace("", None), pl.Float64, path, "timestamp",
                          first_line=2)
    check_finite(seconds.fill_null(0.0), path, "timestamp", 2, "line", 0, MAX_TIMESTAMP,
                 "[0, 253402300799] unix seconds")
    frame = pl.DataFrame({"user_id": users.cast(pl.Utf8), "item_id": videos.cast(pl.Utf8),
                          "seconds": seconds, "strength": ratio.cast(pl.Float32)})
    counts = {"rows": frame.height, "rows_without_timestamp": frame["seconds"].null_count()}
    frame = frame.filter(pl.col("seconds").is_not_null())
    counts["rows_below_threshold"] = int((frame["strength"] < threshold).sum())
    frame = frame.filter(pl.col("strength") >= threshold)
    order = pl.col("seconds").rank("ordinal").cast(pl.Int64) - 1  # stable: ties keep file order
    events = frame.with_columns(order.alias("order"),
                                pl.col("seconds").floor().cast(pl.Int64).alias("timestamp"),
                                pl.lit("rec_click").alias("behaviour"))
    counts["positives"] = events.height
    return conform(events, RAW_EVENT_SCHEMA, str(path)), counts


def _id_column(frame: pl.DataFrame, path: Path) -> pl.Series:
    need_columns(frame, ["video_id"], path)
    ids = cast_strict(frame["video_id"].replace("", None), pl.Int64, path, "video_id",
                      first_line=2, unit="row")
    no_nulls(ids, path, "video_id", first_line=2, unit="row")
    ids = ids.cast(pl.Utf8)
    unique_ids(ids, path, "video_id", first_line=2, unit="row")
    return ids


def _list_string(col: pl.Series) -> pl.Series:
    """``"[27, 9]"`` / ``"['a', 'b']"`` / ``"[a]"`` -> ["27", "9"] / ["a", "b"] / ["a"]."""
    inner = col.str.strip_chars().str.strip_prefix("[").str.strip_suffix("]")
    return inner.str.split(",").list.eval(
        pl.element().str.strip_chars().str.strip_chars("'\"").str.strip_chars()
        .filter(~pl.element().is_in(BLANKS)))


def read_feat(path: Path) -> pl.DataFrame:
    """``item_categories.csv`` -> item_id, feat (list of category ids as strings)."""
    frame = _csv(path, read_text(path))
    need_columns(frame, ["video_id", "feat"], path)
    ids = _id_column(frame, path)
    feat = _list_string(frame["feat"])
    bad = feat.list.eval(pl.element().str.contains(r"^-?\d+$").not_()).list.any()
    if bad.any():
        row = int(bad.arg_max())
        raise DataError(f"{path}: row {row + 2}, column 'feat': expected a list of integer "
                        f"ids such as \"[27, 9]\", got {frame['feat'][row]!r}")
    return pl.DataFrame({"item_id": ids, "feat": feat})


def _text(name: str) -> pl.Expr:
    """A text column with blanks (``""``, ``UNKNOWN``) as null."""
    c = pl.col(name).str.strip_chars()
    return pl.when(c.is_in(BLANKS)).then(None).otherwise(c)


def read_captions(path: Path) -> pl.DataFrame:
    """``kuairec_caption_category.csv`` -> ITEM_SCHEMA rows (caption, cover text, levels, tags)."""
    frame = _csv(path, read_text(path))
    need_columns(frame, ["video_id", "caption"], path)
    ids = _id_column(frame, path)
    wanted = ["caption", "manual_cover_text", "topic_tag", *LEVELS]
    frame = frame.with_columns(pl.lit("", pl.Utf8).alias(c) for c in wanted
                               if c not in frame.columns)
    items = frame.select(
        ids.alias("item_id"), _text("caption").alias("title"),
        _text("manual_cover_text").alias("description"),
        pl.concat_list([_text(n) for n in LEVELS]).list.drop_nulls().alias("categories"))
    items = items.with_columns(_list_string(frame["topic_tag"]).alias("tags"))
    return conform(items, ITEM_SCHEMA, str(path))


def _threshold(value: object) -> float:
    """``positive_threshold`` as a finite number >= 0 (a numeric string is accepted)."""
    try:
        number = float(value) if not isinstance(value, bool) else math.nan  # type: ignore[arg-type]
    except (TypeError, ValueError):
        number = math.nan
    if not (math.isfinite(number) and 0 <= number <= MAX_STRENGTH):
        raise DataError(f"kuairec: positive_threshold = {value!r}; expected a number >= 0 "
                        "(watch_ratio of a positive view; 0 keeps every view)")
    return number


def load_kuairec(path: str | Path | None = None, matrix: Literal["big", "small"] = "big",
                 positive_threshold: float | str = 2.0) -> RawData:
    """KuaiRec 2.0 ``<matrix>_matrix.csv`` (+ item files) -> RawData with timestamps."""
    if matrix not in ("big", "small"):
        raise DataError(f"kuairec: matrix = {matrix!r}; expected 'big' or 'small'")
    threshold = _threshold(positive_threshold)
    folder = folder_of(path)
    name = f"{matrix}_matrix.csv"
    if not (folder / name).is_file():
        raise DataError(f"{folder}: missing {name}. Put {HINT} in {folder} (or pass path=/ set "
                        "ONEFEED_DATA_ROOT).")
    events, counts = read_matrix(folder / name, threshold)
    files = [folder / name]
    notes = [f"Views with watch_ratio >= {threshold:g} become rec_click events with "
             f"strength = watch_ratio: {counts['positives']:,} of {counts['rows']:,} rows "
             f"({counts['rows_below_threshold']:,} below the threshold)."]
    if counts["rows_without_timestamp"]:
        notes.append(f"Rows without a timestamp (dropped): {counts['rows_without_timestamp']:,}.")
    text = None
    captions = folder / "kuairec_caption_category.csv"
    if captions.is_file():
        text = read_captions(captions)
        files.append(captions)
    feat_path = folder / "item_categories.csv"
    if feat_path.is_file():
        feat = read_feat(feat_path).with_columns(
            pl.col("feat").list.eval(pl.lit("feat ") + pl.element()))
        files.append(feat_path)
        if text is None:
            text = conform(feat.rename({"feat": "categories"}), ITEM_SCHEMA, str(feat_path))
        else:  # category ids stand in where the caption file names no category
            text = (text.join(feat, on="item_id", how="full", coalesce=True, maintain_order="left")
                    .with_columns(pl.when(pl.col("categories").list.len().fill_null(0) > 0)
                                  .then(pl.col("categories")).otherwise(pl.col("feat"))
                                  .alias("categories")))
            text = conform(text, ITEM_SCHEMA, str(captions))
    if text is None:
        notes.append("No kuairec_caption_category.csv or item_categories.csv: items have ids "
                     "only (all text fields null).")
    items = items_for(events, text)
    source = source_record(f"kuairec-{matrix}", folder, files, True, notes,
                           positive_threshold=threshold, **counts)
    return RawData(events, items, source)
