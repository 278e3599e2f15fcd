"""``onefeed bench amazon --category X``: raw P5 files of a category without item text ->
prepared data, collaborative-only semantic IDs, trained rows, that category's references."""

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from onefeed.cli import app


def write_category(folder, n_users=40, n_items=24, seed=0):
    """user_sequence.txt only (no items.jsonl.gz: no item text), 6-9 items per user."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    lines = []
    for u in range(n_users):
        start = rng.integers(n_items)
        seq = [(start + 2 * i) % n_items for i in range(6 + u % 4)]
        lines.append(f"U{u} " + " ".join(f"B{i:04d}" for i in seq))
    (folder / "user_sequence.txt").write_text("\n".join(lines) + "\n")


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("ONEFEED_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("ONEFEED_RESULTS", str(tmp_path / "results"))
    write_category(tmp_path / "raw" / "amazon2014-Toys")
    return tmp_path


def test_a_category_without_text_runs_end_to_end(env):
    args = ["bench", "amazon", "--category", "Toys", "--raw", str(env / "raw" / "amazon2014-Toys"),
            "--quick", "--models", "pop,sasrec,tiger", "--sid-set", "codebook_size=4"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    sid_manifest = json.loads((env / "runs" / "amazon-toys" / "sid" / "content-rq_kmeans" /
                               "manifest.json").read_text())
    assert sid_manifest["embeddings"]["content"]["fallback"] == "collaborative"  # no text
    doc = json.loads((env / "results" / "amazon-toys" / "results.json").read_text())
    assert doc["suite"] == "amazon-toys" and set(doc["models"]) == {"pop", "sasrec", "tiger"}
    assert doc["dataset"]["n_items"] == 24 and doc["dataset"]["n_cases"] == 40
    for row in doc["models"].values():
        assert 0.0 <= row["metrics"]["recall@10"]["mean"] <= 1.0
    assert [(r["name"], r["metrics"]["recall@10"]) for r in doc["references"]] == [
        ("TIGER (paper)", 0.0712)]  # Toys only: no Beauty or Sports rows
    assert (env / "runs" / "amazon-toys" / "model" / "bench-tiger" / "seed0" / "best").is_dir()
    report = (env / "results" / "amazon-toys" / "report.md").read_text()
    assert "0.0712" in report and "0.0400" not in report

    again = CliRunner().invoke(app, args[:-4] + ["--models", "pop"])
    assert again.exit_code == 0, again.output
    assert "using prepared data" in again.output and "using semantic IDs" in again.output


def test_bad_category_and_missing_files_are_named(env):
    res = CliRunner().invoke(app, ["bench", "amazon", "--category", "../etc"])
    assert res.exit_code != 0 and "letters, digits and '_' only" in res.output
    res = CliRunner().invoke(app, ["bench", "amazon", "--category", "Garden",
                                   "--raw", str(env / "raw" / "nowhere")])
    assert res.exit_code != 0
    assert "user_sequence.txt" in str(res.exception) + res.output
