"""KuaiRec 2.0 loader on small files in the real column layout (tests/fixtures/kuairec)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from onefeed.data.datasets import load_raw
from onefeed.data.prepare import PrepareConfig, prepare
from onefeed.data.schemas import ITEM_SCHEMA, RAW_EVENT_SCHEMA, DataError

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "kuairec"
HEADER = "user_id,video_id,play_duration,video_duration,time,date,timestamp,watch_ratio\n"


def test_small_matrix_positives_time_order_and_item_text():
    raw = load_raw("kuairec", FIX, matrix="small")
    ev = raw.events
    assert ev.schema == pl.Schema(RAW_EVENT_SCHEMA) and raw.items.schema == pl.Schema(ITEM_SCHEMA)
    # 9 rows: one without a timestamp, 3 below watch_ratio 2.0, 5 positives (2.0 itself counts)
    assert ev.select("user_id", "item_id").rows() == [("14", "3649"), ("14", "5262"),
                                                      ("21", "148"), ("21", "183"),
                                                      ("21", "3649")]
    assert ev["timestamp"].to_list() == [1593898149, 1593898543, 1594000862, 1594000862,
                                         1594080000]
    assert np.allclose(ev["strength"].to_list(), [2.063311, 2.407188, 2.488866, 2.0, 2.760743])
    # 183 (…862.100) came before 148 (…862.500) in the same second: order keeps the milliseconds
    order = dict(zip(ev["item_id"].filter(ev["user_id"] == "21").to_list(),
                     ev["order"].filter(ev["user_id"] == "21").to_list()))
    assert order["183"] < order["148"] < order["3649"]
    assert raw.source["name"] == "kuairec-small" and raw.source["has_timestamps"]
    assert (raw.source["rows"], raw.source["rows_without_timestamp"],
            raw.source["rows_below_threshold"], raw.source["positives"]) == (9, 1, 3, 5)
    items = {r["item_id"]: r for r in raw.items.to_dicts()}
    assert items["183"]["title"] == "海边日落, 太美了"  # quoted comma
    assert items["183"]["description"] == "今天去海边"
    assert items["183"]["categories"] == ["旅游", "风景", "海景"]
    assert items["183"]["tags"] == ["旅行", "日落"]
    assert items["148"]["description"] is None and items["148"]["categories"] == ["美食", "美食教程"]
    assert items["3649"]["title"] is None and items["3649"]["tags"] == []  # UNKNOWN, []
    assert items["9598"]["title"] == "每天一练\n坚持就是胜利"  # quoted newline
    assert items["1963"]["categories"] == ["feat 6"]  # no caption line: feat ids stand in


def test_threshold_zero_keeps_every_timed_view_and_big_is_the_default():
    raw = load_raw("kuairec", FIX, positive_threshold=0)
    assert raw.source["name"] == "kuairec-big" and raw.events.height == 7
    assert load_raw("kuairec", FIX).events["item_id"].to_list() == ["3649", "8234"]
    assert load_raw("kuairec", FIX, matrix="small", positive_threshold=1.0).events.height == 6


def test_data_subfolder_and_matrix_without_item_files(tmp_path):
    (tmp_path / "data").mkdir()
    shutil.copy(FIX / "big_matrix.csv", tmp_path / "data")
    raw = load_raw("kuairec", tmp_path)
    assert raw.items["title"].null_count() == raw.items.height == 2
    assert "items have ids only" in raw.source["notes"][-1]


def _matrix(tmp_path: Path, rows: str) -> Path:
    (tmp_path / "big_matrix.csv").write_text(HEADER + rows)
    return tmp_path


@pytest.mark.parametrize("rows, message", [
    ("0,1,1,1,t,d,1593878903.4,abc\n", "line 2, column 'watch_ratio': cannot read 'abc'"),
    ("0,1,1,1,t,d,1593878903.4,2.5\nx7,1,1,1,t,d,1593878903.4,2.5\n",
     "line 3, column 'user_id': cannot read 'x7'"),
    ("0,1,1,1,t,d,1593878903.4,nan\n", "line 2, column 'watch_ratio': nan is not a finite"),
    ("0,1,1,1,t,d,-5,2.5\n", "line 2, column 'timestamp': -5.0 is outside"),
    ("0,,1,1,t,d,1593878903.4,2.5\n", "line 2, column 'video_id' is missing"),
])
def test_bad_matrix_values_name_line_and_column(tmp_path, rows, message):
    with pytest.raises(DataError, match=message.replace("(", r"\(")):
        load_raw("kuairec", _matrix(tmp_path, rows))


def test_missing_files_columns_and_options(tmp_path):
    with pytest.raises(DataError, match=r"missing big_matrix.csv. Put big_matrix.csv or "
                                        r"small_matrix.csv"):
        load_raw("kuairec", tmp_path)
    (tmp_path / "big_matrix.csv").write_text("user_id,video_id,watch_ratio\n0,1,2.5\n")
    with pytest.raises(DataError, match=r"missing column\(s\) \['timestamp'\]"):
        load_raw("kuairec", tmp_path)
    with pytest.raises(DataError, match="matrix = 'huge'; expected 'big' or 'small'"):
        load_raw("kuairec", tmp_path, matrix="huge")
    with pytest.raises(DataError, match="positive_threshold = -1"):
        load_raw("kuairec", tmp_path, positive_threshold=-1)
    (tmp_path / "big_matrix.csv").write_bytes(HEADER.encode() + b"0,1,1,1,t,d,1.5,\xff2\n")
    with pytest.raises(DataError, match=r"big_matrix.csv: line 2, byte 16: not valid utf-8"):
        load_raw("kuairec", tmp_path)


def test_bad_item_files_name_the_row(tmp_path):
    folder = _matrix(tmp_path, "0,1,1,1,t,d,1593878903.4,2.5\n")
    (folder / "item_categories.csv").write_text('video_id,feat\n1,[3]\n2,"[a, 4]"\n')
    with pytest.raises(DataError, match=r"item_categories.csv: row 3, column 'feat': expected a "
                                        r"list of integer ids"):
        load_raw("kuairec", folder)
    (folder / "item_categories.csv").write_text("video_id,feat\n1,[3]\n1,[4]\n")
    with pytest.raises(DataError, match=r"rows 2 and 3, column 'video_id': duplicate id '1'"):
        load_raw("kuairec", folder)
    (folder / "item_categories.csv").unlink()
    (folder / "kuairec_caption_category.csv").write_bytes(b"video_id,caption\n1,ok\n2,\xe9t\xe9\n")
    with pytest.raises(DataError, match=r"line 3, byte 2: not valid utf-8"):
        load_raw("kuairec", folder)


def test_prepares_with_the_global_temporal_split(tmp_path):
    """OneFeed §4.1: KuaiRec through prepare with protocol = temporal (data/splits.py)."""
    rng = np.random.default_rng(0)
    rows = [f"{u},{v},1,1,t,d,{1_593_878_903 + 3600 * k + u + rng.random():.3f},"
            f"{rng.uniform(1.5, 4):.4f}\n"
            for u in range(12) for k, v in enumerate(rng.choice(15, 10, replace=False))]
    folder = _matrix(tmp_path, "".join(rows))
    cfg = PrepareConfig(name="kuairec-toy", dataset="kuairec", path=str(folder), k_core=2,
                        protocol="temporal", options={"positive_threshold": 2.0})
    ds = prepare(cfg)
    assert ds.manifest["split"]["protocol"] == "temporal"
    ev = ds.events.filter(pl.col("behaviour") == "rec_click")
    bounds = ds.manifest["split"]["boundaries"]
    assert ev.filter(pl.col("split") == "train")["timestamp"].max() < bounds["valid_start"]
    assert ev.filter(pl.col("split") == "test")["timestamp"].min() >= bounds["test_start"]
    assert (ds.events["strength"].drop_nulls() >= 2.0).all()


def test_shipped_prepare_configs_run_on_the_fixtures(tmp_path):
    """configs/prepare/kuairec.toml and lcrec-example.toml, pointed at the fixture folders."""
    from onefeed.data.prepare import load_config

    repo = FIX.parents[2]
    cfg = load_config(repo / "configs" / "prepare" / "kuairec.toml",
                      [f"path={json.dumps(str(FIX))}", "k_core=0", 'options.matrix="small"'])
    assert (cfg.protocol, cfg.options["positive_threshold"]) == ("temporal", 2.0)
    assert prepare(cfg).manifest["split"]["protocol"] == "temporal"
    cfg = load_config(repo / "configs" / "prepare" / "lcrec-example.toml",
                      [f"path={json.dumps(str(FIX.parent / 'lcrec'))}", "k_core=0",
                       'options.prefix="Toys"'])
    assert prepare(cfg).n_items == 5
