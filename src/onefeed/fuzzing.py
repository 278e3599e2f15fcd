"""Seeded fuzzing: malformed inputs for every loader and CLI command must end in a clean error.

A case is made by ``loader_case(name, seed, index)`` / ``command_case(name, seed, index)``
from its own ``random.Random`` (so any single case re-runs alone), written into a fresh
folder and run. Each outcome is one of:

- ``clean``: a library error (``cli.user_errors()``) with a short non-empty message, or, for a
  loader, a success whose output passes ``preprocess.validate``; for a command, a non-zero exit
  whose last stderr line is ``error: ...`` and no traceback;
- ``traceback``: any other exception (or an unreadably long message);
- ``accepted_invalid``: success although the generator planted a value it knows is invalid.

    onefeed bench fuzz --cases 5000 --seed 0   ->  bench/results/fuzz.{json,md}
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import io
import json
import math
import random
import tempfile
import time
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import polars as pl

Outcome = Literal["clean", "traceback", "accepted_invalid"]
MAX_MESSAGE = 2000  # a clean error message is at most this long (long inputs are shortened)
DEEP = 100_000  # nesting depth of the "deep JSON" mutation


@dataclass(frozen=True)
class Case:
    target: str  # loader or command name
    mutation: str  # what was planted
    invalid: bool  # the input holds something that must be rejected
    files: dict[str, bytes] = field(default_factory=dict)  # relative name -> bytes
    args: tuple[str, ...] = ()  # loaders: (dataset, option=value ...); commands: argv


@dataclass(frozen=True)
class Result:
    case: Case
    outcome: Outcome
    detail: str  # the error message, or the traceback's last line


def write_files(case: Case, folder: Path) -> None:
    for name, data in case.files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def _message_ok(message: str) -> bool:
    return bool(message.strip()) and len(message) <= MAX_MESSAGE


# ------------------------------------------------------------------------------ loaders: values

NONFINITE = (math.nan, math.inf, -math.inf)
HUGE = (1e30, 1e50, 1e300)
WORDS = ("abc", "yesterday", "12:00", "1,5", "--", "\u00e9t\u00e9", "0x1F")


def _bad_number(rng: random.Random) -> Any:
    return rng.choice([rng.choice(NONFINITE), rng.choice(HUGE), rng.choice(WORDS)])


def _base_events(rng: random.Random) -> list[dict[str, Any]]:
    """3-5 users x 3-6 events: view / query + result click, unix seconds, 1-5 stars."""
    rows, t = [], 1_700_000_000
    for u in range(rng.randint(3, 5)):
        for _ in range(rng.randint(3, 6)):
            t += rng.randint(1, 5000)
            item = f"p{rng.randint(1, 6)}"
            if rng.random() < 0.2:
                rows.append({"uid": f"u{u}", "product": None, "when": t, "action": "query",
                             "search_text": "red shoe", "stars": None})
                t += 1
                action = "result_click"
            else:
                action = "view"
            rows.append({"uid": f"u{u}", "product": item, "when": t, "action": action,
                         "search_text": None, "stars": rng.randint(1, 5)})
    return rows


def _base_items() -> list[dict[str, Any]]:
    return [{"product": f"p{i}", "name": f"shoe {i}", "path": ["Shoes", f"Kind {i % 3}"]}
            for i in range(1, 7)]


MAPPING = {"name": "fuzz",
           "events": {"file": "events.{ext}", "format": "{fmt}", "user": "uid",
                      "item": "product", "timestamp": "when", "behaviour": "action",
                      "query": "search_text", "strength": "stars",
                      "behaviour_values": {"view": "rec_click", "query": "search_query",
                                           "result_click": "search_click"}},
           "items": {"file": "items.{ext}", "format": "{fmt}", "id": "product", "title": "name",
                     "categories": "path"}}


def _toml(data: dict[str, Any], prefix: str = "") -> str:
    """Tiny TOML writer for the mapping (strings, numbers, flat sub-tables)."""
    lines, tables = [], []
    for key, value in data.items():
        if isinstance(value, dict):
            tables.append((f"{prefix}{key}", value))
        else:
            lines.append(f"{key} = {json.dumps(value)}")
    out = "\n".join(lines) + "\n"
    for name, table in tables:
        out += f"\n[{name}]\n" + _toml(table, f"{name}.")
    return out


@dataclass
class GenericInput:
    """A generic-loader input being mutated: rows, items, mapping; serialised by ``fmt``."""

    fmt: str
    events: list[dict[str, Any]]
    items: list[dict[str, Any]]
    mapping: dict[str, Any]
    raw_events: bytes | None = None  # set by byte-level mutations (replaces serialisation)
    extra_lines: list[str] = field(default_factory=list)  # jsonl: lines appended verbatim
    encoding: str = "utf-8"


def _cell(rng: random.Random, inp: GenericInput, column: str, value: Any) -> None:
    rng.choice(inp.events)[column] = value


def _all_cells(inp: GenericInput, column: str, fn: Callable[[Any], Any]) -> None:
    for row in inp.events:
        row[column] = fn(row[column])


def _iso(t: Any) -> Any:
    import datetime as dt

    return dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")


# (name, formats it applies to, invalid?, mutate(rng, input))
GenericMutation = tuple[str, tuple[str, ...], bool, Callable[[random.Random, GenericInput], None]]
ALL = ("csv", "jsonl", "parquet")
TEXT = ("csv", "jsonl")

GENERIC_MUTATIONS: list[GenericMutation] = [
    ("valid", ALL, False, lambda r, i: None),
    ("ts_nonfinite", ALL, True, lambda r, i: _cell(r, i, "when", r.choice(NONFINITE))),
    ("ts_huge", ALL, True, lambda r, i: _cell(r, i, "when", r.choice(HUGE))),
    ("ts_negative", ALL, True, lambda r, i: _cell(r, i, "when", -r.randint(1, 10 ** 9))),
    ("ts_text", ALL, True, lambda r, i: _cell(r, i, "when", r.choice(WORDS))),
    ("ts_iso", ALL, False, lambda r, i: _all_cells(i, "when", _iso)),
    ("strength_bad", ALL, True, lambda r, i: _cell(r, i, "stars", _bad_number(r))),
    ("id_missing_text", ALL, True,
     lambda r, i: _cell(r, i, "uid", r.choice(["NaN", "nan", "null", "None", "N/A"]))),
    ("id_null", ALL, True, lambda r, i: _cell(r, i, "uid", None)),
    ("id_bool", ("jsonl", "parquet"), True, lambda r, i: _all_cells(i, "uid", lambda v: True)),
    ("id_nan_float", ("jsonl",), True, lambda r, i: _cell(r, i, "uid", math.nan)),
    ("id_long", ALL, False,
     lambda r, i: _cell(r, i, "uid", "x" * r.choice([1000, 100_000]))),
    ("id_mixed_types", ("jsonl",), False, lambda r, i: _cell(r, i, "uid", r.randint(0, 9))),
    ("item_missing_on_click", ALL, True, lambda r, i: _item_missing(r, i)),
    ("behaviour_unknown", ALL, True, lambda r, i: _cell(r, i, "action", r.choice(WORDS))),
    ("behaviour_null", ALL, True, lambda r, i: _cell(r, i, "action", None)),
    ("object_cell", ("jsonl", "parquet"), True,
     lambda r, i: _all_cells(i, r.choice(["uid", "when", "stars"]), lambda v: {"v": v})),
    ("list_cell", ("jsonl", "parquet"), True,
     lambda r, i: _all_cells(i, r.choice(["uid", "product", "when"]), lambda v: [v, v])),
    ("list_cell_one_row", ("jsonl",), True, lambda r, i: _cell(r, i, "uid", ["a", "b"])),
    ("nested_unused", ("jsonl",), False, lambda r, i: _nested_unused(i)),
    ("deep_json", ("jsonl",), True, lambda r, i: i.extra_lines.append(
        '{"uid": ' + "[" * DEEP + "]" * DEEP + "}")),
    ("json_not_object", ("jsonl",), True,
     lambda r, i: i.extra_lines.append(r.choice(["[1, 2]", '"text"', "3", "null"]))),
    ("json_malformed", ("jsonl",), True,
     lambda r, i: i.extra_lines.append(r.choice(['{"uid": "u1",', "{'uid': 1}", "{uid}"]))),
    ("short_row", ("csv",), True, lambda r, i: i.extra_lines.append("u9,p1")),
    ("long_row", ("csv",), True, lambda r, i: i.extra_lines.append("u9,p1,1700000000,view,,3,x")),
    ("bad_separator", ("csv",), True, lambda r, i: i.mapping["events"].update(
        separator=r.choice(["", "||", "\u00a7", "\n", '"', ", "]))),
    ("bad_encoding", TEXT, True, lambda r, i: i.mapping["events"].update(
        encoding=r.choice(["utf-9", "klingon", "", "latin-99"]))),
    ("latin1_declared", ("csv",), False, lambda r, i: _latin1(r, i)),
    ("invalid_utf8", TEXT, True, lambda r, i: _invalid_bytes(r, i)),
    ("binary_invalid_utf8", ("parquet",), True, lambda r, i: _all_cells(
        i, "uid", lambda v: b"\xff\xfe" + str(v).encode())),
    ("empty_file", ALL, True, lambda r, i: setattr(i, "raw_events", r.choice([b"", b"\n\n"]))),
    ("header_only", ("csv",), True,
     lambda r, i: setattr(i, "raw_events", b"uid,product,when,action,search_text,stars\n")),
    ("truncated", ("parquet",), True, lambda r, i: setattr(i, "raw_events", b"PAR1\x00\x01")),
    ("missing_column", ALL, True, lambda r, i: i.mapping["events"].update(
        user=r.choice(["user", "UID", "uid "]))),
    ("missing_file", ALL, True, lambda r, i: i.mapping["events"].update(file="nope.csv")),
    ("mapping_unknown_key", ALL, True, lambda r, i: i.mapping["events"].update(colour="red")),
    ("mapping_bad_value", ALL, True, lambda r, i: i.mapping["events"].update(
        format=r.choice(["xls", "CSV", 3]))),
    ("items_duplicate_id", ALL, True, lambda r, i: i.items.append(dict(i.items[0]))),
    ("items_null_id", ALL, True, lambda r, i: i.items.append({"product": None, "name": "x",
                                                              "path": ["a"]})),
]


def _nested_unused(inp: GenericInput) -> None:
    for row in inp.events:
        row["extra"] = {"a": [1, {"b": 2}]}  # a column no mapping names: ignored


def _item_missing(rng: random.Random, inp: GenericInput) -> None:
    clicks = [row for row in inp.events if row["action"] != "query"]
    rng.choice(clicks)["product"] = None


def _latin1(rng: random.Random, inp: GenericInput) -> None:
    inp.encoding = "latin-1"
    inp.mapping["events"]["encoding"] = "latin-1"
    rng.choice(inp.events)["search_text"] = "caf\u00e9 cr\u00e8me"


def _invalid_bytes(rng: random.Random, inp: GenericInput) -> None:
    inp.extra_lines.append("__INVALID_BYTES__")


def _serialise(inp: GenericInput, rows: list[dict[str, Any]], extra: list[str]) -> bytes:
    if inp.fmt == "parquet":
        return _parquet(rows)
    if inp.fmt == "jsonl":
        text = "\n".join([json.dumps({k: v for k, v in r.items() if v is not None}) for r in rows]
                         + extra) + "\n"
    else:
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(list(rows[0]))
        for r in rows:
            writer.writerow(["" if v is None else (json.dumps(v) if isinstance(v, list) else v)
                             for v in r.values()])
        text = buf.getvalue() + "".join(line + "\n" for line in extra)
    data = text.encode(inp.encoding)
    return data.replace(b"__INVALID_BYTES__", b"u1,\xff\xfe\xc3(,1,view,,1")


def _parquet(rows: list[dict[str, Any]]) -> bytes:
    columns: dict[str, list[Any]] = {k: [r.get(k) for r in rows] for k in rows[0]}
    frame = pl.DataFrame([_parquet_series(k, v) for k, v in columns.items()])
    buf = io.BytesIO()
    frame.write_parquet(buf)
    return buf.getvalue()


def _parquet_series(name: str, values: list[Any]) -> pl.Series:
    """One typed column; a planted value of another type turns the column into text (a mixed
    column cannot exist in parquet) so that the planted value survives."""
    kinds = {type(v) for v in values if v is not None}
    if kinds <= {bytes}:
        return pl.Series(name, values, dtype=pl.Binary)
    if kinds <= {int, float}:
        dtype = pl.Float64 if float in kinds else pl.Int64
        return pl.Series(name, values, dtype=dtype)
    if len(kinds) == 1:
        return pl.Series(name, values)
    return pl.Series(name, [None if v is None else str(v) for v in values], dtype=pl.Utf8)


def _fill(template: Any, fmt: str) -> Any:
    if isinstance(template, dict):
        return {k: _fill(v, fmt) for k, v in template.items()}
    if isinstance(template, str):
        return template.replace("{ext}", fmt).replace("{fmt}", fmt)
    return template


def generic_case(fmt: str, seed: int, index: int) -> Case:
    rng = random.Random(f"generic_{fmt}/{seed}/{index}")
    inp = GenericInput(fmt, _base_events(rng), _base_items(), _fill(MAPPING, fmt))
    name, _, invalid, mutate = rng.choice([m for m in GENERIC_MUTATIONS if fmt in m[1]])
    mutate(rng, inp)
    if fmt == "csv":
        for it in inp.items:
            it["path"] = " > ".join(it["path"]) if isinstance(it.get("path"), list) else None
    events = inp.raw_events if inp.raw_events is not None else _serialise(
        inp, inp.events, inp.extra_lines)
    items = _serialise(GenericInput(fmt, [], [], {}), inp.items, [])
    files = {f"events.{fmt}": events, f"items.{fmt}": items,
             "mapping.toml": _toml(inp.mapping).encode()}
    return Case(f"generic_{fmt}", name, invalid, files, ("generic", "config=mapping.toml"))


# ------------------------------------------------------------------------- Amazon 2014 raw dump

def _review(rng: random.Random, u: int, t: int) -> dict[str, Any]:
    return {"reviewerID": f"A{u}", "asin": f"B{rng.randint(1, 6)}", "unixReviewTime": t,
            "overall": float(rng.randint(1, 5)), "summary": "good", "reviewText": "nice toy"}


AMAZON_MUTATIONS: list[tuple[str, bool, Callable[[random.Random, dict], None]]] = [
    ("valid", False, lambda r, row: None),
    ("overall_bad", True, lambda r, row: row.update(overall=_bad_number(r))),
    ("overall_missing", True, lambda r, row: row.pop("overall")),
    ("overall_list", True, lambda r, row: row.update(overall=[1, 2])),
    ("time_bad", True, lambda r, row: row.update(unixReviewTime=r.choice(
        [-5, -10 ** 9, 10 ** 30, 1e30, math.nan, math.inf, "x", None, [1]]))),
    ("reviewer_bad", True, lambda r, row: row.update(reviewerID=r.choice(
        [True, False, None, "", [1], {"a": 1}, "NaN", math.nan]))),
    ("asin_bad", True, lambda r, row: row.update(asin=r.choice(
        [None, "", [1], {"a": 1}, True, "null"]))),
    ("reviewer_long", False, lambda r, row: row.update(reviewerID="A" * 100_000)),
    ("unused_nested", False, lambda r, row: row.update(helpful={"a": [1, {"b": 2}]})),
]


def amazon_case(seed: int, index: int) -> Case:
    rng = random.Random(f"amazon_raw/{seed}/{index}")
    rows, t = [], 1_300_000_000
    for u in range(rng.randint(3, 5)):
        for _ in range(rng.randint(2, 5)):
            t += rng.randint(1, 86_400)
            rows.append(_review(rng, u, t))
    name, invalid, mutate = rng.choice(AMAZON_MUTATIONS + [(m, True, None) for m in (
        "deep_json", "malformed_line", "invalid_utf8", "not_gzip", "empty", "meta_bad")])
    lines = [json.dumps(r) for r in rows]
    meta = [repr({"asin": f"B{i}", "title": f"toy {i}", "categories": [["Toys", f"k{i % 2}"]]})
            for i in range(1, 7)]
    if mutate is not None:
        row = rng.choice(rows)
        mutate(rng, row)
        lines = [json.dumps(r) for r in rows]
    elif name == "deep_json":
        lines.insert(rng.randrange(len(lines) + 1), '{"a": ' + "[" * DEEP + "]" * DEEP + "}")
    elif name == "malformed_line":
        lines.insert(rng.randrange(len(lines) + 1), rng.choice(['{"reviewerID": ', "[1]", "x"]))
    elif name == "meta_bad":
        meta.insert(rng.randrange(len(meta) + 1), rng.choice([
            repr({"title": "no asin"}), repr({"asin": {"x": 1}}), repr({"asin": "B1"}),
            repr({"asin": "B9", "categories": "Toys"}), repr({"asin": "B8", "categories": [
                [{"a": 1}]]}), "{" * DEEP, "[1, 2]"]))  # B1 repeats an existing id
    data = ("\n".join(lines) + "\n").encode()
    if name == "invalid_utf8":
        cut = rng.randrange(len(data))
        data = data[:cut] + b"\xff\xfe" + data[cut:]
    reviews = {"not_gzip": data, "empty": b""}.get(name, gzip.compress(data, mtime=0))
    files = {"reviews_Toys_5.json.gz": reviews,
             "meta_Toys.json.gz": gzip.compress(("\n".join(meta) + "\n").encode(), mtime=0)}
    return Case("amazon_raw", name, invalid, files, ("amazon-raw", "category=Toys", "path=."))


# ------------------------------------------------------------------------------- MovieLens 100K

GENRES = ["unknown", "Action", "Comedy"]


def movielens_case(seed: int, index: int) -> Case:
    rng = random.Random(f"movielens/{seed}/{index}")
    ratings = [[str(u), str(rng.randint(1, 6)), str(rng.randint(1, 5)),
                str(880_000_000 + rng.randint(0, 10 ** 6))]
               for u in range(1, rng.randint(4, 6)) for _ in range(rng.randint(3, 6))]
    items = [[str(i), f"Movie {i} (1995)", "01-Jan-1995", "", "http://x", *
              [str(int(g == i % 3)) for g in range(len(GENRES))]] for i in range(1, 7)]
    column = {"user": 0, "item": 1, "rating": 2, "timestamp": 3}
    choices: list[tuple[str, bool]] = [
        ("valid", False), ("rating_bad", True), ("timestamp_bad", True), ("user_bad", True),
        ("short_row", True), ("long_row", True), ("invalid_bytes", True), ("empty", True),
        ("item_fields", True), ("item_flag", True), ("item_duplicate", True),
        ("missing_file", True), ("latin1_title", False)]
    name, invalid = rng.choice(choices)
    row = rng.choice(ratings)
    if name == "rating_bad":
        row[column["rating"]] = str(_bad_number(rng))
    elif name == "timestamp_bad":
        row[column["timestamp"]] = rng.choice(["-5", "1e30", "nan", "x", "9" * 30, "1.5"])
    elif name == "user_bad":
        row[column["user"]] = rng.choice(["", "abc", "1.5", "nan", "u" * 100_000])
    elif name == "short_row":
        row.pop()
    elif name == "long_row":
        row.append("7")
    elif name == "item_fields":
        rng.choice(items).pop()
    elif name == "item_flag":
        rng.choice(items)[-1] = "2"
    elif name == "item_duplicate":
        items.append(list(items[0]))
    elif name == "latin1_title":
        items[0][1] = "Caf\u00e9 (1995)"
    u_data = "".join("\t".join(r) + "\n" for r in ratings).encode("ascii", "replace")
    if name == "invalid_bytes":
        u_data += b"1\t2\t\xff\t88\n"
    files = {"u.data": b"" if name == "empty" else u_data,
             "u.item": "".join("|".join(r) + "\n" for r in items).encode("latin-1"),
             "u.genre": "".join(f"{g}|{k}\n" for k, g in enumerate(GENRES)).encode()}
    if name == "missing_file":
        files.pop(rng.choice(["u.data", "u.item", "u.genre"]))
    return Case("movielens", name, invalid, files, ("ml-100k", "path=."))


# ------------------------------------------------------------------------------------ KuaiRec 2.0

KUAIREC_HEADER = "user_id,video_id,play_duration,video_duration,time,date,timestamp,watch_ratio"
KUAIREC_COLUMN = {"user_id": 0, "video_id": 1, "timestamp": 6, "watch_ratio": 7}


def kuairec_case(seed: int, index: int) -> Case:
    """``big_matrix.csv`` + ``item_categories.csv`` + ``kuairec_caption_category.csv``."""
    rng = random.Random(f"kuairec/{seed}/{index}")
    rows, t = [], 1_593_878_903.438
    for u in range(rng.randint(3, 5)):
        for _ in range(rng.randint(3, 6)):
            t += rng.randint(1, 5000) + rng.random()
            rows.append([str(u), str(rng.randint(1, 6)), "5000", "7000", "2020-07-05", "20200705",
                         f"{t:.3f}", f"{rng.uniform(0.1, 4):.4f}"])
    feat = [[str(v), f'"[{v}, {v + 10}]"'] for v in range(1, 7)]
    caps = [[str(v), "UNKNOWN", f'"video {v}, nice"', f"[tag{v}]", "8", "Food", "-124", "UNKNOWN",
             "-124", "UNKNOWN"] for v in range(1, 7)]
    choices: list[tuple[str, bool]] = [
        ("valid", False), ("no_timestamp", False), ("ratio_bad", True), ("timestamp_bad", True),
        ("user_bad", True), ("video_missing", True), ("invalid_bytes", True), ("empty", True),
        ("missing_column", True), ("feat_bad", True), ("feat_duplicate", True),
        ("caption_duplicate", True), ("caption_bad_bytes", True), ("threshold_bad", True)]
    name, invalid = rng.choice(choices)
    row = rng.choice(rows)
    if name == "no_timestamp":
        row[KUAIREC_COLUMN["timestamp"]] = ""
    elif name == "ratio_bad":
        row[KUAIREC_COLUMN["watch_ratio"]] = rng.choice(["nan", "inf", "-1", "x", "1e30", ""])
    elif name == "timestamp_bad":
        row[KUAIREC_COLUMN["timestamp"]] = rng.choice(["-5", "1e30", "nan", "x", "9" * 30])
    elif name == "user_bad":
        row[KUAIREC_COLUMN["user_id"]] = rng.choice(["", "abc", "1.5", "nan", "u" * 100_000])
    elif name == "video_missing":
        row[KUAIREC_COLUMN["video_id"]] = ""
    elif name == "feat_bad":
        rng.choice(feat)[1] = rng.choice(['"[a, 1]"', "[x]", '"[1.5]"'])
    elif name == "feat_duplicate":
        feat.append(list(feat[0]))
    elif name == "caption_duplicate":
        caps.append(list(caps[0]))
    header = KUAIREC_HEADER
    if name == "missing_column":
        header = header.replace(rng.choice(["user_id", "video_id", "timestamp", "watch_ratio"]),
                                "other")
    matrix = (header + "\n" + "".join(",".join(r) + "\n" for r in rows)).encode()
    if name == "invalid_bytes":
        matrix += b"1,2,3,4,t,d,1593878903.5,\xff\n"
    captions = ("video_id,manual_cover_text,caption,topic_tag,first_level_category_id,"
                "first_level_category_name,second_level_category_id,second_level_category_name,"
                "third_level_category_id,third_level_category_name\n"
                + "".join(",".join(c) + "\n" for c in caps)).encode()
    if name == "caption_bad_bytes":
        captions += b"99,x,caf\xe9,[],1,a,1,b,1,c\n"
    files = {"big_matrix.csv": b"" if name == "empty" else matrix,
             "item_categories.csv": ("video_id,feat\n" + "".join(",".join(f) + "\n"
                                                            for f in feat)).encode(),
             "kuairec_caption_category.csv": captions}
    threshold = rng.choice(["-1", "x", "nan"]) if name == "threshold_bad" else "1.0"
    return Case("kuairec", name, invalid, files, ("kuairec", "path=.",
                                                  f"positive_threshold={threshold}"))


# ------------------------------------------------------------------------ LC-Rec / LETTER JSON

def lcrec_case(seed: int, index: int) -> Case:
    """``Toys.inter.json`` (user -> items) + ``Toys.item.json`` (item -> text fields)."""
    rng = random.Random(f"lcrec/{seed}/{index}")
    inter: dict[str, Any] = {str(u): [rng.randint(0, 5) for _ in range(rng.randint(2, 6))]
                             for u in range(rng.randint(3, 5))}
    items: dict[str, Any] = {str(i): {"title": f"toy &amp; {i}", "description": "fun",
                                      "brand": "Acme", "categories": "Toys,Kind " + str(i % 2)}
                             for i in range(6)}
    choices: list[tuple[str, bool]] = [
        ("valid", False), ("string_ids", False), ("item_bad", True), ("seq_not_list", True),
        ("field_bad", True), ("categories_bad", True), ("item_not_object", True),
        ("malformed", True), ("not_object", True), ("deep_json", True), ("invalid_utf8", True),
        ("empty", True), ("all_empty", True)]
    name, invalid = rng.choice(choices)
    user = rng.choice(list(inter))
    if name == "string_ids":
        inter = {u: [str(i) for i in seq] for u, seq in inter.items()}
    elif name == "item_bad":
        inter[user].append(rng.choice([True, None, "", 1.5, [1], {"a": 1}]))
    elif name == "seq_not_list":
        inter[user] = rng.choice(["1 2 3", 3, None, {"a": 1}])
    elif name == "field_bad":
        items["1"][rng.choice(["title", "description", "brand"])] = rng.choice([5, [1], {"a": 1},
                                                                                True])
    elif name == "categories_bad":
        items["2"]["categories"] = rng.choice([[["a"]], 5, [1, 2], {"a": 1}])
    elif name == "item_not_object":
        items["3"] = rng.choice(["toy", 3, None, ["a"]])
    elif name == "all_empty":
        inter = {u: [] for u in inter}
    text = json.dumps(inter)
    if name == "malformed":
        cut = rng.randrange(1, len(text))  # a proper prefix of an object is never JSON
        text = rng.choice([text[:cut], text + rng.choice(["}", ",", "x", "[]"])])
    elif name == "not_object":
        text = rng.choice(["[1, 2]", '"x"', "3", "null"])
    elif name == "deep_json":
        text = "[" * DEEP + "]" * DEEP
    data = text.encode()
    if name == "invalid_utf8":
        data = data[:2] + b"\xff\xfe" + data[2:]
    files = {"Toys.inter.json": b"" if name == "empty" else data,
             "Toys.item.json": json.dumps(items).encode()}
    return Case("lcrec", name, invalid, files, ("lcrec", "path=."))


# ------------------------------------------------------------------ prepare (generic csv -> Dataset)

def _ties(rng: random.Random, inp: GenericInput) -> None:
    """Same-second events: all of a user's, or a view and a search click of one item."""
    if rng.random() < 0.5:
        _all_cells(inp, "when", lambda t: 1_700_000_000)
        return
    for row in rng.sample(inp.events, k=min(3, len(inp.events))):
        if row["product"] is not None:
            twin = dict(row, action="result_click" if row["action"] == "view" else "view")
            inp.events.insert(inp.events.index(row) + 1, twin)


PREPARE_MUTATIONS: list[GenericMutation] = [
    ("ties", ("csv",), False, _ties),
    ("duplicate_rows", ("csv",), False,
     lambda r, i: i.events.extend(dict(row) for row in r.sample(i.events, k=2))),
    ("one_user", ("csv",), False, lambda r, i: _all_cells(i, "uid", lambda v: "solo")),
]


def prepare_case(seed: int, index: int) -> Case:
    """A generic CSV case (any loader mutation, or a prepare-level one: ties, duplicates, one
    user) and a random valid prepare config; the whole of ``prepare`` runs."""
    rng = random.Random(f"prepare/{seed}/{index}")
    if rng.random() < 0.5:
        name, _, invalid, mutate = rng.choice(PREPARE_MUTATIONS)
    else:
        name, _, invalid, mutate = rng.choice([m for m in GENERIC_MUTATIONS if "csv" in m[1]])
    inp = GenericInput("csv", _base_events(rng), _base_items(), _fill(MAPPING, "csv"))
    mutate(rng, inp)
    for it in inp.items:
        it["path"] = " > ".join(it["path"]) if isinstance(it.get("path"), list) else None
    events = inp.raw_events if inp.raw_events is not None else _serialise(
        inp, inp.events, inp.extra_lines)
    overrides = [f"k_core={rng.randint(0, 3)}",
                 f"protocol={json.dumps(rng.choice(['leave_one_out', 'temporal']))}",
                 f"dedup={json.dumps(rng.choice(['exact', 'first_per_user_item']))}",
                 f"search_share={rng.random():.3f}", f"drop_short_users={rng.random() < 0.5}"
                 .lower(), f"seed={rng.randint(0, 9)}"]
    files = {"events.csv": events, "items.csv": _serialise(GenericInput("csv", [], [], {}),
                                                           inp.items, []),
             "mapping.toml": _toml(inp.mapping).encode()}
    return Case("prepare", name, invalid, files, ("generic", "config=mapping.toml", *overrides))


def run_prepare_case(case: Case, folder: Path) -> Result:
    """``prepare`` end to end; a leakage failure on any input is a bug, not a clean error."""
    from onefeed.cli import user_errors
    from onefeed.data.prepare import LeakageError, load_config, prepare

    write_files(case, folder)
    dataset, config, *overrides = case.args
    try:
        cfg = load_config(None, [f"dataset={dataset}", *overrides,
                                 f"options.config={folder / config.split('=', 1)[1]}"])
        prepare(cfg)
    except LeakageError as exc:
        return Result(case, "traceback", f"LeakageError: {str(exc).splitlines()[0]}")
    except user_errors() as exc:
        ok = _message_ok(str(exc))
        return Result(case, "clean" if ok else "traceback",
                      str(exc)[:300] if ok else f"message of {len(str(exc))} chars")
    except Exception as exc:  # noqa: BLE001 - classifying is the point
        return Result(case, "traceback", _last_line(exc))
    return Result(case, "accepted_invalid" if case.invalid else "clean", "prepared")


LOADER_CASES: dict[str, Callable[[int, int], Case]] = {
    "generic_csv": lambda seed, i: generic_case("csv", seed, i),
    "generic_jsonl": lambda seed, i: generic_case("jsonl", seed, i),
    "generic_parquet": lambda seed, i: generic_case("parquet", seed, i),
    "amazon_raw": amazon_case,
    "movielens": movielens_case,
    "kuairec": kuairec_case,
    "lcrec": lcrec_case,
}


def run_loader_case(case: Case, folder: Path) -> Result:
    """Load and validate ``case`` inside ``folder`` (relative paths resolve against it)."""
    from onefeed.cli import user_errors
    from onefeed.data.datasets import load_raw
    from onefeed.data.preprocess import validate

    write_files(case, folder)
    dataset, *opts = case.args
    options = dict(o.split("=", 1) for o in opts)
    path = options.pop("path", None)
    if "config" in options:
        options["config"] = str(folder / options["config"])
    try:
        validate(load_raw(dataset, folder / path if path else None, **options))
    except user_errors() as exc:
        ok = _message_ok(str(exc))
        return Result(case, "clean" if ok else "traceback",
                      str(exc)[:300] if ok else f"message of {len(str(exc))} chars")
    except RecursionError:
        return Result(case, "traceback", "RecursionError")
    except Exception as exc:  # noqa: BLE001 - classifying is the point
        return Result(case, "traceback", _last_line(exc))
    return Result(case, "accepted_invalid" if case.invalid else "clean", "loaded")


def _last_line(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" at {Path(frames[-1].filename).name}:{frames[-1].lineno}" if frames else ""
    return f"{type(exc).__name__}: {str(exc)[:200]}{where}"


# ------------------------------------------------------------------------------------- commands

@dataclass(frozen=True)
class CommandSpec:
    """A command with placeholders {data} {sid} {run} {joint} {tmp}; what may be made bad."""

    argv: tuple[str, ...]
    paths: tuple[str, ...] = ()  # options (or "ARG" for the first positional) holding a path
    keys: tuple[tuple[str, tuple[Any, ...]], ...] = ()  # --set key -> bad values
    options: tuple[tuple[str, tuple[str, ...]], ...] = ()  # option -> bad values
    config: str = ""  # option that takes a TOML file ("" = none)


BAD_INT = (-3, -1, 0)
BAD_FRAC = (-0.5, 1.5, 2.0, 7.5, "NaN", "Infinity", 10 ** 400)
BAD_LR = (0, -1e-3, "NaN", "Infinity", "fast", 10 ** 400)
TRAIN_KEYS = (("train.epochs", BAD_INT), ("train.batch_size", BAD_INT), ("train.lr", BAD_LR),
              ("model.dropout", (1.0, -0.1, 2.0, "NaN")), ("model.n_layers", BAD_INT),
              ("train.eval_every", BAD_INT), ("model.d_model", (0, -8, "wide")))
COMMANDS: dict[str, CommandSpec] = {
    "data prepare": CommandSpec(
        ("data", "prepare", "--out", "{tmp}/out"), ("--config",),
        (("k_core", (-3, -1, "five")), ("valid_frac", BAD_FRAC), ("test_frac", BAD_FRAC),
         ("search_share", BAD_FRAC), ("max_history", BAD_INT), ("boundaries", ([5, 1], [1],
                                                                                [3, 3])),
         ("queries.holdout_frac", BAD_FRAC), ("protocol", ("random", 3)),
         ("options", ("x",))), config="--config"),
    "data stats": CommandSpec(("data", "stats", "{data}"), ("ARG",)),
    "data check": CommandSpec(("data", "check", "{data}"), ("ARG",)),
    "sid build": CommandSpec(
        ("sid", "build", "--data", "{data}", "--out", "{tmp}/sid", "--quiet"), ("--data",),
        (("levels", BAD_INT), ("codebook_size", (0, 1, -4)), ("niter", BAD_INT),
         ("batch_size", BAD_INT), ("rqvae.epochs", BAD_INT), ("strategy", ("magic",)),
         ("collab.dim", BAD_INT)), config="--config"),
    "sid inspect": CommandSpec(("sid", "inspect", "{sid}"), ("ARG",)),
    "train": CommandSpec(("train", "--data", "{data}", "--sid", "{sid}", "--out", "{tmp}/run"),
                         ("--data", "--sid"), TRAIN_KEYS, config="--config"),
    "evaluate": CommandSpec(("evaluate", "--run", "{run}"), ("--run",),
                            options=(("--split", ("bogus", "train", "")),
                                     ("--beam", ("0", "-5", "x")))),
    "recommend": CommandSpec(("recommend", "--run", "{run}", "--user", "u1"), ("--run",),
                             options=(("-k", ("-5", "0", "x")), ("--beam", ("0", "-1")))),
    "joint train": CommandSpec(
        ("joint", "train", "--data", "{data}", "--sid", "{sid}", "--out", "{tmp}/joint"),
        ("--data", "--sid"), (*TRAIN_KEYS, ("tasks.nrip", (-1.0, "NaN")),
                              ("tasks.desc_batch", BAD_INT)), config="--config"),
    "joint recommend": CommandSpec(("joint", "recommend", "--run", "{joint}", "--user", "u1"),
                                   ("--run",), options=(("-k", ("-5", "0", "1000")),
                                                        ("--split", ("bogus", "train")))),
    "joint search": CommandSpec(
        ("joint", "search", "--run", "{joint}", "--user", "u1", "--query", "red"), ("--run",),
        options=(("--query", ("", "   ", "caf\udce9", "q" * 5000)), ("-k", ("-5", "0")),
                 ("--split", ("bogus",)))),
    "joint suggest": CommandSpec(("joint", "suggest", "--run", "{joint}", "--user", "u1"),
                                 ("--run",), options=(("-k", ("-1", "0", "500")),
                                                      ("--split", ("bogus",)))),
    "bench suite": CommandSpec(("bench", "quick", "--out", "{tmp}/bench"), (),
                               (("threads", BAD_INT), ("seeds", ([-1], "x")),
                                ("protocol.max_history", BAD_INT),
                                ("protocol.ks", ([0], [-5])))),
    "run": CommandSpec(("run", "--out", "{tmp}/run", "--config", "{tmp}/run.toml"), (),
                       config="--config"),
}
FAMILIES = ("missing", "bad_value", "unknown_key", "corrupt", "bad_option")
GARBAGE_TOML = ("[[[", "a = = 1", "x = [" * 200, "\x00\x01\x02", "k = 'unterminated",
                "= 3", "[a]\nb = 1\n[a]\nb = 2")
GARBAGE_JSON = (b"{", b"", b"\xff\xfe", b"[1, 2, 3]", b'{"codebook_sizes": "x"}', b"null")


def _families(spec: CommandSpec) -> list[str]:
    out = []
    if spec.paths or spec.config:
        out += ["missing", "corrupt"]
    if spec.keys:
        out += ["bad_value", "unknown_key"]
    if spec.options:
        out.append("bad_option")
    if spec.argv[0] == "bench":
        out.append("missing_suite")
    return out


def command_case(name: str, seed: int, index: int) -> Case:
    """One bad invocation of command ``name``: every family must fail with one clean line."""
    rng = random.Random(f"command/{name}/{seed}/{index}")
    spec = COMMANDS[name]
    argv = list(spec.argv)
    family = rng.choice(_families(spec))
    files: dict[str, bytes] = {}
    if name == "run" and family != "corrupt":
        files["run.toml"] = b"quick = true\n"  # valid; "missing" points --config elsewhere
    if family == "missing":
        target = rng.choice([*spec.paths, *([spec.config] if spec.config else [])])
        _set_path(argv, target, "{tmp}/" + rng.choice(["nope", "missing/dir", "x.toml"]))
    elif family == "corrupt":
        argv, files = _corrupt(rng, spec, argv, files)
    elif family == "bad_value":
        key, values = rng.choice(spec.keys)
        value = rng.choice(values)
        raw = value if value in ("NaN", "Infinity") else json.dumps(value)  # JSON's NaN / inf
        argv += ["--set", f"{key}={raw}"]
    elif family == "unknown_key":
        key = rng.choice(["bogus", "train.bogus", "colour", "model.widht", "tasks.x",
                          "seed.deep", "threads.x.y", ""])
        argv += ["--set", f"{key}=1"]
    elif family == "missing_suite":
        argv[1] = rng.choice(["no-such-suite", "../quick", "quick.toml"])
    else:
        option, values = rng.choice(spec.options)
        _set_option(argv, option, rng.choice(values))
    return Case(name, family, True, files, tuple(argv))


def _set_path(argv: list[str], option: str, value: str) -> None:
    if option == "ARG":
        first = next(i for i, a in enumerate(argv) if a.startswith("{"))
        argv[first] = value
    else:
        _set_option(argv, option, value)


def _set_option(argv: list[str], option: str, value: str) -> None:
    if option in argv:
        argv[argv.index(option) + 1] = value
    else:
        argv += [option, value]


def _corrupt(rng: random.Random, spec: CommandSpec, argv: list[str],
             files: dict[str, bytes]) -> tuple[list[str], dict[str, bytes]]:
    """A config file that is not a valid one, or an artifact dir with a broken file."""
    if spec.config and (not spec.paths or rng.random() < 0.5):
        text = rng.choice(GARBAGE_TOML + ("bogus_key = 1", "[nothing]\nx = 1"))
        files["bad.toml"] = text.encode("utf-8", "surrogatepass")
        _set_option(argv, spec.config, "{tmp}/bad.toml")
        return argv, files
    target = rng.choice(spec.paths)
    kind = rng.choice(["dataset", "sid", "run", "joint"])
    broken = {"dataset": {"manifest.json": rng.choice(GARBAGE_JSON),
                          "events.parquet": b"PAR1 not parquet"},
              "sid": {"sid_table.json": rng.choice(GARBAGE_JSON),
                      "sid_table.parquet": b"garbage"},
              "run": {"manifest.json": rng.choice(GARBAGE_JSON), "best/x": b""},
              "joint": {"manifest.json": json.dumps({"kind": "joint-generative",
                                                     "data": "{tmp}/nope",
                                                     "sid": "{tmp}/nope"}).encode(),
                        "best/x": b""}}[kind]
    files.update({f"broken/{k}": v for k, v in broken.items()})
    if kind in ("run", "joint") and "manifest.json" in broken:
        files["broken/sid_table.json"] = rng.choice(GARBAGE_JSON)
    _set_path(argv, target, "{tmp}/broken")
    return argv, files


def run_command_case(case: Case, folder: Path, fixture: dict[str, str]) -> Result:
    """Run ``onefeed <argv>`` in-process; clean = non-zero exit, last stderr line ``error:``."""
    from onefeed.cli import main

    values = {**fixture, "tmp": str(folder)}
    files = {k: v.replace(b"{tmp}", str(folder).encode()) for k, v in case.files.items()}
    write_files(Case(case.target, case.mutation, case.invalid, files), folder)
    argv = [_format(a, values) for a in case.args]
    out, err = io.StringIO(), io.StringIO()
    code: Any = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main(argv)
        except SystemExit as exc:
            code = exc.code
        except BaseException as exc:  # noqa: BLE001 - classifying is the point
            return Result(case, "traceback", _last_line(exc))
    lines = [ln for ln in err.getvalue().splitlines() if ln.strip()]
    text = out.getvalue() + err.getvalue()
    if code in (0, None):
        return Result(case, "accepted_invalid", f"exit 0: {text[-200:]}")
    if "Traceback" in text or not lines or not lines[-1].startswith("error:") \
            or not _message_ok(lines[-1]):
        return Result(case, "traceback", f"exit {code}: {(lines or [''])[-1][:300]}")
    return Result(case, "clean", lines[-1][:300])


def _format(arg: str, values: dict[str, str]) -> str:
    for key, value in values.items():
        arg = arg.replace("{" + key + "}", value)
    return arg


def command_fixture(root: Path) -> dict[str, str]:
    """A real prepared dataset and SID table (no text model needed), a fake trained run and a
    fake joint run: the artifacts bad invocations point at."""
    from onefeed.data.prepare import load_config, prepare_to_dir
    from onefeed.paths import REPO
    from onefeed.sid.table import SidTable

    cfg = load_config(REPO / "configs" / "prepare" / "example-generic.toml")
    ds, data = prepare_to_dir(cfg, root / "data")
    import numpy as np

    codes = np.stack([np.arange(ds.n_items) % 4, np.arange(ds.n_items) // 4], axis=1)
    sid = root / "sid"
    SidTable(codes.astype(np.int64), (4, max(1, (ds.n_items + 3) // 4)), {}).save(sid)
    run, joint = root / "run", root / "joint"
    for path, kind in ((run, "generative-recommender"), (joint, "joint-generative")):
        (path / "best").mkdir(parents=True)
        (path / "manifest.json").write_text(json.dumps({"kind": kind, "data": str(data),
                                                        "sid": str(sid)}))
    return {"data": str(data), "sid": str(sid), "run": str(run), "joint": str(joint)}


# ------------------------------------------------------------------------------------- running

@dataclass
class Tally:
    cases: int = 0
    counts: Counter = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)  # outcome -> a few details
    seconds: float = 0.0

    def add(self, result: Result) -> None:
        self.cases += 1
        self.counts[result.outcome] += 1
        if result.outcome != "clean":
            shown = self.examples.setdefault(result.outcome, [])
            if len(shown) < 5:
                shown.append(f"{result.case.mutation}: {result.detail}")

    def as_dict(self, outcomes: tuple[str, ...]) -> dict[str, Any]:
        return {"cases": self.cases, **{o: self.counts[o] for o in outcomes},
                "seconds": round(self.seconds, 2), "examples": self.examples}


def fuzz_loaders(cases: int, seed: int = 0, names: list[str] | None = None) -> dict[str, Tally]:
    out = {}
    for name in names or list(LOADER_CASES):
        tally, t0 = Tally(), time.perf_counter()
        for i in range(cases):
            case = LOADER_CASES[name](seed, i)
            with tempfile.TemporaryDirectory(prefix="onefeed-fuzz-") as tmp:
                tally.add(run_loader_case(case, Path(tmp)))
        tally.seconds = time.perf_counter() - t0
        out[name] = tally
    return out


def fuzz_prepare(cases: int, seed: int = 0) -> Tally:
    tally, t0 = Tally(), time.perf_counter()
    for i in range(cases):
        with tempfile.TemporaryDirectory(prefix="onefeed-fuzz-") as tmp:
            tally.add(run_prepare_case(prepare_case(seed, i), Path(tmp)))
    tally.seconds = time.perf_counter() - t0
    return tally


def fuzz_commands(cases: int, seed: int = 0, names: list[str] | None = None) -> dict[str, Tally]:
    out = {}
    with tempfile.TemporaryDirectory(prefix="onefeed-fuzz-fixture-") as root:
        fixture = command_fixture(Path(root))
        for name in names or list(COMMANDS):
            tally, t0 = Tally(), time.perf_counter()
            for i in range(cases):
                with tempfile.TemporaryDirectory(prefix="onefeed-fuzz-") as tmp:
                    tally.add(run_command_case(command_case(name, seed, i), Path(tmp), fixture))
            tally.seconds = time.perf_counter() - t0
            out[name] = tally
    return out


LOADER_OUTCOMES = ("clean", "traceback", "accepted_invalid")
COMMAND_OUTCOMES = ("clean", "traceback", "accepted_invalid")


def report(loaders: dict[str, Tally], commands: dict[str, Tally], seed: int) -> dict[str, Any]:
    from onefeed.artifacts import git_commit, machine_info

    return {"seed": seed, "commit": git_commit(), "machine": machine_info(),
            "loaders": {k: t.as_dict(LOADER_OUTCOMES) for k, t in loaders.items()},
            "commands": {k: t.as_dict(COMMAND_OUTCOMES) for k, t in commands.items()}}


def markdown(result: dict[str, Any]) -> str:
    lines = [f"# Fuzzing: malformed inputs (seed {result['seed']}, commit `{result['commit']}`)",
             "", "Every case must end `clean`: a one-line error naming the file / key, or a "
             "valid load. See `src/onefeed/fuzzing.py`.", ""]
    for section in ("loaders", "commands"):
        lines += [f"## {section}", "", "| target | cases | clean | traceback | accepted_invalid "
                  "| seconds |", "|---|---|---|---|---|---|"]
        for name, row in result[section].items():
            lines.append(f"| {name} | {row['cases']} | {row['clean']} | {row['traceback']} | "
                         f"{row['accepted_invalid']} | {row['seconds']} |")
        lines.append("")
    return "\n".join(lines)
