import json
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from onefeed.config import ConfigError
from onefeed.data import leakage
from onefeed.data import prepare as prepare_mod
from onefeed.data.prepare import LeakageError, PrepareConfig, load_config, prepare, prepare_to_dir
from onefeed.data.schemas import EVENT_SCHEMA, Dataset
from onefeed.data.views import rec_cases

REPO = Path(__file__).resolve().parents[2]
CONFIGS = REPO / "configs" / "prepare"


def test_prepare_end_to_end_and_round_trip(toy_raw, tmp_path):
    ds, path = prepare_to_dir(PrepareConfig(name="toy", k_core=2), tmp_path / "out", toy_raw)
    assert dict(ds.events.schema) == EVENT_SCHEMA
    assert ds.n_users == 30 and ds.n_items == 20
    m = ds.manifest
    for key in ("source", "filters", "counts", "seed", "seeds", "protocol", "split", "queries",
                "eval_queries", "sessions", "leakage", "config", "onefeed_version", "git_commit",
                "item_table_sha256", "max_history"):
        assert key in m, key
    assert m["filters"]["steps"][0]["events"] == toy_raw.events.height
    behaviours = set(ds.events["behaviour"])
    assert behaviours == {"rec_click", "search_query", "search_click"}
    loaded = Dataset.load(path)
    assert loaded.events.equals(ds.events) and loaded.queries.equals(ds.queries)
    assert json.loads((path / "manifest.json").read_text())["leakage"] == m["leakage"]
    assert leakage.check(loaded) == []
    # deterministic under the same seed
    again = prepare(PrepareConfig(name="toy", k_core=2), toy_raw)
    assert again.events.equals(ds.events) and again.eval_queries.equals(ds.eval_queries)


def test_temporal_on_order_only_data_is_a_clear_error(toy_raw_factory):
    raw = toy_raw_factory(timestamps=False)
    with pytest.raises(Exception, match="needs timestamps"):
        prepare(PrepareConfig(protocol="temporal", k_core=0), raw)


def test_failing_leakage_check_writes_nothing(toy_raw, tmp_path, monkeypatch):
    real_eval = prepare_mod.eval_queries

    def leaky_eval(events, queries, seed):  # evaluation drawn from TRAIN queries: a leak
        return real_eval(events, queries.with_columns(pl.lit("test").alias("split")), seed)

    monkeypatch.setattr(prepare_mod, "eval_queries", leaky_eval)
    out = tmp_path / "leaky"
    with pytest.raises(LeakageError) as info:
        prepare_to_dir(PrepareConfig(name="toy", k_core=2), out, toy_raw)
    assert info.value.findings[0].check == "pseudo_query_sources"
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_config_files_load_and_reject_unknown_keys(tmp_path):
    for path in sorted(CONFIGS.glob("*.toml")):
        cfg = load_config(path)
        assert cfg.name and cfg.dataset
    beauty = load_config(CONFIGS / "beauty.toml", ["k_core=0", "queries.holdout_frac=0.5"])
    assert (beauty.k_core, beauty.max_history, beauty.protocol) == (0, 20, "leave_one_out")
    assert beauty.queries.holdout_frac == 0.5 and beauty.options == {"category": "Beauty"}
    with pytest.raises(ConfigError, match="unknown key"):
        load_config(CONFIGS / "beauty.toml", ["kcore=3"])


def test_cli_prepare_check_stats(toy_raw, tmp_path, monkeypatch):
    from onefeed.cli.data import app

    monkeypatch.setattr(prepare_mod, "load_raw_for", lambda cfg: toy_raw)
    runner = CliRunner()
    out = tmp_path / "ds"
    res = runner.invoke(app, ["prepare", "--out", str(out), "--set", "k_core=2", "--set",
                              "name=toy"])
    assert res.exit_code == 0, res.output
    assert (out / "manifest.json").exists()
    assert runner.invoke(app, ["check", str(out)]).exit_code == 0
    res = runner.invoke(app, ["stats", str(out)])
    assert res.exit_code == 0 and "search_click" in res.output and "weak queries" in res.output
    bad = runner.invoke(app, ["prepare", "--set", "protocol=sideways"])
    assert bad.exit_code == 1 and "Traceback" not in bad.output
    assert "protocol" in bad.output
    missing = runner.invoke(app, ["check", str(tmp_path / "nope")])
    assert missing.exit_code == 1 and "no manifest.json" in missing.output
    for cmd in ("prepare", "check", "stats", "show"):
        assert runner.invoke(app, [cmd, "--help"]).exit_code == 0
    # a planted leak in a saved dataset -> `check` fails and names the rows
    ds = Dataset.load(out)
    evq = ds.eval_queries.with_columns(pl.lit(999, dtype=pl.Int32).alias("item"))
    Dataset(ds.events, ds.items, ds.users, ds.queries, evq, ds.manifest).save(tmp_path / "leaky")
    res = runner.invoke(app, ["check", str(tmp_path / "leaky")])
    assert res.exit_code == 1 and "retrieval_corpus" in res.output


# ------------------------------------------------------------------ real data


def _load_raw(name, **options):
    try:
        from onefeed.data.datasets import load_raw
    except ImportError:
        pytest.skip("loaders (onefeed.data.datasets.load_raw) not available")
    return load_raw(name, **options)


def _need(sub):
    """Skip when the shared raw data is absent (same root the loaders default to)."""
    from onefeed.paths import raw_root

    if not (raw_root() / sub).exists():
        pytest.skip(f"real data not found at {raw_root() / sub} (set ONEFEED_DATA_ROOT)")


def _cfg(file):
    return load_config(CONFIGS / file)


@pytest.mark.realdata
def test_beauty_tiger_protocol():
    _need("amazon2014-Beauty")
    cfg = _cfg("beauty.toml")
    ds = prepare(cfg, _load_raw(cfg.dataset, **cfg.options))
    c = ds.manifest["counts"]
    assert (c["users"], c["items"], c["item_events"]) == (22_363, 12_101, 198_502)
    steps = ds.manifest["filters"]["steps"]
    assert steps[0]["item_events"] == steps[-1]["item_events"] == 198_502  # 5-core is a no-op
    test = rec_cases(ds, "test", cfg.max_history)
    assert len(test.targets) == 22_363 and test.history.shape == (22_363, 20)
    assert len(rec_cases(ds, "valid", cfg.max_history).targets) == 22_363
    _eval_pairs_disjoint_from_training(ds)
    assert ds.eval_queries.filter(pl.col("split") == "test").height == 22_363
    assert ds.manifest["has_timestamps"] is False


@pytest.mark.realdata
def test_ml100k_prepared():
    _need("ml-100k")
    cfg = _cfg("ml-100k.toml")
    ds = prepare(cfg, _load_raw(cfg.dataset, **cfg.options))
    c = ds.manifest["counts"]
    assert c["users"] == 943 and ds.manifest["filters"]["steps"][0]["item_events"] == 100_000
    assert c["items"] == ds.items.height < 1_682
    assert len(rec_cases(ds, "test", 50).targets) == 943
    _eval_pairs_disjoint_from_training(ds)
    assert ds.eval_queries.height > 0.9 * 2 * 943


def _eval_pairs_disjoint_from_training(ds):
    assert ds.eval_queries.height > 0
    train = leakage.train_pairs(ds)
    from onefeed.data.weak_queries import normalize_series

    ev = ds.eval_queries.select("item", normalize_series(ds.eval_queries["query"]).alias("query"))
    assert ev.join(train, on=["item", "query"], how="semi").height == 0
    assert leakage.check(ds) == []


def test_review_queries_from_amazon_raw_fixture():
    fixture = REPO / "tests" / "fixtures" / "amazon_raw"
    if not (fixture / "reviews_Toys_5.json.gz").exists():
        pytest.skip("amazon-raw fixture files not present")
    raw = _load_raw("amazon-raw", path=fixture, category="Toys")
    ds = prepare(PrepareConfig(name="toys", dataset="amazon-raw", k_core=0,
                               protocol="temporal"), raw)
    rev = ds.queries.filter(pl.col("source") == "review")
    assert rev.height > 0 and rev["evidence"].null_count() == 0
    cited = rev.explode("evidence").unnest("evidence").join(
        ds.events, on=["user", "position"], suffix="_ev")
    assert cited.height == rev["evidence"].list.len().sum()
    assert set(cited["split_ev"]) == {"train"} and (cited["item"] == cited["item_ev"]).all()
    assert ds.manifest["leakage"]["pseudo_query_sources"] == "pass"


def test_synthetic_world_prepares():
    raw = _load_raw("synthetic", n_users=150, n_items=120, seed=1)
    cfg = load_config(CONFIGS / "synthetic.toml", ["options.n_users=150"])
    ds = prepare(cfg, raw)
    assert ds.manifest["sessions"]["real_search_events_kept"] > 0
    q = ds.events.filter(pl.col("behaviour") == "search_query").height
    c = ds.events.filter(pl.col("behaviour") == "search_click").height
    assert q > 0 and abs(q - c) <= 0.01 * c
    assert leakage.check(ds) == []


def test_bench_prepare_case_runs_in_a_subprocess(tmp_path):
    from onefeed.cli.bench_prepare import _markdown, run_case

    rec = run_case(CONFIGS / "synthetic.toml", ["options.n_users=120", "options.n_items=80"])
    assert rec["ok"], rec
    assert rec["raw_events"] > 0 and rec["peak_rss_gib"] > 0.05 and rec["total_s"] > 0
    assert set(rec["leakage"].values()) == {"pass"}
    text = _markdown({"created_at": "now", "git_commit": "x", "machine": {}, "seed": 0,
                      "command": "c", "load_average_before": [0, 0, 0],
                      "load_average_after": [0, 0, 0], "cases": {"synthetic-tiny": rec}})
    assert "| synthetic-tiny |" in text


@pytest.mark.realdata
def test_ml100k_temporal_split():
    _need("ml-100k")
    cfg = _cfg("ml-100k-temporal.toml")
    ds = prepare(cfg, _load_raw(cfg.dataset, **cfg.options))
    b = ds.manifest["split"]["boundaries"]
    items = ds.events.filter(pl.col("behaviour") != "search_query")
    assert items.filter(pl.col("split") == "train")["timestamp"].max() < b["valid_start"]
    assert items.filter(pl.col("split") == "test")["timestamp"].min() >= b["test_start"]
    share = items.filter(pl.col("split") == "test").height / items.height
    assert 0.09 <= share <= 0.11
    cold = ds.items.filter(pl.col("first_split") != "train").height
    assert cold == sum(ds.manifest["split"]["cold_items"].values()) > 0
    assert leakage.check(ds) == []
    explicit = load_config(CONFIGS / "ml-100k-temporal.toml",
                           [f"boundaries=[{b['valid_start']}, {b['test_start']}]"])
    again = prepare(explicit, _load_raw(cfg.dataset, **cfg.options))
    assert again.events.equals(ds.events)


def test_cli_fetch_reports_a_checksum_mismatch_without_writing(tmp_path, monkeypatch):
    """`onefeed data fetch`: a corrupt download is refused, nothing is left behind."""
    import io

    from typer.testing import CliRunner

    from onefeed.cli.data import app
    from onefeed.data.datasets import fetch as fetch_mod

    class Response(io.BytesIO):
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    monkeypatch.setattr(fetch_mod.urllib.request, "urlopen",
                        lambda *a, **k: Response(b"not the real zip"))
    result = CliRunner().invoke(app, ["fetch", "ml-100k", "--dest", str(tmp_path)])
    assert result.exit_code == 1
    assert "sha256 mismatch" in result.output
    assert not (tmp_path / "ml-100k").exists()


# ------------------------------------------------------------------ output safety and verification
def _flip_byte(path: Path, offset: int | None = None) -> None:
    data = bytearray(path.read_bytes())
    i = len(data) // 2 if offset is None else offset
    data[i] ^= 0xFF
    path.write_bytes(bytes(data))


def test_prepare_never_deletes_a_directory_it_did_not_make(toy_raw, tmp_path):
    from onefeed.artifacts import OutputError

    out = tmp_path / "mine"
    out.mkdir()
    (out / "thesis.txt").write_text("years of work")
    with pytest.raises(OutputError, match="not a onefeed dataset"):
        prepare_to_dir(PrepareConfig(name="toy", k_core=2), out, toy_raw)
    assert (out / "thesis.txt").read_text() == "years of work"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine"]
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError, match="is a file, not a directory"):
        prepare_to_dir(PrepareConfig(name="toy", k_core=2), tmp_path / "file", toy_raw)
    assert (tmp_path / "file").read_text() == "x"


def test_prepare_refuses_the_raw_input_as_output(tmp_path):
    import shutil

    from onefeed.artifacts import OutputError

    raw = tmp_path / "raw"
    shutil.copytree(REPO / "tests" / "fixtures" / "generic", raw)
    before = {p.name: p.read_bytes() for p in raw.iterdir()}
    cfg = PrepareConfig(name="g", dataset="generic", path=str(raw), k_core=0,
                        options={"config": str(raw / "events_jsonl.toml")})
    for out in (raw, raw / "prepared", tmp_path):
        with pytest.raises(OutputError, match="overlaps the input"):
            prepare_to_dir(cfg, out)
    with pytest.raises(OutputError, match="overlaps the input"):  # the config's folder too
        prepare_to_dir(PrepareConfig(name="toy"), tmp_path / "cfg" / "out",
                       inputs=[tmp_path / "cfg"])
    elsewhere = PrepareConfig(name="g", dataset="generic", path=str(tmp_path / "other"),
                              options={"config": str(raw / "events_jsonl.toml")})
    with pytest.raises(OutputError, match="overlaps the input"):  # a loader's mapping file
        prepare_to_dir(elsewhere, raw)
    assert {p.name: p.read_bytes() for p in raw.iterdir()} == before


def test_replacing_a_prepared_dataset_needs_replace(toy_raw, tmp_path):
    from onefeed.artifacts import OutputError

    out = tmp_path / "data"
    prepare_to_dir(PrepareConfig(name="toy", k_core=2), out, toy_raw, replace=False)
    before = (out / "events.parquet").read_bytes()
    with pytest.raises(OutputError, match="already holds a onefeed dataset: pass --force"):
        prepare_to_dir(PrepareConfig(name="toy", k_core=2, seed=1), out, toy_raw, replace=False)
    assert (out / "events.parquet").read_bytes() == before
    ds, _ = prepare_to_dir(PrepareConfig(name="toy", k_core=2, seed=1), out, toy_raw)
    assert Dataset.load(out).manifest["seed"] == 1


@pytest.mark.parametrize("name", ["events", "items", "users", "queries", "eval_queries"])
def test_a_flipped_byte_in_any_dataset_file_is_refused_naming_it(toy_raw, tmp_path, name):
    from onefeed.artifacts import ArtifactError

    _, out = prepare_to_dir(PrepareConfig(name="toy", k_core=2), tmp_path / "data", toy_raw)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["kind"] == "dataset"
    assert set(manifest["files"]) == {f"{n}.parquet" for n in
                                      ("events", "items", "users", "queries", "eval_queries")}
    _flip_byte(out / f"{name}.parquet")
    with pytest.raises(ArtifactError, match=rf"dataset .*data: .*{name}.parquet does not match"):
        Dataset.load(out)


def test_rows_removed_from_events_are_refused(toy_raw, tmp_path):
    from onefeed.artifacts import ArtifactError

    _, out = prepare_to_dir(PrepareConfig(name="toy", k_core=2), tmp_path / "data", toy_raw)
    events = pl.read_parquet(out / "events.parquet")
    events.head(events.height - 5).write_parquet(out / "events.parquet")
    with pytest.raises(ArtifactError, match="events.parquet has .* bytes, its manifest says"):
        Dataset.load(out)


def test_a_dataset_without_file_hashes_loads_with_one_warning(toy_raw, tmp_path, caplog):
    from onefeed.data.schemas import dataset_fingerprint

    _, out = prepare_to_dir(PrepareConfig(name="toy", k_core=2), tmp_path / "data", toy_raw)
    fp = dataset_fingerprint(out)
    manifest = json.loads((out / "manifest.json").read_text())
    del manifest["files"]
    (out / "manifest.json").write_text(json.dumps(manifest))
    with caplog.at_level("WARNING", logger="onefeed"):
        Dataset.load(out)
        Dataset.load(out)
    assert caplog.text.count("has no file hashes") == 1
    assert dataset_fingerprint(out) == fp  # the same bytes give the same fingerprint


def test_cli_prepare_force_and_check_catches_modified_events(toy_raw, tmp_path, monkeypatch):
    from onefeed.cli.data import app

    monkeypatch.setattr(prepare_mod, "load_raw_for", lambda cfg: toy_raw)
    runner = CliRunner()
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.txt").write_text("keep")
    res = runner.invoke(app, ["prepare", "--out", str(mine), "--set", "k_core=2"])
    assert res.exit_code == 1 and "not a onefeed dataset" in res.output
    assert (mine / "thesis.txt").read_text() == "keep"
    out = tmp_path / "ds"
    args = ["prepare", "--out", str(out), "--set", "k_core=2"]
    assert runner.invoke(app, args).exit_code == 0
    res = runner.invoke(app, args)
    assert res.exit_code == 1 and "pass --force" in res.output and "Traceback" not in res.output
    assert runner.invoke(app, [*args, "--force"]).exit_code == 0
    res = runner.invoke(app, ["check", str(out)])
    assert res.exit_code == 0 and "files_match_manifest" in res.output
    events = pl.read_parquet(out / "events.parquet")
    events.filter(pl.col("split") != "test").write_parquet(out / "events.parquet")
    res = runner.invoke(app, ["check", str(out)])
    assert res.exit_code == 1 and "events.parquet" in res.output and "FAIL" in res.output


def test_prepare_to_dir_returns_the_saved_manifest(toy_raw, tmp_path):
    from onefeed.data.schemas import dataset_fingerprint

    ds, path = prepare_to_dir(PrepareConfig(name="toy", k_core=2), tmp_path / "d", toy_raw)
    assert ds.manifest["kind"] == "dataset" and dataset_fingerprint(ds) == dataset_fingerprint(path)


def test_a_dataset_written_by_an_older_onefeed_is_verified_and_replaceable(toy_raw, tmp_path):
    """Older manifests: no "kind", ``files`` as ``{name: sha256}``, no atomic_dir marker."""
    from onefeed.artifacts import MARKER, ArtifactError, artifact_kind
    from onefeed.data.schemas import dataset_fingerprint

    _, out = prepare_to_dir(PrepareConfig(name="toy", k_core=2), tmp_path / "data", toy_raw)
    fp = dataset_fingerprint(out)
    manifest = json.loads((out / "manifest.json").read_text())
    del manifest["kind"]
    manifest["files"] = {n: w["sha256"] for n, w in manifest["files"].items()}
    (out / "manifest.json").write_text(json.dumps(manifest))
    (out / MARKER).unlink()
    assert artifact_kind(out) == "dataset" and dataset_fingerprint(out) == fp
    Dataset.load(out)
    prepare_to_dir(PrepareConfig(name="toy", k_core=2, seed=3), out, toy_raw)  # same kind
    assert Dataset.load(out).manifest["seed"] == 3
    _flip_byte(out / "users.parquet")
    with pytest.raises(ArtifactError, match="users.parquet"):
        Dataset.load(out)


def test_cli_check_names_a_corrupted_file_that_no_longer_reads(toy_raw, tmp_path):
    from onefeed.cli.data import app

    _, out = prepare_to_dir(PrepareConfig(name="toy", k_core=2), tmp_path / "data", toy_raw)
    raw = (out / "items.parquet").read_bytes()
    (out / "items.parquet").write_bytes(raw[: len(raw) // 3])  # footer gone: unreadable
    res = CliRunner().invoke(app, ["check", str(out)])
    assert res.exit_code == 1 and "items.parquet has" in res.output
    assert "Traceback" not in res.output
