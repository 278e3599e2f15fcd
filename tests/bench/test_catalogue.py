"""``onefeed bench catalogue`` on a tiny synthetic catalogue: measurements, report, targets."""

import json
import math

import numpy as np
from typer.testing import CliRunner

from onefeed.bench import catalogue
from onefeed.bench.catalogue import (GIB, CatalogueBenchConfig, markdown, run,
                                     synthetic_embeddings, targets)

TINY = dict(scales=(3000,), compare_at=(3000,), levels=2, codebook_size=16, fit_sample=1000,
            niter=5, n_clusters=50, requests=14, batch_users=8, batches=1, d_model=32,
            n_layers=1, n_heads=2, d_ff=64, text_sample=0)


def ok(n, **values):
    return {"n_items": n, "status": "ok", **values}


def test_targets_met_missed_and_never_met_without_a_measurement():
    good = ok(1_000_000, trie_bytes=GIB - 1, latency_p99_ms=30.0)
    t = targets([good])
    assert t["trie_bytes_1m"]["status"] == "met" and t["latency_p99_1m"]["status"] == "met"
    t = targets([ok(1_000_000, trie_bytes=GIB, latency_p99_ms=30.01)])  # "<" and "<=" edges
    assert t["trie_bytes_1m"]["status"] == "missed" and t["latency_p99_1m"]["status"] == "missed"
    for scales, why in (([ok(100_000, trie_bytes=1, latency_p99_ms=1)], "scale not run"),
                        ([{"n_items": 1_000_000, "status": "failed", "error": "MemoryError"}],
                         "scale failed"),
                        ([ok(1_000_000, trie_bytes=float("nan"))], "no value for")):
        for row in targets(scales).values():
            assert row["status"] == "not measured" and row["why"].startswith(why.split()[0])
    # a failed record keeps its numbers from counting even if some were filled in
    failed = {"n_items": 1_000_000, "status": "failed", "trie_bytes": 1, "latency_p99_ms": 1}
    assert {r["status"] for r in targets([failed]).values()} == {"not measured"}


def test_synthetic_embeddings_are_seeded_unit_vectors():
    cfg = CatalogueBenchConfig(dim=16, rank=4, n_clusters=5)
    seen = []
    x = synthetic_embeddings(70000, cfg, seen.append)
    assert x.shape == (70000, 16) and x.dtype == np.float32 and seen == [65536, 4464]
    assert np.allclose(np.linalg.norm(x, axis=1), 1, atol=1e-5)
    again = synthetic_embeddings(70000, cfg)
    other = synthetic_embeddings(70000, CatalogueBenchConfig(dim=16, rank=4, n_clusters=5, seed=1))
    assert np.array_equal(x, again) and not np.allclose(x, other)


MEASURE = """
import json
import numpy as np
from onefeed.bench.catalogue import measured, rss_bytes
out = {}
with measured(out, "phase"):  # > 32 MiB: always a fresh mmap, never reused heap pages
    block = np.ones(48 * 2**20 // 8)  # 48 MiB kept
    temp = np.ones(48 * 2**20 // 8)  # 48 MiB freed inside the phase
    del temp
out["after"] = rss_bytes()
print(json.dumps(out))
"""


def test_measured_records_time_and_memory():
    """In a fresh interpreter: RSS in a process that already ran other tests moves with their
    threads and caches, which made this flaky inside the suite."""
    import json
    import subprocess
    import sys

    res = subprocess.run([sys.executable, "-c", MEASURE], capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["phase_seconds"] > 0
    assert out["phase_peak_rss_bytes"] >= out["after"] + 40 * 2**20  # temp was resident
    assert out["phase_retained_bytes"] > 40 * 2**20


def test_run_measures_both_tries_and_a_failed_scale_is_recorded(monkeypatch):
    cfg = CatalogueBenchConfig(**{**TINY, "scales": (3000, 4000)})
    real = catalogue.run_scale

    def flaky(n, c, progress=None):
        if n == 4000:
            raise MemoryError("out of memory")
        return real(n, c, progress)

    monkeypatch.setattr(catalogue, "run_scale", flaky)
    r = run(cfg)
    small, failed = r["scales"]
    assert failed == {"n_items": 4000, "status": "failed", "error": "MemoryError: out of memory"}
    assert small["status"] == "ok" and small["identical_top_k"] == 1.0
    assert len(small["codebook_sizes"]) == 3 and small["fit_items"] == 1000
    for key in ("trie", "dense"):
        assert small[f"{key}_latency_ms"]["n"] == 4 and small[f"{key}_nbytes"] > 0
        assert 0 < small[f"{key}_step_trie_ms"]["mean"] < small[f"{key}_step_ms"]["mean"]
    assert small["dense_vs_trie"]["bytes"] == small["dense_bytes"] / small["trie_bytes"]
    assert {t["status"] for t in r["targets"].values()} == {"not measured"}
    r.update(commit="abc", machine={"cpu_model": "x", "cpu_count": 2, "memory_gib": 1})
    md = markdown(r)
    assert "| 4,000 | failed: MemoryError: out of memory |" in md
    assert "Old (DenseTrie) vs new (Trie) at 3,000 items" in md and "not measured" in md


def test_cli_writes_json_and_markdown(tmp_path, monkeypatch):
    from onefeed.cli.bench import app

    monkeypatch.setattr(catalogue, "CatalogueBenchConfig", lambda **kw: CatalogueBenchConfig(
        **{**TINY, **{k: v for k, v in kw.items() if k in ("scales", "seed")}}))
    out = tmp_path / "cat"
    res = CliRunner().invoke(app, ["catalogue", "--scales", "3000", "--seed", "1",
                                   "--out", str(out)])
    assert res.exit_code == 0, res.output
    doc = json.loads(out.with_suffix(".json").read_text())
    assert doc["benchmark"] == "catalogue" and doc["seed"] == 1 and doc["commit"]
    assert doc["machine"]["cpu_count"] and doc["scales"][0]["status"] == "ok"
    assert math.isfinite(doc["scales"][0]["trie_latency_ms"]["p99"])
    assert "## Targets" in out.with_suffix(".md").read_text()
    bad = CliRunner().invoke(app, ["catalogue", "--scales", "0", "--out", str(out)])
    assert bad.exit_code != 0 and "--scales" in bad.output


def test_minilm_throughput_is_measured_then_extrapolated():
    from onefeed.bench.catalogue import minilm_throughput

    r = minilm_throughput(CatalogueBenchConfig(scales=(1000, 10000), text_sample=8))
    assert r["status"] == "ok" and r["texts"] == 8 and r["texts_per_s"] > 0
    ext = r["extrapolated_seconds"]
    assert math.isclose(ext["10000"], 10 * ext["1000"]) and math.isclose(
        ext["1000"], 1000 / r["texts_per_s"])
    assert minilm_throughput(CatalogueBenchConfig(text_sample=0)) == {"status": "skipped"}
