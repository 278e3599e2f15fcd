"""Amazon loaders: P5/S3Rec form on real Beauty, with and without item text; raw McAuley form."""

from __future__ import annotations

import gzip
import json
import shutil
import sys
from pathlib import Path

import polars as pl
import pytest

from onefeed.data.datasets import load_raw
from onefeed.data.datasets.amazon import unescape
from onefeed.data.schemas import ITEM_SCHEMA, RAW_EVENT_SCHEMA, DataError

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from conftest import real_data  # noqa: E402

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def test_beauty_real_counts():
    raw = load_raw("amazon", real_data("amazon2014-Beauty"), category="Beauty")
    ev = raw.events
    assert ev.schema == pl.Schema(RAW_EVENT_SCHEMA)
    assert ev.height == 198_502
    assert ev["user_id"].n_unique() == 22_363
    assert ev["item_id"].n_unique() == 12_101 and raw.items.height == 12_101
    assert raw.items["title"].drop_nulls().len() == 12_094
    assert ev["timestamp"].null_count() == ev.height  # order only, no invented times
    assert raw.source["has_timestamps"] is False
    assert raw.source["name"] == "amazon-Beauty"
    assert any("no timestamps" in n for n in raw.source["notes"])
    first = ev.filter(pl.col("user_id") == "A1YJEY40YUW4SE")
    assert first["item_id"].to_list() == ["B004756YJA", "B004ZT0SSG", "B0020YLEYK",
                                          "7806397051", "B002WLWX82"]
    assert first["order"].to_list() == [0, 1, 2, 3, 4]
    brands = raw.items["brand"].drop_nulls()
    assert brands.str.contains("&#39;|&amp;").sum() == 0
    assert (brands == "L'Oreal Paris").any()


def test_beauty_without_item_text(tmp_path):
    src = real_data("amazon2014-Beauty")
    shutil.copy(src / "user_sequence.txt", tmp_path / "user_sequence.txt")
    raw = load_raw("amazon", tmp_path, category="Beauty")
    assert raw.events.height == 198_502
    assert raw.items.height == 12_101
    assert raw.items["title"].null_count() == 12_101
    assert raw.items.schema == pl.Schema(ITEM_SCHEMA)


def test_p5_small_tmp_with_text_and_datamaps(tmp_path):
    (tmp_path / "user_sequence.txt").write_text("U1 A B C\nU2 B D\n")
    maps = {"user2id": {"U1": "1", "U2": "2"}, "item2id": {"A": "1", "B": "2", "C": "3", "D": "4"}}
    (tmp_path / "p5_datamaps.json.gz").write_bytes(gzip.compress(json.dumps(maps).encode()))
    lines = [{"asin": "A", "title": "Tom &amp; Jerry&#39;s Soap", "brand": None,
              "categories": ["Bath &amp; Body"]}, {"asin": "B", "title": "", "categories": []}]
    (tmp_path / "items.jsonl.gz").write_bytes(
        gzip.compress("\n".join(json.dumps(x) for x in lines).encode()))
    raw = load_raw("amazon", tmp_path, category="Toys")
    assert raw.source["name"] == "amazon-Toys"
    assert raw.events["order"].to_list() == [0, 1, 2, 0, 1]
    items = {r["item_id"]: r for r in raw.items.to_dicts()}
    assert items["A"]["title"] == "Tom & Jerry's Soap"
    assert items["A"]["categories"] == ["Bath & Body"]
    assert items["B"]["title"] is None
    assert items["D"]["title"] is None and items["D"]["categories"] is None  # no text line
    maps["item2id"]["E"] = "5"
    (tmp_path / "p5_datamaps.json.gz").write_bytes(gzip.compress(json.dumps(maps).encode()))
    with pytest.raises(DataError, match="item2id.*disagrees"):
        load_raw("amazon", tmp_path)


def test_unescape():
    assert unescape("Clean &amp; Clear") == "Clean & Clear"
    assert unescape("L&#39;Oreal") == "L'Oreal"
    assert unescape("  ") is None and unescape(None) is None


def test_amazon_raw_fixture():
    raw = load_raw("amazon-raw", FIXTURES / "amazon_raw", category="Toys")
    ev, items = raw.events, raw.items
    assert ev.schema == pl.Schema(RAW_EVENT_SCHEMA)
    assert ev.height == 12 and ev["user_id"].n_unique() == 4
    assert ev["timestamp"].to_list()[:2] == [1300000000, 1300086400]
    assert ev["strength"].to_list()[:3] == [5.0, 4.0, 3.0]
    assert ev["review"][1] == "Nice car\nRemote car is fast & fun."
    assert raw.source["name"] == "amazon-raw-Toys" and raw.source["has_timestamps"]
    by_id = {r["item_id"]: r for r in items.to_dicts()}
    assert set(by_id) == {"T100", "T200", "T300", "T400", "T500"}
    assert by_id["T200"]["title"] == "Turbo RC Car & Controller"
    assert by_id["T200"]["categories"] == ["Toys & Games", "Vehicles", "Remote Control",
                                           "Electronics"]
    assert by_id["T300"]["title"] == "Kid's Wooden Blocks"  # the python-literal meta line
    assert by_id["T300"]["tags"] == ["price:19.5"]
    assert by_id["T100"]["description"] == "A 500-piece ocean jigsaw puzzle."
    assert by_id["T500"]["title"] is None  # reviewed but no meta line


def test_amazon_raw_without_meta(tmp_path):
    shutil.copy(FIXTURES / "amazon_raw" / "reviews_Toys_5.json.gz", tmp_path)
    raw = load_raw("amazon-raw", tmp_path, category="Toys")
    assert raw.items.height == 5 and raw.items["title"].null_count() == 5


def test_amazon_raw_fast_reader_matches_reference(tmp_path):
    from onefeed.data.datasets.amazon_raw import read_reviews, read_reviews_reference

    fixture = FIXTURES / "amazon_raw" / "reviews_Toys_5.json.gz"
    assert read_reviews(fixture).equals(read_reviews_reference(fixture))
    lines = [{"reviewerID": "A", "asin": "X", "overall": 5.0, "unixReviewTime": 1,
              "summary": "  ", "reviewText": "Tom &amp; Jerry"},
             {"reviewerID": "A", "asin": "Y", "overall": 1, "unixReviewTime": 2},
             {"reviewerID": "B", "asin": "X", "overall": 3.0, "unixReviewTime": 3,
              "summary": "", "reviewText": ""}]
    path = tmp_path / "reviews_T_5.json.gz"
    path.write_bytes(gzip.compress("\n".join(json.dumps(x) for x in lines).encode()))
    fast = read_reviews(path)
    assert fast.equals(read_reviews_reference(path))
    assert fast["review"].to_list() == ["Tom & Jerry", None, None]


def test_p5_datamaps_with_only_reverse_maps(tmp_path):
    """Datamaps carrying only id2user / id2item (no user2id) are enough to cross-check."""
    (tmp_path / "user_sequence.txt").write_text("U1 A B C\nU2 B D\n")
    maps = {"id2user": {"1": "U1", "2": "U2"}, "id2item": {"1": "A", "2": "B", "3": "C", "4": "D"}}
    path = tmp_path / "p5_datamaps.json.gz"
    path.write_bytes(gzip.compress(json.dumps(maps).encode()))
    raw = load_raw("amazon", tmp_path, category="Toys")
    assert (raw.source["datamaps_users"], raw.source["datamaps_items"]) == (2, 4)
    maps["id2item"]["5"] = "E"
    path.write_bytes(gzip.compress(json.dumps(maps).encode()))
    with pytest.raises(DataError, match=r"'id2item' disagrees with user_sequence.txt \(in "
                                        r"sequences only: \[\]; in datamaps only: \['E'\]\)"):
        load_raw("amazon", tmp_path)
    path.write_bytes(gzip.compress(json.dumps({"id2user": maps["id2user"]}).encode()))
    with pytest.raises(DataError, match=r"missing key 'item2id' \(or its reverse 'id2item'\)"):
        load_raw("amazon", tmp_path)
    path.write_bytes(gzip.compress(json.dumps({"id2user": ["U1", "U2"], "item2id": {}}).encode()))
    with pytest.raises(DataError, match=r"'id2user' must be a JSON object, got list"):
        load_raw("amazon", tmp_path)
