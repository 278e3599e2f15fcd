"""LC-Rec / LETTER JSON form (<Name>.inter.json + <Name>.item.json), tests/fixtures/lcrec."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import polars as pl
import pytest

from onefeed.data.datasets import load_raw
from onefeed.data.prepare import PrepareConfig, prepare
from onefeed.data.schemas import ITEM_SCHEMA, RAW_EVENT_SCHEMA, DataError

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "lcrec"


def test_fixture_sequences_and_decoded_item_text():
    raw = load_raw("lcrec", FIX)
    ev = raw.events
    assert ev.schema == pl.Schema(RAW_EVENT_SCHEMA) and raw.items.schema == pl.Schema(ITEM_SCHEMA)
    assert ev.select("user_id", "item_id", "order").rows() == [
        ("0", "0", 0), ("0", "1", 1), ("0", "2", 2), ("0", "3", 3), ("1", "1", 0), ("1", "2", 1),
        ("1", "4", 2), ("2", "3", 0), ("2", "0", 1), ("2", "4", 2), ("2", "1", 3)]
    assert ev["timestamp"].null_count() == ev.height and not raw.source["has_timestamps"]
    assert raw.source["name"] == "lcrec-Toys"
    items = {r["item_id"]: r for r in raw.items.to_dicts()}
    assert items["0"]["title"] == "Tom & Jerry's Soap"
    assert items["0"]["description"] == 'A bar of soap "lavender"'
    assert items["0"]["categories"] == ["Beauty", "Bath & Body", "Soaps"]  # comma-joined string
    assert items["2"]["categories"] == ["Beauty", "Makeup", "Nails"]  # a list also works
    assert items["1"]["brand"] is None and items["1"]["description"] is None  # "" -> null
    assert items["3"]["categories"] == []
    assert items["4"]["title"] is None  # in the sequences, not in item.json


def test_prepares_leave_one_out(tmp_path):
    seqs = {str(u): [(u + k) % 7 for k in range(5)] for u in range(8)}
    (tmp_path / "Beauty.inter.json").write_text(json.dumps(seqs))
    shutil.copy(FIX / "Toys.item.json", tmp_path / "Beauty.item.json")
    ds = prepare(PrepareConfig(name="lcrec-toy", dataset="lcrec", path=str(tmp_path), k_core=2,
                               options={"prefix": "Beauty"}))
    assert ds.n_users == 8 and ds.n_items == 7
    assert ds.events.filter(pl.col("split") == "test").height == 8


@pytest.mark.parametrize("inter, message", [
    ('{"0": [1, 2],\n "1": [3, }', r"Toys.inter.json: line 2, column 11: malformed JSON"),
    ('[1, 2]', r"expected a JSON object user -> list of items, got list"),
    ('{"0": "1 2 3"}', r"user '0': expected a list of item ids, got str"),
    ('{"0": [1, {"id": 2}]}', r"user '0', position 1: expected a string or integer id, got dict"),
    ('{"0": [1, true]}', r"position 1: expected a string or integer id, got bool"),
    ('{"0": [], "1": []}', r"no interactions"),
])
def test_bad_inter_json_names_the_place(tmp_path, inter, message):
    (tmp_path / "Toys.inter.json").write_text(inter)
    with pytest.raises(DataError, match=message):
        load_raw("lcrec", tmp_path)


@pytest.mark.parametrize("item, message", [
    ('{"1": "Lip Gloss"}', r"item '1': expected an object with title"),
    ('{"1": {"title": 5}}', r"item '1', field 'title': expected a string, got int 5"),
    ('{"1": {"categories": [["a"]]}}', r"field 'categories': expected a comma-joined string or"),
])
def test_bad_item_json_names_item_and_field(tmp_path, item, message):
    (tmp_path / "Toys.inter.json").write_text('{"0": [1, 2]}')
    (tmp_path / "Toys.item.json").write_text(item)
    with pytest.raises(DataError, match=message):
        load_raw("lcrec", tmp_path)


def test_name_detection(tmp_path):
    with pytest.raises(DataError, match=r"expected one <Name>.inter.json .*found none"):
        load_raw("lcrec", tmp_path)
    (tmp_path / "A.inter.json").write_text('{"0": [1]}')
    (tmp_path / "B.inter.json").write_text('{"0": [2]}')
    with pytest.raises(DataError, match=r"found several: \['A', 'B'\]; pass prefix="):
        load_raw("lcrec", tmp_path)
    assert load_raw("lcrec", tmp_path, prefix="B").events["item_id"].to_list() == ["2"]
    with pytest.raises(DataError, match=r"missing C.inter.json"):
        load_raw("lcrec", tmp_path, prefix="C")
    (tmp_path / "B.inter.json").write_bytes(b'{"0": ["caf\xe9"]}')
    with pytest.raises(DataError, match=r"line 1, byte 11: not valid utf-8"):
        load_raw("lcrec", tmp_path, prefix="B")
