"""Amazon Reviews 2014 in the P5/S3Rec preprocessed form used by TIGER.

Files (any category; ``<root>/amazon2014-<Category>/``):

* ``user_sequence.txt`` (required): ``USER ASIN ASIN ...`` per line, items in chronological
  order (the S3Rec/P5 pipeline sorted each user's 5-core reviews by ``unixReviewTime``);
* ``p5_datamaps.json.gz`` (optional): P5's id maps, used to cross-check users and items
  (``user2id`` / ``item2id``, or a file with only ``id2user`` / ``id2item``);
* ``items.jsonl.gz`` (optional): ``{"asin", "title", "brand", "categories"}`` per line.

The sequences carry ORDER BUT NO TIME: ``timestamp`` is null and ``order`` is the position
in the sequence. Items without text still appear, with null text fields.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

import polars as pl

from onefeed.data.datasets.files import (items_for, json_lines, read_bytes, read_text, require,
                                         show, source_record, text_id, unique_ids)
from onefeed.data.schemas import ITEM_SCHEMA, RAW_EVENT_SCHEMA, DataError, RawData, conform
from onefeed.paths import raw_root

NO_TIME_NOTE = ("Amazon P5 sequences carry order but no timestamps: timestamp is null; "
                "use leave-one-out, not a temporal split.")


def unescape(text: str | None) -> str | None:
    """HTML entities (``&amp;``, ``&#39;``) -> characters; blank -> None."""
    if text is None:
        return None
    text = html.unescape(str(text)).strip()
    return text or None


def read_sequences(path: Path) -> pl.DataFrame:
    """``user_sequence.txt`` -> rec_click events, ``order`` = position within the user."""
    lines = pl.Series("line", read_text(path).splitlines()).str.strip_chars()
    frame = (pl.DataFrame(lines).with_row_index("line_no", offset=1)
             .filter(pl.col("line") != "")
             .with_columns(pl.col("line").str.split(" ").list.eval(
                 pl.element().filter(pl.element() != "")).alias("tokens")))
    short = frame.filter(pl.col("tokens").list.len() < 2)
    if short.height:
        raise DataError(f"{path}: line {short['line_no'][0]}: expected 'USER ITEM [ITEM ...]', "
                        f"got {short['line'][0]!r}")
    frame = frame.with_columns(pl.col("tokens").list.first().alias("user_id"))
    dup = frame.filter(pl.col("user_id").is_duplicated())
    if dup.height:
        first = dup.filter(pl.col("user_id") == dup["user_id"][0])["line_no"]
        raise DataError(f"{path}: lines {first[0]} and {first[1]}: user {dup['user_id'][0]!r} "
                        "has two sequences (expected one line per user)")
    events = (frame.select(pl.col("tokens").list.first().alias("user_id"),
                           pl.col("tokens").list.slice(1).alias("item_id"))
              .explode("item_id")
              .with_columns(pl.int_range(pl.len(), dtype=pl.Int64).over("user_id").alias("order"),
                            pl.lit("rec_click").alias("behaviour")))
    return conform(events, RAW_EVENT_SCHEMA, str(path))


def datamap_ids(maps: dict, side: str, path: Path) -> set[str]:
    """The raw ids on one ``side`` ("user" / "item") of P5's datamaps: the keys of
    ``<side>2id`` or, when a file carries only the reverse map, the values of ``id2<side>``."""
    forward, reverse = f"{side}2id", f"id2{side}"
    if forward in maps:
        table, key, use = maps[forward], forward, "keys"
    elif reverse in maps:
        table, key, use = maps[reverse], reverse, "values"
    else:
        raise DataError(f"{path}: missing key '{forward}' (or its reverse '{reverse}')")
    if not isinstance(table, dict):
        raise DataError(f"{path}: '{key}' must be a JSON object, got {type(table).__name__}")
    ids = table.keys() if use == "keys" else table.values()
    bad = next((v for v in ids if not isinstance(v, (str, int)) or isinstance(v, bool)), None)
    if bad is not None:
        raise DataError(f"{path}: '{key}' holds {type(bad).__name__} {show(bad, 40)} where a "
                        f"{side} id belongs")
    return {str(v) for v in ids}


def check_datamaps(path: Path, events: pl.DataFrame) -> dict[str, int]:
    """Cross-check users and items against P5's ``datamaps`` (``user2id`` / ``item2id``, or
    only ``id2user`` / ``id2item``); mismatches raise."""
    try:
        maps = json.loads(read_bytes(path))
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise DataError(f"{path}: not valid JSON ({type(exc).__name__}: "
                        f"{str(exc)[:200]})") from None
    if not isinstance(maps, dict):
        raise DataError(f"{path}: expected a JSON object with user2id and item2id "
                        "(or id2user and id2item)")
    counts = {}
    for side, col in (("user", "user_id"), ("item", "item_id")):
        theirs = datamap_ids(maps, side, path)
        ours = set(events[col].unique().to_list())
        if ours != theirs:
            key = f"{side}2id" if f"{side}2id" in maps else f"id2{side}"
            extra = sorted(ours - theirs)[:3]
            lacking = sorted(theirs - ours)[:3]
            raise DataError(f"{path}: '{key}' disagrees with user_sequence.txt "
                            f"(in sequences only: {extra}; in datamaps only: {lacking})")
        counts[f"datamaps_{side}s"] = len(theirs)
    return counts


def read_item_text(path: Path) -> pl.DataFrame:
    """``items.jsonl.gz`` -> ITEM_SCHEMA rows with HTML entities unescaped."""
    rows = []
    for number, obj in json_lines(path):
        item_id = text_id(obj, "asin", path, number)
        cats = obj.get("categories") or []
        if not isinstance(cats, list) or not all(isinstance(c, str) for c in cats):
            raise DataError(f"{path}: line {number}, column 'categories': expected a list of "
                            "strings")
        rows.append({"item_id": item_id, "title": unescape(obj.get("title")),
                     "brand": unescape(obj.get("brand")),
                     "categories": [c for c in map(unescape, cats) if c]})
    frame = pl.DataFrame(rows, schema={"item_id": pl.Utf8, "title": pl.Utf8, "brand": pl.Utf8,
                                       "categories": pl.List(pl.Utf8)})
    unique_ids(frame["item_id"], path, "asin")
    return conform(frame, ITEM_SCHEMA, str(path))


def load_amazon(path: str | Path | None = None, category: str = "Beauty") -> RawData:
    """P5/S3Rec Amazon 2014 ``<category>`` -> RawData (order, no timestamps)."""
    folder = Path(path) if path is not None else raw_root() / f"amazon2014-{category}"
    (seq_path,) = require(folder, ["user_sequence.txt"],
                          f"user_sequence.txt (P5/S3Rec preprocessed Amazon 2014 {category}; "
                          "optionally also p5_datamaps.json.gz and items.jsonl.gz)")
    events = read_sequences(seq_path)
    files, notes, extra = [seq_path], [NO_TIME_NOTE], {}
    maps = folder / "p5_datamaps.json.gz"
    if maps.is_file():
        extra.update(check_datamaps(maps, events))
        files.append(maps)
    text_path = folder / "items.jsonl.gz"
    text = None
    if text_path.is_file():
        text = read_item_text(text_path)
        files.append(text_path)
    else:
        notes.append("No items.jsonl.gz: items have ids only (all text fields null).")
    items = items_for(events, text)
    source = source_record(f"amazon-{category}", folder, files, False, notes, **extra)
    return RawData(events, items, source)
