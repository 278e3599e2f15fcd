"""The LC-Rec / LETTER JSON form used by many generative-recommendation repositories.

Files (``<folder>/<Name>.*``; option ``prefix`` = ``<Name>``, by default that of the one
``*.inter.json`` in the folder):

* ``<Name>.inter.json`` (required): one JSON object, user -> chronological list of items
  (``{"0": [0, 1, 2], ...}``; ids are strings or integers, written as strings here);
* ``<Name>.item.json`` (optional): item -> ``{"title", "description", "brand", "categories"}``
  (``categories`` a comma-joined string coarse to fine, or a list of strings); HTML entities
  (``&amp;``, ``&#39;``) are decoded.

Like the P5 files, the sequences carry ORDER BUT NO TIME: ``timestamp`` is null and ``order``
is the position in the list; use leave-one-out.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl

from onefeed.data.datasets.amazon import unescape
from onefeed.data.datasets.files import items_for, read_text, show, source_record
from onefeed.data.schemas import ITEM_SCHEMA, RAW_EVENT_SCHEMA, DataError, RawData, conform
from onefeed.paths import raw_root

TEXT_FIELDS = ("title", "description", "brand")
NO_TIME_NOTE = ("LC-Rec/LETTER sequences carry order but no timestamps: timestamp is null; "
                "use leave-one-out, not a temporal split.")


def json_document(path: Path) -> Any:
    """One JSON document; malformed text raises ``DataError`` with its line and column."""
    text = read_text(path)
    try:
        return json.loads(text)
    except RecursionError:
        raise DataError(f"{path}: JSON nested too deeply") from None
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: line {exc.lineno}, column {exc.colno}: malformed JSON "
                        f"({exc.msg})") from None


def _id(value: Any, path: Path, where: str) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int)) or value == "":
        raise DataError(f"{path}: {where}: expected a string or integer id, got "
                        f"{type(value).__name__} {show(value, 40)}")
    return str(value)


def read_inter(path: Path) -> pl.DataFrame:
    """``<Name>.inter.json`` -> rec_click events, ``order`` = position within the user."""
    doc = json_document(path)
    if not isinstance(doc, dict):
        raise DataError(f"{path}: expected a JSON object user -> list of items, got "
                        f"{type(doc).__name__}")
    users, items = [], []
    for user, seq in doc.items():
        if not isinstance(seq, list):
            raise DataError(f"{path}: user {show(user, 40)}: expected a list of item ids, got "
                            f"{type(seq).__name__}")
        for k, item in enumerate(seq):
            items.append(_id(item, path, f"user {show(user, 40)}, position {k}"))
        users += [user] * len(seq)
    if not users:
        raise DataError(f"{path}: no interactions (every user's list is empty)")
    events = pl.DataFrame({"user_id": users, "item_id": items}, schema={"user_id": pl.Utf8,
                                                                        "item_id": pl.Utf8})
    events = events.with_columns(pl.int_range(pl.len(), dtype=pl.Int64).over("user_id")
                                 .alias("order"), pl.lit("rec_click").alias("behaviour"))
    return conform(events, RAW_EVENT_SCHEMA, str(path))


def _categories(value: Any, path: Path, item: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        parts = value.split(",")
    elif isinstance(value, list) and all(isinstance(v, str) for v in value):
        parts = value
    else:
        raise DataError(f"{path}: item {show(item, 40)}, field 'categories': expected a "
                        f"comma-joined string or a list of strings, got {show(value, 40)}")
    return [c for c in map(unescape, parts) if c]


def read_item_json(path: Path) -> pl.DataFrame:
    """``<Name>.item.json`` -> ITEM_SCHEMA rows with HTML entities decoded."""
    doc = json_document(path)
    if not isinstance(doc, dict):
        raise DataError(f"{path}: expected a JSON object item -> fields, got "
                        f"{type(doc).__name__}")
    rows = []
    for item, fields in doc.items():
        if not isinstance(fields, dict):
            raise DataError(f"{path}: item {show(item, 40)}: expected an object with title / "
                            f"description / brand / categories, got {type(fields).__name__}")
        row: dict[str, Any] = {"item_id": item}
        for key in TEXT_FIELDS:
            value = fields.get(key)
            if value is not None and not isinstance(value, str):
                raise DataError(f"{path}: item {show(item, 40)}, field '{key}': expected a "
                                f"string, got {type(value).__name__} {show(value, 40)}")
            row[key] = unescape(value)
        row["categories"] = _categories(fields.get("categories"), path, item)
        rows.append(row)
    frame = pl.DataFrame(rows, schema={"item_id": pl.Utf8, **{k: pl.Utf8 for k in TEXT_FIELDS},
                                       "categories": pl.List(pl.Utf8)})
    return conform(frame, ITEM_SCHEMA, str(path))


def _prefix(folder: Path, prefix: str | None) -> str:
    if prefix is not None:
        return prefix
    found = sorted(p.name[: -len(".inter.json")] for p in folder.glob("*.inter.json"))
    if len(found) != 1:
        what = f"several: {found}" if found else "none"
        raise DataError(f"{folder}: expected one <Name>.inter.json (LC-Rec/LETTER form), found "
                        f"{what}; pass prefix=")
    return found[0]


def load_lcrec(path: str | Path | None = None, prefix: str | None = None) -> RawData:
    """``<Name>.inter.json`` (+ ``<Name>.item.json``) -> RawData (order, no timestamps)."""
    folder = Path(path) if path is not None else raw_root() / (prefix or "lcrec")
    if not folder.is_dir():
        raise DataError(f"{folder}: no such folder (put <Name>.inter.json and <Name>.item.json "
                        "from an LC-Rec/LETTER data folder there, or pass path=)")
    name = _prefix(folder, prefix)
    inter = folder / f"{name}.inter.json"
    if not inter.is_file():
        raise DataError(f"{folder}: missing {inter.name} (LC-Rec/LETTER form: <Name>.inter.json "
                        "+ optional <Name>.item.json)")
    events = read_inter(inter)
    files, notes, text = [inter], [NO_TIME_NOTE], None
    item_path = folder / f"{name}.item.json"
    if item_path.is_file():
        text = read_item_json(item_path)
        files.append(item_path)
    else:
        notes.append(f"No {item_path.name}: items have ids only (all text fields null).")
    source = source_record(f"lcrec-{name}", folder, files, False, notes)
    return RawData(events, items_for(events, text), source)
