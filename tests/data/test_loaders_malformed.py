"""Malformed cells, rows and files -> DataError with file / line / column (issue 20 part 5).

One hand-written case per family the property fuzz found (tests/test_fuzz.py runs the seeded
generators); a success must hold only valid values.
"""

from __future__ import annotations

import gzip
import json
import math
from pathlib import Path

import polars as pl
import pytest

from onefeed.config import ConfigError
from onefeed.data.datasets import load_raw
from onefeed.data.datasets.files import show
from onefeed.data.datasets.generic import EventColumns, GenericMapping, ItemColumns
from onefeed.data.preprocess import validate
from onefeed.data.schemas import DataError


def mapping(fmt: str = "csv", **events) -> GenericMapping:
    cols = dict(file=f"events.{fmt}", format=fmt, user="u", item="i", timestamp="t",
                strength="s")
    cols.update(events)
    return GenericMapping(events=EventColumns(**cols), items=ItemColumns(file=""))


def load_csv(tmp_path: Path, text: str, **events):
    (tmp_path / "events.csv").write_text(text)
    return load_raw("generic", tmp_path, config=mapping(**events))


def load_jsonl(tmp_path: Path, rows: list, **events):
    lines = [r if isinstance(r, str) else json.dumps(r) for r in rows]
    (tmp_path / "events.jsonl").write_text("\n".join(lines) + "\n")
    return load_raw("generic", tmp_path, config=mapping("jsonl", **events))


def load_parquet(tmp_path: Path, frame: pl.DataFrame, **events):
    frame.write_parquet(tmp_path / "events.parquet")
    return load_raw("generic", tmp_path, config=mapping("parquet", **events))


ROW = {"u": "a", "i": "x", "t": 1_700_000_000, "s": 4}


# ---------------------------------------------------------------- numbers

@pytest.mark.parametrize("bad", ["nan", "inf", "-inf", "1e30", "-5"])
def test_timestamps_must_be_finite_unix_seconds_in_range(tmp_path, bad):
    with pytest.raises(DataError, match=r"events.csv: line 3, column 't': .*(finite|outside)"):
        load_csv(tmp_path, f"u,i,t,s\na,x,1700000000,4\nb,y,{bad},3\n")


@pytest.mark.parametrize("bad", ["NaN", "Infinity", "1e50", "-1e12"])
def test_strengths_must_be_finite_and_bounded(tmp_path, bad):
    with pytest.raises(DataError, match=r"line 1, column 's': .*(finite|outside)"):
        load_jsonl(tmp_path, ['{"u": "a", "i": "x", "t": 1700000000, "s": %s}' % bad])


def test_iso_timestamps_are_detected_and_other_text_names_timestamp_format(tmp_path):
    raw = load_csv(tmp_path, "u,i,t,s\na,x,2024-01-01T00:45:28,4\na,y,2024-01-01 00:45:29Z,3\n")
    assert raw.events["timestamp"].to_list() == [1704069928, 1704069929]
    with pytest.raises(DataError, match=r"line 2, column 't': cannot read 'tuesday' as unix "
                                        r"seconds; set \[events\] timestamp_format"):
        load_csv(tmp_path, "u,i,t,s\na,x,tuesday,4\n")


# ---------------------------------------------------------------- cells

def test_jsonl_nested_objects_lists_and_booleans_in_used_columns(tmp_path):
    with pytest.raises(DataError, match=r"line 2, column 'u' holds object"):
        load_jsonl(tmp_path, [ROW, {**ROW, "u": {"id": 1}}])
    with pytest.raises(DataError, match=r"line 1, column 'i' holds lists"):
        load_jsonl(tmp_path, [{**ROW, "i": ["x", "y"]}, {**ROW, "i": ["z"]}])
    with pytest.raises(DataError, match=r"line 2, column 'u' mixes lists and single values"):
        load_jsonl(tmp_path, [ROW, {**ROW, "u": ["a"]}])
    with pytest.raises(DataError, match=r"line 1, column 'i' holds boolean True"):
        load_jsonl(tmp_path, [{**ROW, "i": True}])


def test_jsonl_mixed_scalar_types_and_unused_nested_columns_load(tmp_path):
    raw = load_jsonl(tmp_path, [{**ROW, "u": 7, "extra": {"deep": [1, {"x": 2}]}},
                                {**ROW, "u": "b", "t": 1_700_000_001.0}])
    validate(raw)
    assert raw.events["user_id"].to_list() == ["7", "b"]


def test_jsonl_line_that_is_not_an_object_or_nested_too_deep(tmp_path):
    with pytest.raises(DataError, match=r"line 2: expected a JSON object, got list"):
        load_jsonl(tmp_path, [ROW, "[1, 2]"])
    deep = '{"u": ' + "[" * 100_000 + "]" * 100_000 + "}"
    with pytest.raises(DataError, match=r"line 2: JSON nested too deeply|line 2: malformed"):
        load_jsonl(tmp_path, [ROW, deep])


def test_parquet_invalid_utf8_binary_list_and_bool_columns(tmp_path):
    frame = pl.DataFrame({"u": pl.Series([b"a", b"\xff\xfe"], dtype=pl.Binary), "i": ["x", "y"],
                          "t": [1_700_000_000, 1_700_000_001], "s": [4.0, 3.0]})
    with pytest.raises(DataError, match=r"row 1, column 'u' holds bytes that are not valid"):
        load_parquet(tmp_path, frame)
    with pytest.raises(DataError, match=r"column 'i' holds lists"):
        load_parquet(tmp_path, frame.with_columns(u=pl.lit("a"), i=pl.lit(["x"])))
    with pytest.raises(DataError, match=r"column 'u' holds booleans"):
        load_parquet(tmp_path, frame.with_columns(u=pl.lit(True)))
    with pytest.raises(DataError, match=r"row 1, column 't' holds nan"):
        load_parquet(tmp_path, frame.with_columns(u=pl.lit("a"), t=pl.Series([1.7e9, math.nan])))


@pytest.mark.parametrize("bad", ["NaN", "null", "None", "n/a"])
def test_ids_that_are_missing_values_written_as_text_fail_validation(tmp_path, bad):
    raw = load_csv(tmp_path, f"u,i,t,s\na,x,1700000000,4\nb,{bad},1700000001,3\n")
    with pytest.raises(DataError, match=r"row 1, column 'item_id' looks like a missing value"):
        validate(raw)


def test_long_values_are_shortened_in_messages(tmp_path):
    long_id = "u" * 100_000
    with pytest.raises(DataError) as err:
        load_csv(tmp_path, f"u,i,t,s\na,x,1700000000,4\n{long_id},y,1700000001,lots\n")
    assert len(str(err.value)) < 300 and "(3 chars)" not in str(err.value)
    assert show("x" * 1000, 40).endswith("... (1002 chars)") and len(show("x" * 1000, 40)) < 60
    assert show("short") == "'short'"


# ---------------------------------------------------------------- rows and files

def test_short_and_long_rows_say_how_many_fields(tmp_path):
    with pytest.raises(DataError, match=r"events.csv: line 3: row has 2 fields, expected 4"):
        load_csv(tmp_path, "u,i,t,s\na,x,1700000000,4\nb,y\n")
    with pytest.raises(DataError, match=r"events.csv: line 3: row has 5 fields, expected 4"):
        load_csv(tmp_path, "u,i,t,s\na,x,1700000000,4\nb,y,1700000001,3,9\n")
    raw = load_csv(tmp_path, 'u,i,t,s\na,"x,1",1700000000,\n')  # quoted separator, empty cell
    assert raw.events["item_id"].to_list() == ["x,1"]


def test_short_row_with_behaviour_column_is_not_an_unknown_behaviour(tmp_path):
    (tmp_path / "events.csv").write_text("u,i,t,b\na,x,1700000000,view\nb,y,1700000001\n")
    cfg = mapping(strength="", behaviour="b", behaviour_values={"view": "rec_click"})
    with pytest.raises(DataError, match="line 3: row has 3 fields, expected 4"):
        load_raw("generic", tmp_path, config=cfg)


@pytest.mark.parametrize("sep", ["", "||", "\u00a7"])
def test_bad_separators_are_config_errors(tmp_path, sep):
    with pytest.raises(ConfigError, match="separator"):
        load_csv(tmp_path, "u,i,t,s\na,x,1,4\n", separator=sep)


def test_unknown_encoding_and_declared_latin1(tmp_path):
    with pytest.raises(ConfigError, match="encoding = 'klingon': unknown"):
        load_csv(tmp_path, "u,i,t,s\na,x,1,4\n", encoding="klingon")
    (tmp_path / "events.csv").write_bytes("u,i,t,s\ncaf\u00e9,x,1700000000,4\n".encode("latin-1"))
    raw = load_raw("generic", tmp_path, config=mapping(encoding="latin-1"))
    assert raw.events["user_id"].to_list() == ["caf\u00e9"]


def test_missing_event_file_says_where_it_looked(tmp_path):
    with pytest.raises(DataError, match=f"file not found \\(looked at {tmp_path}/events.csv\\)"):
        load_raw("generic", tmp_path, config=mapping())


# ---------------------------------------------------------------- Amazon raw, MovieLens

def reviews(tmp_path: Path, rows: list) -> Path:
    text = "\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n"
    (tmp_path / "reviews_Toys_5.json.gz").write_bytes(gzip.compress(text.encode()))
    return tmp_path


REVIEW = {"reviewerID": "A", "asin": "X", "overall": 5.0, "unixReviewTime": 1_300_000_000}


@pytest.mark.parametrize("field,value,match", [
    ("reviewerID", True, "column 'reviewerID': expected a string id, got bool"),
    ("asin", {"a": 1}, "column 'asin': expected a string id, got dict"),
    ("asin", [1], "column 'asin': expected a string id, got list"),
    ("unixReviewTime", 10 ** 30, "column 'unixReviewTime': cannot read"),
    ("unixReviewTime", -5, "column 'unixReviewTime': cannot read -5"),
    ("overall", 1e50, "column 'overall': cannot read 1e\\+50"),
])
def test_amazon_raw_ids_and_numbers(tmp_path, field, value, match):
    reviews(tmp_path, [REVIEW, {**REVIEW, field: value}])
    with pytest.raises(DataError, match=f"line 2, {match}"):
        load_raw("amazon-raw", tmp_path, category="Toys")


def test_amazon_raw_nan_and_deep_json(tmp_path):
    reviews(tmp_path, [json.dumps(REVIEW), json.dumps(REVIEW).replace("5.0", "NaN")])
    with pytest.raises(DataError, match="line 2, column 'overall'"):
        load_raw("amazon-raw", tmp_path, category="Toys")
    reviews(tmp_path, [REVIEW, '{"a": ' + "[" * 100_000 + "]" * 100_000 + "}"])
    with pytest.raises(DataError, match="line 2: JSON nested too deeply"):
        load_raw("amazon-raw", tmp_path, category="Toys")


def test_movielens_non_finite_rating_fails_validation(tmp_path):
    (tmp_path / "u.data").write_text("1\t1\t5\t881250949\n1\t1\tnan\t881250950\n")
    (tmp_path / "u.item").write_text("1|Toy Story (1995)|01-Jan-1995||http://x|0|1\n")
    (tmp_path / "u.genre").write_text("unknown|0\nAction|1\n")
    with pytest.raises(DataError, match="row 1, column 'strength' is not a finite number"):
        validate(load_raw("ml-100k", tmp_path))


def test_same_second_view_and_search_click_are_one_interaction(tmp_path):
    """A view and a search click of one item in one second used to fail
    history_target_separation (the view stayed in train while the click was held out, so the
    history revealed the target). They are one interaction logged twice: prepare keeps its
    first row, and the held-out target is nowhere in training."""
    from onefeed.data.prepare import load_config, prepare

    rows = ["uid,product,when,action"]
    for u in range(6):
        rows += [f"u{u},p{(u + k) % 5},{1_700_000_000 + k},view" for k in range(4)]
        rows += [f"u{u},p{(u + 3) % 5},{1_700_000_003},result_click",
                 f"u{u},p{(u + 4) % 5},{1_700_000_009},view"]
    (tmp_path / "events.csv").write_text("\n".join(rows) + "\n")
    (tmp_path / "m.toml").write_text(
        '[events]\nfile = "events.csv"\nuser = "uid"\nitem = "product"\ntimestamp = "when"\n'
        'behaviour = "action"\n[events.behaviour_values]\nview = "rec_click"\n'
        'result_click = "search_click"\n')
    cfg = load_config(None, ["dataset=generic", "k_core=0", f"options.config={tmp_path}/m.toml"])
    ds = prepare(cfg)
    valid = ds.events.filter(pl.col("split") == "valid")
    assert valid["behaviour"].unique().to_list() == ["rec_click"]
    assert ds.manifest["leakage"]
    held = ds.events.filter(pl.col("split") != "train").select("user", "item", "timestamp")
    train = ds.events.filter(pl.col("split") == "train")
    assert train.join(held, on=["user", "item", "timestamp"], how="semi").is_empty()
    assert ds.events.filter(pl.col("behaviour") != "search_query").height == 6 * 5
