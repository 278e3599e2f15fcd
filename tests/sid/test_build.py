import json
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from onefeed import config
from onefeed.sid.build import SidConfig, build, events_used, reencode
from onefeed.sid.table import SidTable

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from conftest import make_tiny_dataset  # noqa: E402

SEQS = [[0, 1, 2, 3, 4], [1, 2, 3, 4, 5], [2, 3, 4, 5, 6], [5, 6, 7, 0, 1], [3, 4, 5, 6, 7],
        [0, 2, 4, 6, 8], [1, 3, 5, 7, 9]]  # items 8 and 9 only appear in valid/test


def dataset():
    ds = make_tiny_dataset(SEQS, n_items=10)
    first = ["train"] * 8 + ["valid", "test"]
    return ds.__class__(ds.events, ds.items.with_columns(pl.Series("first_split", first)),
                        ds.users, ds.queries, ds.eval_queries, ds.manifest)


def cfg(*overrides, cache=None):
    extra = [f"cache_dir={cache}"] if cache else []
    return config.load(SidConfig, None, ["codebook_size=4", "levels=2", "rqvae.epochs=3",
                                         "rqvae.hidden=[16]", "rqvae.latent_dim=4",
                                         "collab.dim=4", *extra, *overrides])


@pytest.mark.parametrize("strategy,quantizer", [
    ("collaborative", "rq_kmeans"), ("collaborative", "rqvae"), ("separate", "rq_kmeans"),
    ("fused_svd", "rq_kmeans"), ("fused_concat", "rq_kmeans"), ("content", "joint")])
def test_build_is_unique_reproducible_and_reencodes(tmp_path, strategy, quantizer):
    ds = dataset()
    c = cfg(f"strategy={strategy}", f"quantizer={quantizer}", cache=tmp_path / "cache")
    a = build(ds, c, tmp_path / "a", progress=False)
    b = build(ds, c, tmp_path / "b", progress=False)
    assert a.is_unique() and a.n_items == 10
    assert np.array_equal(a.codes, b.codes)
    loaded = SidTable.load(tmp_path / "a")
    assert np.array_equal(loaded.codes, a.codes) and loaded.codebook_sizes == a.codebook_sizes
    # cold items (8, 9) re-encoded from the saved embeddings + codebooks: identical codes
    key, codes = next(iter(reencode(tmp_path / "a").items()))
    table = SidTable.load(tmp_path / "a" / key) if key != "sid" else loaded
    assert np.array_equal(codes, table.codes[:, :-1])
    manifest = json.loads((tmp_path / "a" / "manifest.json").read_text())
    assert manifest["events_used"]["split_counts"] == {"train": 21, "valid": 0, "test": 0}
    assert manifest["dataset"]["n_cold_items"] == 2


def test_joint_writes_two_tables_sharing_prefix(tmp_path):
    c = cfg("strategy=content", "quantizer=joint", "joint.shared_levels=1",
            "joint.specific_levels=1", cache=tmp_path / "cache")
    build(dataset(), c, tmp_path / "j", progress=False)
    sem, col = SidTable.load(tmp_path / "j" / "sid_semantic"), SidTable.load(
        tmp_path / "j" / "sid_collab")
    assert np.array_equal(sem.codes[:, 0], col.codes[:, 0])
    assert sem.is_unique() and col.is_unique()


def test_valid_and_test_events_do_not_change_ids(tmp_path):
    ds = dataset()
    shuffled = ds.events.with_columns(
        pl.when(pl.col("split") != "train").then((pl.col("item") + 3) % 10)
        .otherwise(pl.col("item")).alias("item"))
    other = ds.__class__(shuffled, ds.items, ds.users, ds.queries, ds.eval_queries, ds.manifest)
    c = cfg("strategy=collaborative")
    a = build(ds, c, tmp_path / "a", progress=False)
    b = build(other, c, tmp_path / "b", progress=False)
    assert np.array_equal(a.codes, b.codes)
    assert events_used(ds)["sha256"] == events_used(other)["sha256"]


def test_strategy_and_quantizer_are_checked():
    with pytest.raises(config.ConfigError):
        cfg("strategy=nonsense")
    with pytest.raises(ValueError, match="joint"):
        build(dataset(), cfg("strategy=fused_svd", "quantizer=joint"), "/tmp/never-written",
              progress=False)


def test_dataset_without_text_still_gets_ids(tmp_path):
    ds = dataset()
    blank = ds.items.with_columns(pl.lit(None, dtype=pl.Utf8).alias("title"),
                                  pl.lit(None, dtype=pl.Utf8).alias("brand"),
                                  pl.lit(None, dtype=pl.List(pl.Utf8)).alias("categories"))
    ds = ds.__class__(ds.events, blank, ds.users, ds.queries, ds.eval_queries, ds.manifest)
    table = build(ds, cfg("strategy=content", cache=tmp_path / "cache"), tmp_path / "t",
                  progress=False)
    assert table.is_unique()
    manifest = json.loads((tmp_path / "t" / "manifest.json").read_text())
    assert manifest["embeddings"]["content"]["fallback"] == "collaborative"


def test_prefix_share_strategy_builds_shared_then_both_specific_parts(tmp_path):
    c = cfg("strategy=prefix_share", "quantizer=joint", "joint.shared_levels=1",
            "joint.specific_levels=1", cache=tmp_path / "cache")
    table = build(dataset(), c, tmp_path / "p", progress=False)
    sem, col = SidTable.load(tmp_path / "p" / "sid_semantic"), SidTable.load(
        tmp_path / "p" / "sid_collab")
    # [shared, semantic-specific, collab-specific, disambiguation]
    assert table.n_levels == 4 and table.is_unique()
    assert np.array_equal(table.codes[:, :2], sem.codes[:, :2])
    assert np.array_equal(table.codes[:, 2], col.codes[:, 1])
    assert table.meta["prefix_share"]["collab_levels"] == [2]
    assert np.array_equal(SidTable.load(tmp_path / "p").codes, table.codes)
    assert np.array_equal(reencode(tmp_path / "p")["sid"], table.codes[:, :-1])
    with pytest.raises(ValueError, match="prefix_share"):
        build(dataset(), cfg("strategy=prefix_share"), tmp_path / "never", progress=False)


def test_learned_joint_build_keeps_the_output_format(tmp_path):
    c = cfg("strategy=content", "quantizer=joint", "joint.method=learned",
            "joint.shared_levels=1", "joint.specific_levels=1", "joint.dim=4",
            "joint.learned.hidden=[8]", "joint.learned.epochs=3", cache=tmp_path / "cache")
    a = build(dataset(), c, tmp_path / "a", progress=False)
    b = build(dataset(), c, tmp_path / "b", progress=False)
    assert np.array_equal(a.codes, b.codes) and a.is_unique()
    sem, col = SidTable.load(tmp_path / "a" / "sid_semantic"), SidTable.load(
        tmp_path / "a" / "sid_collab")
    assert np.array_equal(sem.codes[:, 0], col.codes[:, 0]) and np.array_equal(sem.codes,
                                                                                a.codes)
    codes = reencode(tmp_path / "a")
    assert np.array_equal(codes["sid_semantic"], sem.codes[:, :-1])
    assert np.array_equal(codes["sid_collab"], col.codes[:, :-1])
    manifest = json.loads((tmp_path / "a" / "manifest.json").read_text())
    assert manifest["quantiser"]["method"] == "learned"


def test_fit_sample_fits_on_a_sample_and_reencodes(tmp_path):
    ds = dataset()
    c = cfg("strategy=collaborative", "fit_sample=5", cache=tmp_path / "cache")
    table = build(ds, c, tmp_path / "a", progress=False)
    assert table.is_unique() and table.n_items == 10
    codes = reencode(tmp_path / "a")["sid"]
    assert np.array_equal(codes, table.codes[:, :-1])
    manifest = json.loads((tmp_path / "a" / "manifest.json").read_text())
    assert manifest["config"]["fit_sample"] == 5
    with pytest.raises(ValueError, match="fit_sample"):
        cfg("fit_sample=-1")
