import json
import sys
from pathlib import Path

from onefeed.cli.bench_sid_matrix import markdown
from onefeed.sid.matrix import TableSpec, built_with, default_specs, resolve, run_matrix

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_build import dataset  # noqa: E402

SPECS = [TableSpec("collaborative-rq_kmeans", ("strategy=collaborative", "quantizer=rq_kmeans")),
         TableSpec("content-joint", ("strategy=content", "quantizer=joint",
                                     "joint.shared_levels=1", "joint.specific_levels=1"))]


def base(tmp_path):
    return ["codebook_size=4", "levels=2", "collab.dim=4", f"cache_dir={tmp_path / 'cache'}"]


def test_matrix_builds_checks_and_resumes(tmp_path):
    ds = dataset()
    rows = run_matrix(ds, tmp_path / "data", tmp_path / "sid", SPECS, base(tmp_path), {},
                      checks=True, progress=False)
    for name in ("collaborative-rq_kmeans", "content-joint"):
        row = rows[name]
        assert row["built_now"] and row["sid"]["unique"]
        assert row["checks"]["rebuild_identical"] and row["checks"]["reload_identical"]
        assert 0 <= row["sid"]["collision_rate"] <= 100
        assert len(row["sid"]["perplexity"]) == len(row["sid"]["codebook_sizes"])
    assert "sid_semantic" in rows["content-joint"] and "sid_collab" in rows["content-joint"]
    assert not (tmp_path / "sid" / ".matrix-scratch").exists()
    # second run: nothing rebuilt, checks reused for the same config hash
    again = run_matrix(ds, tmp_path / "data", tmp_path / "sid", SPECS, base(tmp_path), rows,
                       checks=True, progress=False)
    assert not any(r["built_now"] for r in again.values())
    assert all(r["checks"].get("reused") for r in again.values())
    # another config for the same directory is rebuilt
    changed = run_matrix(ds, tmp_path / "data", tmp_path / "sid", SPECS[:1],
                         [*base(tmp_path), "seed=1"], rows, checks=False, progress=False)
    assert changed["collaborative-rq_kmeans"]["built_now"]
    text = markdown({"dataset": "tiny", "command": "x", "commit": "c", "base": [],
                     "n_items": 10, "tables": json.loads(json.dumps(rows))})
    assert "| content-joint | sid_collab |" in text


def test_built_with_fills_defaults_added_later(tmp_path):
    ds = dataset()
    run_matrix(ds, tmp_path / "data", tmp_path / "sid", SPECS[:1], base(tmp_path), {},
               checks=False, progress=False)
    directory = tmp_path / "sid" / "collaborative-rq_kmeans"
    manifest = json.loads((directory / "manifest.json").read_text())
    del manifest["config"]["int8_text"]  # an artifact from before that field existed
    (directory / "manifest.json").write_text(json.dumps(manifest))
    assert built_with(directory, resolve(SPECS[0], base(tmp_path)))


def test_default_specs_cover_every_strategy_and_quantizer():
    names = [s.name for s in default_specs()]
    for strategy in ("content", "collaborative", "search", "multitask", "fused_concat",
                     "fused_svd", "separate"):
        assert f"{strategy}-rq_kmeans" in names and f"{strategy}-rqvae" in names
    assert {"content-joint", "search-joint", "multitask-joint", "prefix_share-joint",
            "content-joint-learned"} <= set(names)
    assert names.index("content-joint") < names.index("content-rqvae")  # rq_kmeans tables first


def test_built_with_rejects_vectors_made_at_another_precision(tmp_path):
    ds = dataset()
    spec = TableSpec("content-rq_kmeans", ("strategy=content", "quantizer=rq_kmeans"))
    run_matrix(ds, tmp_path / "data", tmp_path / "sid", [spec], base(tmp_path), {},
               checks=False, progress=False)
    directory = tmp_path / "sid" / "content-rq_kmeans"
    cfg = resolve(spec, base(tmp_path))
    manifest = json.loads((directory / "manifest.json").read_text())
    assert cfg.text_precision == "fp32"
    assert manifest["embeddings"]["content"]["encoder"].startswith("fp32-")
    assert built_with(directory, cfg)
    manifest["embeddings"]["content"]["encoder"] = "bf16-len256"
    (directory / "manifest.json").write_text(json.dumps(manifest))
    assert not built_with(directory, cfg)


def test_without_rebuild_checks_only_reload_is_checked(tmp_path):
    rows = run_matrix(dataset(), tmp_path / "data", tmp_path / "sid", SPECS[:1], base(tmp_path),
                      {}, checks=True, progress=False, rebuild=False)
    checks = rows["collaborative-rq_kmeans"]["checks"]
    assert checks["reload_identical"] is True and checks["rebuild_identical"] is None


def test_cli_writes_json_and_markdown_and_resumes(tmp_path):
    from typer.testing import CliRunner

    from onefeed.cli.bench import app

    dataset().save(tmp_path / "tiny" / "data")
    args = ["sid-matrix", "--data", str(tmp_path / "tiny" / "data"), "--only",
            "collaborative-rq_kmeans", "--codebook-size", "4", "--set", "collab.dim=4",
            "--set", f"cache_dir={tmp_path / 'cache'}", "--out", str(tmp_path / "res"), "--quiet"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    out = json.loads((tmp_path / "res" / "sid-matrix-tiny.json").read_text())
    row = out["tables"]["collaborative-rq_kmeans"]
    assert row["built_now"] and row["checks"]["rebuild_identical"]
    text = (tmp_path / "res" / "sid-matrix-tiny.md").read_text()
    assert "| collaborative-rq_kmeans | sid |" in text
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 0, again.output
    out = json.loads((tmp_path / "res" / "sid-matrix-tiny.json").read_text())
    assert not out["tables"]["collaborative-rq_kmeans"]["built_now"]
    assert len(out["commands"]) == 2
