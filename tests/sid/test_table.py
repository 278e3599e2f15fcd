"""SidTable save/load: recorded hashes refuse changed files; a table only pairs with its dataset."""

import json
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from onefeed import config
from onefeed.artifacts import ArtifactError
from onefeed.sid.build import SidConfig, build, reencode
from onefeed.sid.table import SidTable, check_dataset, sid_fingerprint

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from conftest import make_tiny_dataset  # noqa: E402

SEQS = [[0, 1, 2, 3, 4], [1, 2, 3, 4, 5], [2, 3, 4, 5, 6], [5, 6, 7, 0, 1], [3, 4, 5, 6, 7]]
CODES = np.array([[0, 0], [0, 1], [1, 0], [1, 1], [2, 0], [2, 1]])


def _flip_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def _cfg(tmp_path) -> SidConfig:
    return config.load(SidConfig, None, ["strategy=collaborative", "codebook_size=4",
                                         "levels=2", "collab.dim=4",
                                         f"cache_dir={tmp_path / 'cache'}"])


def _built(tmp_path, seqs=SEQS, name="data"):
    from onefeed.data.schemas import Dataset

    data = make_tiny_dataset(seqs, n_items=8).save(tmp_path / name)
    out = tmp_path / f"sid-{name}"
    build(Dataset.load(data), _cfg(tmp_path), out, progress=False, data_dir=data)
    return data, out


def test_round_trip_records_the_parquet_hash(tmp_path):
    SidTable(CODES, (3, 2), {"x": 1}).save(tmp_path)
    info = json.loads((tmp_path / "sid_table.json").read_text())
    assert set(info["files"]) == {"sid_table.parquet"}
    loaded = SidTable.load(tmp_path)
    assert np.array_equal(loaded.codes, CODES) and loaded.meta == {"x": 1}


def test_a_flipped_byte_in_the_table_is_refused_naming_it(tmp_path):
    SidTable(CODES, (3, 2)).save(tmp_path)
    _flip_byte(tmp_path / "sid_table.parquet")
    with pytest.raises(ArtifactError, match=r"SID table .*sid_table.parquet does not match"):
        SidTable.load(tmp_path)


@pytest.mark.parametrize("edit", ["truncate", "permute"])
def test_a_truncated_or_permuted_table_is_refused(tmp_path, edit):
    SidTable(CODES, (3, 2)).save(tmp_path)
    frame = pl.read_parquet(tmp_path / "sid_table.parquet")
    if edit == "truncate":
        frame = frame.head(4)
    else:  # the same rows, items renumbered: every code moves to another item
        frame = frame.with_columns(pl.Series("item", [5, 4, 3, 2, 1, 0], dtype=pl.Int32))
    frame.write_parquet(tmp_path / "sid_table.parquet")
    with pytest.raises(ArtifactError, match="sid_table.parquet"):
        SidTable.load(tmp_path)
    info = json.loads((tmp_path / "sid_table.json").read_text())
    del info["files"]  # a table from before hashes: only the structural check can help
    (tmp_path / "sid_table.json").write_text(json.dumps(info))
    if edit == "truncate":
        frame.with_columns(pl.Series("item", [0, 1, 2, 5], dtype=pl.Int32)).write_parquet(
            tmp_path / "sid_table.parquet")
        with pytest.raises(ArtifactError, match="column 'item' is not 0..3"):
            SidTable.load(tmp_path)


@pytest.mark.parametrize("name", ["rq_kmeans_main.safetensors", "embeddings.safetensors",
                                  "sid_table.parquet"])
def test_a_flipped_byte_in_any_build_file_is_refused(tmp_path, name):
    _, out = _built(tmp_path)
    manifest = json.loads((out / "manifest.json").read_text())
    assert name in manifest["files"] and manifest["data_sha256"]
    _flip_byte(out / name)
    with pytest.raises(ArtifactError, match=rf"SID build .*{name} does not match"):
        SidTable.load(out)
    with pytest.raises(ArtifactError, match=name):
        reencode(out)


def test_a_sid_build_only_pairs_with_its_dataset(tmp_path):
    from onefeed.data.schemas import Dataset

    data, out = _built(tmp_path)
    check_dataset(out, data)
    check_dataset(SidTable.load(out), Dataset.load(data))
    other = make_tiny_dataset([list(reversed(s)) for s in SEQS], n_items=8).save(
        tmp_path / "other")
    with pytest.raises(ArtifactError, match=(
            rf"SID table {out} was built from dataset fingerprint \w+, but dataset {other} has "
            rf"\w+: rebuild the SIDs \(onefeed sid build --data {other} --force\)")):
        check_dataset(out, other)
    with pytest.raises(ArtifactError, match="was built from dataset fingerprint"):
        SidTable.load(out).check_dataset(Dataset.load(other))
    assert sid_fingerprint(out) == sid_fingerprint(out) and len(sid_fingerprint(out)) == 64


def test_a_legacy_build_is_checked_by_its_dataset_manifest_hash(tmp_path):
    data, out = _built(tmp_path)
    other = make_tiny_dataset([list(reversed(s)) for s in SEQS], n_items=8)
    other = other.__class__(other.events, other.items, other.users, other.queries,
                            other.eval_queries, dict(other.manifest, seed=7)).save(tmp_path / "o")
    manifest = json.loads((out / "manifest.json").read_text())
    del manifest["data_sha256"]  # as an older onefeed wrote it
    (out / "manifest.json").write_text(json.dumps(manifest))
    info = json.loads((out / "sid_table.json").read_text())
    del info["meta"]["data_sha256"]
    (out / "sid_table.json").write_text(json.dumps(info))
    check_dataset(out, data)
    with pytest.raises(ArtifactError, match=r"fingerprint \(manifest\)"):
        check_dataset(out, other)


def test_an_item_count_mismatch_is_refused_even_without_fingerprints(tmp_path):
    SidTable(CODES, (3, 2)).save(tmp_path / "sid")
    data = make_tiny_dataset(SEQS, n_items=8).save(tmp_path / "data")
    with pytest.raises(ArtifactError, match=r"\(6 items\).*\(8 items\)"):
        check_dataset(tmp_path / "sid", data)


def test_cli_sid_build_needs_force_to_replace_and_refuses_foreign_dirs(tmp_path):
    from onefeed.cli.sid import app

    data = make_tiny_dataset(SEQS, n_items=8).save(tmp_path / "data")
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.txt").write_text("keep")
    base = ["build", "--data", str(data), "--strategy", "collaborative", "--quiet",
            "--set", "codebook_size=4", "--set", "collab.dim=4", "--set", "levels=2"]
    runner = CliRunner()
    res = runner.invoke(app, [*base, "--out", str(mine)])
    assert res.exit_code == 1 and "not a onefeed SID build" in res.output
    assert (mine / "thesis.txt").read_text() == "keep"
    res = runner.invoke(app, [*base, "--out", str(data)])
    assert res.exit_code == 1 and "overlaps the input" in res.output
    out = tmp_path / "sid"
    assert runner.invoke(app, [*base, "--out", str(out)]).exit_code == 0
    res = runner.invoke(app, [*base, "--out", str(out)])
    assert res.exit_code == 1 and "pass --force" in res.output
    assert runner.invoke(app, [*base, "--out", str(out), "--force"]).exit_code == 0


def test_training_refuses_a_sid_table_from_another_dataset(tmp_path):
    """Issue 19: a re-prepared dataset under SIDs built from the old one stops at the start."""
    from onefeed.train import rec
    from onefeed.data.schemas import Dataset

    _, out = _built(tmp_path)
    other = make_tiny_dataset([list(reversed(s)) for s in SEQS], n_items=8).save(tmp_path / "o")
    with pytest.raises(ArtifactError, match="rebuild the SIDs"):
        rec.train(Dataset.load(other), SidTable.load(out), rec.load_run_config(None),
                  tmp_path / "run")
    assert not (tmp_path / "run").exists()

