"""Out-of-core prepare front (onefeed.data.scan): lazy scans give the in-memory results."""

from __future__ import annotations

import json

import polars as pl
import pytest

from onefeed.config import ConfigError
from onefeed.data import synthetic
from onefeed.data.datasets import load_raw
from onefeed.data.prepare import PrepareConfig, load_config, prepare
from onefeed.data.preprocess import validate
from onefeed.data.scan import chunk_rows, encode_ids, validate_lazy
from onefeed.data.schemas import DataError, RawData



def _golden_module():
    """tests/data/test_prepare_golden.py by path (--import-mode=importlib: no bare import)."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location(
        "_onefeed_prepare_golden", Path(__file__).parent / "test_prepare_golden.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_g = _golden_module()
CASES, GOLDEN, _raw, dataset_hashes = _g.CASES, _g.GOLDEN, _g._raw, _g.dataset_hashes


@pytest.fixture(scope="module")
def raw():
    return _raw()


def _write(raw: RawData, folder, fmt: str):
    folder.mkdir()
    ev = raw.events
    if fmt == "parquet":
        (folder / "events").mkdir()
        half = ev.height // 2  # two files: the scan reads them in name order
        ev.slice(0, half).write_parquet(folder / "events" / "part-0.parquet")
        ev.slice(half).write_parquet(folder / "events" / "part-1.parquet")
    elif fmt == "csv":
        ev.write_csv(folder / "events.csv")
    else:
        ev.write_ndjson(folder / "events.jsonl")
    raw.items.write_parquet(folder / "items.parquet")


@pytest.mark.parametrize("fmt", ["parquet", "csv", "jsonl"])
def test_prepare_from_a_lazy_scan_matches_the_golden_hashes(fmt, raw, tmp_path):
    _write(raw, tmp_path / "raw", fmt)
    scanned = load_raw("raw-files", tmp_path / "raw")
    assert isinstance(scanned.events, pl.LazyFrame)
    for case in ("loo", "temporal-first"):
        ds = prepare(PrepareConfig(name="golden", **CASES[case]), scanned)
        assert dataset_hashes(ds) == GOLDEN[case], (fmt, case)
    files = ds.manifest["source"]["files"]
    assert all(len(sha) == 64 for sha in files.values()) and len(files) >= 2


def test_encode_ids_codes_follow_first_appearance():
    lf = pl.LazyFrame({"user_id": ["b", "a", "b", "c"], "item_id": ["x", None, "y", "x"],
                       "behaviour": ["rec_click", "search_query", "search_click", "rec_click"]})
    enc = encode_ids(lf)
    assert enc.user_names.to_list() == ["b", "a", "c"]
    assert enc.item_names.to_list() == ["x", "y"]
    assert enc.events["user_id"].to_list() == [0, 1, 0, 2]
    assert enc.events["item_id"].to_list() == [0, None, 1, 0]
    assert enc.events.schema["user_id"] == pl.Int32
    assert enc.events["behaviour"].to_physical().to_list() == [0, 1, 2, 0]  # one-byte Enum


@pytest.mark.parametrize("bad", [
    dict(row=7, column="behaviour", value="like"),
    dict(row=3, column="user_id", value="N/A"),
    dict(row=11, column="timestamp", value=-5),
])
def test_validate_lazy_raises_the_same_error_as_validate(bad, raw):
    ev = raw.events.with_row_index("_r").with_columns(
        pl.when(pl.col("_r") == bad["row"]).then(pl.lit(bad["value"]))
        .otherwise(pl.col(bad["column"])).cast(raw.events.schema[bad["column"]])
        .alias(bad["column"])).drop("_r")
    broken = RawData(ev, raw.items, raw.source)
    with pytest.raises(DataError) as eager:
        validate(broken)
    with pytest.raises(DataError) as lazy:
        validate_lazy(ev.lazy(), raw.items, "synthetic")
    assert str(lazy.value) == str(eager.value)
    assert f"row {bad['row']}, column '{bad['column']}'" in str(lazy.value)


def test_validate_lazy_report_matches_validate(raw):
    a, b = validate(raw).as_dict(), validate_lazy(raw.events.lazy(), raw.items,
                                                  "synthetic").as_dict()
    a["single_event_examples"].sort(), b["single_event_examples"].sort()
    assert a == b


def test_raw_files_errors_name_the_problem(tmp_path):
    with pytest.raises(DataError, match="no events.parquet"):
        load_raw("raw-files", tmp_path)
    with pytest.raises(DataError, match="needs a path"):
        load_raw("raw-files")
    (tmp_path / "events").mkdir()
    (tmp_path / "events" / "a.csv").write_text("user_id\n")
    (tmp_path / "events" / "b.parquet").write_text("")
    with pytest.raises(DataError, match=r"mixed formats \['.csv', '.parquet'\]"):
        load_raw("raw-files", tmp_path)


def test_synthetic_write_parquet_is_generate_in_blocks(tmp_path, monkeypatch):
    cfg = synthetic.SyntheticConfig(n_users=120, n_items=60, seed=1)
    world, whole = synthetic.generate(cfg)
    src = synthetic.write_parquet(cfg, tmp_path / "one")  # one block: exactly generate's events
    assert pl.read_parquet(tmp_path / "one" / "events").equals(whole.events)
    assert src["events_written"] == whole.events.height
    assert pl.read_parquet(tmp_path / "one" / "items.parquet").equals(whole.items)
    monkeypatch.setattr(synthetic, "BLOCK_USERS", 50)  # three blocks of 50, 50, 20 users
    synthetic.write_parquet(cfg, tmp_path / "three")
    parts = sorted((tmp_path / "three" / "events").glob("*.parquet"))
    assert [p.name for p in parts] == [f"part-0000{b}.parquet" for b in range(3)]
    blocks = pl.read_parquet(parts)
    assert blocks.equals(synthetic.simulate(world))  # in memory = on disk, block by block
    assert blocks["user_id"].unique().len() == 120
    assert json.loads((tmp_path / "three" / "source.json").read_text())["name"] == "synthetic"


def test_memory_budget_is_a_checked_config_value(tmp_path):
    assert load_config(None, ["memory_budget_gib=0.5"]).memory_budget_gib == 0.5
    with pytest.raises(ConfigError, match="memory_budget_gib"):
        load_config(None, ["memory_budget_gib=0"])
    assert chunk_rows(2.0) == 536_870 and chunk_rows(0.01) == 10_000 and chunk_rows(100) == 10**6


def test_a_small_budget_changes_chunking_not_results(raw, caplog):
    """0.001 GiB: 10,000-row chunks (the fixture's 16k session rows in two) and a warning."""
    assert chunk_rows(0.001) == 10_000
    ds = prepare(PrepareConfig(name="golden", memory_budget_gib=0.001, **CASES["loo"]), raw)
    assert ds.events.height > 10_000
    assert dataset_hashes(ds) == GOLDEN["loo"]
    assert "over memory_budget_gib = 0.001" in caplog.text
