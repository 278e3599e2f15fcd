"""Generic CSV / JSONL / Parquet loader driven by a TOML column mapping."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from onefeed.data.datasets import load_raw
from onefeed.data.datasets.generic import EventColumns, GenericMapping, ItemColumns
from onefeed.data.schemas import ITEM_SCHEMA, RAW_EVENT_SCHEMA

REPO = Path(__file__).resolve().parents[2]
FIX = REPO / "tests" / "fixtures" / "generic"


def test_example_csv_mapping():
    raw = load_raw("generic", config=REPO / "configs" / "datasets" / "example_generic.toml")
    ev = raw.events
    assert ev.schema == pl.Schema(RAW_EVENT_SCHEMA)
    assert ev.height == 9
    assert ev["behaviour"].to_list()[:3] == ["rec_click", "search_query", "search_click"]
    assert ev["query"][1] == "red running shoes" and ev["item_id"][1] is None
    assert ev["timestamp"][0] == 1709287200  # 2024-03-01 10:00:00 UTC
    assert ev["strength"].to_list()[:5] == [5.0, None, 4.0, 3.0, None]
    assert raw.source["name"] == "example-generic" and raw.source["has_timestamps"]
    items = {r["item_id"]: r for r in raw.items.to_dicts()}
    assert items["p2"]["categories"] == ["Shoes", "Running"]
    assert items["p4"]["tags"] == ["trail", "running"]
    assert items["p1"]["brand"] == "Stride"


def test_jsonl_mapping_unix_ms_and_list_columns():
    raw = load_raw("generic", config=FIX / "events_jsonl.toml")
    ev = raw.events
    assert ev["timestamp"].to_list() == [1700000000, 1700000060, 1700000065, 1700000100,
                                         1700000200]
    assert ev["behaviour"].to_list() == ["rec_click", "search_query", "search_click",
                                         "rec_click", "rec_click"]
    assert ev["strength"].to_list() == [1.0, None, None, 0.5, None]
    assert raw.items.schema == pl.Schema(ITEM_SCHEMA)
    assert raw.items.filter(pl.col("item_id") == "a")["categories"].to_list() == [["Drinks",
                                                                                   "Tea"]]


def test_parquet_without_time_or_items(tmp_path):
    pl.DataFrame({"u": ["x", "x", "y"], "i": [3, 1, 2]}).write_parquet(tmp_path / "log.parquet")
    mapping = GenericMapping(name="mine", events=EventColumns(file="log.parquet",
                                                              format="parquet", user="u",
                                                              item="i"),
                             items=ItemColumns(file=""))
    raw = load_raw("generic", tmp_path, config=mapping)
    assert raw.events["item_id"].to_list() == ["3", "1", "2"]
    assert raw.events["timestamp"].null_count() == 3 and raw.events["order"].to_list() == [0, 1, 2]
    assert raw.source["has_timestamps"] is False
    assert raw.items["item_id"].to_list() == ["3", "1", "2"]
