import json
import sys
from pathlib import Path

from typer.testing import CliRunner

from onefeed.cli.sid import app

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from conftest import make_tiny_dataset  # noqa: E402


def test_build_and_inspect_smoke(tmp_path):
    seqs = [[0, 1, 2, 3, 4], [1, 2, 3, 4, 5], [2, 3, 4, 5, 6], [5, 6, 7, 0, 1]]
    make_tiny_dataset(seqs, n_items=8).save(tmp_path / "tiny" / "data")
    runner = CliRunner()
    result = runner.invoke(app, ["build", "--data", str(tmp_path / "tiny" / "data"),
                                 "--strategy", "content", "--quantizer", "rq_kmeans", "--quiet",
                                 "--set", f"cache_dir={tmp_path / 'cache'}",
                                 "--set", "codebook_size=4"])
    assert result.exit_code == 0, result.output
    out = tmp_path / "tiny" / "sid" / "content-rq_kmeans"
    assert (out / "sid_table.parquet").exists() and (out / "manifest.json").exists()
    result = runner.invoke(app, ["inspect", str(out)])
    assert result.exit_code == 0, result.output
    assert "collision rate" in result.output and "coherence" in result.output
    assert "behaviour agreement" in result.output  # the dataset recorded in the manifest
    report = json.loads((out / "sid_diagnostics.json").read_text())
    assert report["unique"] and (out / "sid_code_usage.png").exists()
    assert len(report["behaviour_agreement"]["valid_next"]) == 2


def test_unknown_override_is_rejected(tmp_path):
    make_tiny_dataset([[0, 1, 2, 3]], n_items=4).save(tmp_path / "d")
    result = CliRunner().invoke(app, ["build", "--data", str(tmp_path / "d"), "--set", "nope=1"])
    assert result.exit_code != 0


def test_prefix_share_is_a_build_strategy(tmp_path):
    seqs = [[0, 1, 2, 3, 4], [1, 2, 3, 4, 5], [2, 3, 4, 5, 6], [5, 6, 7, 0, 1]]
    make_tiny_dataset(seqs, n_items=8).save(tmp_path / "tiny" / "data")
    result = CliRunner().invoke(app, [
        "build", "--data", str(tmp_path / "tiny" / "data"), "--strategy", "prefix_share",
        "--quiet", "--set", f"cache_dir={tmp_path / 'cache'}", "--set", "codebook_size=4",
        "--set", "collab.dim=4", "--set", "joint.shared_levels=1",
        "--set", "joint.specific_levels=1"])
    assert result.exit_code == 0, result.output
    out = tmp_path / "tiny" / "sid" / "prefix_share-joint"
    info = json.loads((out / "sid_table.json").read_text())
    assert len(info["codebook_sizes"]) == 4  # shared, semantic, collab, disambiguation
    assert info["meta"]["prefix_share"]["shared_levels"] == [0]
    assert (out / "sid_semantic").is_dir() and (out / "sid_collab").is_dir()
