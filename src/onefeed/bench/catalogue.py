"""``onefeed bench catalogue``: SID build, trie build and constrained beam search at 10^5-10^6 items.

Per scale (synthetic items: 384-d unit vectors from a clustered Gaussian mixture, the shape of
MiniLM item embeddings): RQ-KMeans SID build (faiss k-means on a seeded sample, then every item
assigned in batches, then the disambiguation level) with its time and peak RSS; the CSR
``Trie``'s build time and bytes; per-step decode time and single-request latency at beam 20
with a random-weight ``GenerativeRecommender`` of the generative core's shape (weights do not
change the work a step does). At the ``compare_at`` scales the dense-table ``DenseTrie`` it
replaced is built and decoded side by side, requests alternating between the two. MiniLM text-embedding
throughput is measured on a small text sample and extrapolated (stated as such: the items here
are synthetic vectors, not text).

Peak RSS is the process's high-water mark (``VmHWM``) reset before each phase by writing 5 to
``/proc/self/clear_refs``; "retained" is RSS after a phase minus before it (after ``gc``).
``targets`` says met / missed from measured numbers only; a scale that failed or was not run
is "not measured", never met.
"""

from __future__ import annotations

import gc
import math
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

GIB = 2**30
TARGETS = {  # name -> (scale, measured key, limit, comparison, unit)
    "trie_bytes_1m": (1_000_000, "trie_bytes", 1 * GIB, "<", "bytes"),
    "latency_p99_1m": (1_000_000, "latency_p99_ms", 30.0, "<=", "ms"),
}


@dataclass
class CatalogueBenchConfig:
    scales: tuple[int, ...] = (100_000, 1_000_000)
    compare_at: tuple[int, ...] = (100_000, 1_000_000)  # scales where DenseTrie runs too
    dim: int = 384
    n_clusters: int = 2000  # mixture components of the synthetic embeddings
    rank: int = 48  # within-cluster variation lives in a shared rank-48 subspace ...
    spread: float = 0.5  # ... with this norm (relative to the unit-norm centres) ...
    noise: float = 0.02  # ... plus isotropic noise of this norm
    levels: int = 3
    codebook_size: int = 256
    fit_sample: int = 100_000  # RQ-KMeans fitted on this many items, the rest assigned
    niter: int = 20
    balanced: bool = False  # faiss k-means (True: OneRec balanced k-means, slower)
    beam: int = 20
    requests: int = 300  # single-user requests per trie (first 10 are warm-up, not counted)
    batch_users: int = 256  # users of the batched per-step figure
    batches: int = 4
    history: int = 20
    d_model: int = 128
    n_layers: int = 2
    n_heads: int = 2
    d_ff: int = 512
    text_sample: int = 256  # texts for the MiniLM throughput figure (0 = skip)
    seed: int = 0


# ---- measuring -------------------------------------------------------------------------------
def _status_kib(field: str) -> int | None:
    try:
        text = Path("/proc/self/status").read_text()
    except OSError:
        return None
    m = re.search(rf"^{field}:\s+(\d+) kB", text, re.M)
    return int(m.group(1)) if m else None


def rss_bytes() -> int:
    kib = _status_kib("VmRSS")
    return kib * 1024 if kib is not None else 0


def reset_peak() -> bool:
    """Reset the RSS high-water mark (Linux >= 4.0); False if this kernel does not allow it."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


@contextmanager
def measured(out: dict[str, Any], key: str) -> Iterator[None]:
    """Record ``<key>_seconds``, ``<key>_peak_rss_bytes`` (process high-water mark during the
    block) and ``<key>_retained_bytes`` (RSS growth across it) into ``out``."""
    gc.collect()
    exact = reset_peak()
    before = rss_bytes()
    t0 = time.perf_counter()
    yield
    out[f"{key}_seconds"] = time.perf_counter() - t0
    peak = _status_kib("VmHWM")
    gc.collect()
    out[f"{key}_peak_rss_bytes"] = peak * 1024 if peak is not None else None
    out[f"{key}_retained_bytes"] = rss_bytes() - before
    if not exact:
        out[f"{key}_peak_note"] = "peak could not be reset: process high-water mark so far"


def percentiles(ms: list[float]) -> dict[str, float]:
    a = np.asarray(ms, dtype=np.float64)
    return {"p50": float(np.percentile(a, 50)), "p99": float(np.percentile(a, 99)),
            "mean": float(a.mean()), "n": int(len(a))}


# ---- synthetic catalogue -----------------------------------------------------------------------
def synthetic_embeddings(n: int, cfg: CatalogueBenchConfig,
                         progress: Callable[[int], None] | None = None) -> np.ndarray:
    """(n, dim) float32 unit vectors from a Gaussian mixture: ``n_clusters`` unit-norm centres
    with Dirichlet(1) weights; within a cluster, a shared low-rank covariance (``rank``
    directions, total norm ~``spread``: text embeddings' spectra decay fast, and isotropic
    384-d noise would make every residual level a hub) plus isotropic ``noise``. In batches."""
    rng = np.random.default_rng(cfg.seed)
    centres = rng.standard_normal((cfg.n_clusters, cfg.dim)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    basis = (rng.standard_normal((cfg.rank, cfg.dim)) * cfg.spread / math.sqrt(cfg.rank * cfg.dim)
             * math.sqrt(cfg.dim)).astype(np.float32)  # rows ~ norm spread / sqrt(rank)
    weights = rng.dirichlet(np.ones(cfg.n_clusters))
    out = np.empty((n, cfg.dim), dtype=np.float32)
    iso = cfg.noise / math.sqrt(cfg.dim)
    for start in range(0, n, 65536):
        stop = min(n, start + 65536)
        z = rng.choice(cfg.n_clusters, size=stop - start, p=weights)
        x = centres[z] + rng.standard_normal((stop - start, cfg.rank), dtype=np.float32) @ basis
        x += iso * rng.standard_normal((stop - start, cfg.dim), dtype=np.float32)
        out[start:stop] = x / np.linalg.norm(x, axis=1, keepdims=True)
        if progress:
            progress(stop - start)
    return out


def synthetic_texts(n: int, seed: int) -> list[str]:
    """Item texts shaped like the item template (title, brand, categories, description)."""
    rng = np.random.default_rng(seed)
    words = ["serum", "matte", "lipstick", "organic", "travel", "gift", "set", "cream", "daily",
             "hydrating", "brush", "palette", "vitamin", "oil", "shampoo", "sensitive", "spf"]
    out = []
    for i in range(n):
        w = rng.choice(words, size=int(rng.integers(12, 40)))
        out.append(f"Title: {' '.join(w[:5])} {i}; Brand: brand{int(rng.integers(500))}; "
                   f"Categories: Beauty > {w[5]} > {w[6]}; Description: {' '.join(w[7:])}")
    return out


def minilm_throughput(cfg: CatalogueBenchConfig) -> dict[str, Any]:
    """Texts/s of the packaged MiniLM (fp32, batch 64) on ``text_sample`` synthetic texts."""
    from onefeed.embeddings.content import encode_texts, load_encoder

    if not cfg.text_sample:
        return {"status": "skipped"}
    try:
        model = load_encoder()
        texts = synthetic_texts(cfg.text_sample, cfg.seed)
        encode_texts(model, texts[:16], progress=False, precision="fp32")  # warm-up
        t0, c0 = time.perf_counter(), time.process_time()
        encode_texts(model, texts, progress=True, precision="fp32")
        seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    except Exception as exc:  # no packaged model: say so, the rest still runs
        return {"status": "failed", "error": f"{type(exc).__name__}: {exc}"}
    rate = cfg.text_sample / seconds
    return {"status": "ok", "texts": cfg.text_sample, "seconds": seconds, "texts_per_s": rate,
            "cpu_seconds": cpu, "texts_per_cpu_s": cfg.text_sample / cpu,
            "extrapolated_seconds": {str(n): n / rate for n in cfg.scales},
            "note": "measured on the sample, extrapolated linearly to each scale"}


# ---- phases ------------------------------------------------------------------------------------
def build_sids(x: np.ndarray, cfg: CatalogueBenchConfig, progress: Callable[[int], None] | None,
               rec: dict[str, Any]) -> Any:
    """The SID build's quantise path (``onefeed.sid.build``): fit on a sample, assign every
    item in batches, add the disambiguation level. -> SidTable; timings into ``rec``."""
    from onefeed.sid.build import SidConfig, encode_items, fit_quantiser, unique_table

    scfg = SidConfig(levels=cfg.levels, codebook_size=cfg.codebook_size, niter=cfg.niter,
                     seed=cfg.seed, balanced=cfg.balanced, fit_sample=cfg.fit_sample)
    train = np.ones(len(x), dtype=bool)
    with measured(rec, "sid_build"):
        t0 = time.perf_counter()
        quantiser, _ = fit_quantiser(x, train, scfg, False)
        rec["sid_fit_seconds"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        codes = encode_items(quantiser, x, train, progress)
        rec["sid_assign_seconds"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        table = unique_table(codes, quantiser.codebook_sizes, {})
        rec["sid_disambiguate_seconds"] = time.perf_counter() - t0
    rec.update(codebook_sizes=list(table.codebook_sizes),
               collision_rate=table.meta["collision_rate"],
               max_collisions=table.meta["max_collisions"],
               fit_items=min(len(x), cfg.fit_sample or len(x)))
    return table


def build_trie(kind: type, table: Any, rec: dict[str, Any], key: str) -> Any:
    """Build ``kind`` from the table; time, peak and retained RSS, array bytes into ``rec``."""
    with measured(rec, f"{key}_build"):
        trie = kind.from_table(table.codes, table.codebook_sizes)
    rec[f"{key}_nbytes"] = trie.nbytes
    rec[f"{key}_bytes"] = max(trie.nbytes, rec[f"{key}_build_retained_bytes"])
    rec[f"{key}_width"] = [trie.width(j) for j in range(trie.n_levels)]
    return trie


class Decoder:
    """A random-weight ``GenerativeRecommender`` over the table's codes + random histories."""

    def __init__(self, table: Any, cfg: CatalogueBenchConfig) -> None:
        import torch

        from onefeed.models import ModelConfig, build_config, build_model
        from onefeed.tokens import Vocab

        torch.manual_seed(cfg.seed)
        self.vocab = Vocab.build(table.codebook_sizes, words=False)
        mcfg = ModelConfig(d_model=cfg.d_model, n_layers=cfg.n_layers, n_heads=cfg.n_heads,
                           d_ff=cfg.d_ff, dropout=0.0, max_len=cfg.history,
                           item_embedding=False)
        self.model = build_model(build_config(mcfg, self.vocab, table.n_items)).eval()
        self.codes = torch.as_tensor(table.codes, dtype=torch.long)
        rng = np.random.default_rng(cfg.seed + 1)
        self.histories = rng.integers(0, table.n_items, size=(512, cfg.history))
        self.cfg = cfg

    def decode(self, trie: Any, rows: np.ndarray, profile: dict[str, float]) -> Any:
        import torch

        from onefeed.decoding.beam import beam_search
        from onefeed.tasks.rec import history_events

        with torch.inference_mode():
            state = self.model.last_state(history_events(rows, self.codes, self.vocab))
            return beam_search(self.model.step, state, trie, len(rows), self.cfg.beam,
                               profile=profile)


def decode_figures(decoder: Decoder, tries: dict[str, Any], rec: dict[str, Any]) -> None:
    """Single-request latency (encode + beam search, wall clock) and per-step decode time,
    requests alternating between ``tries``; batched per-step time at ``batch_users``."""
    cfg, hist = decoder.cfg, decoder.histories
    names = list(tries)
    lat: dict[str, list[float]] = {n: [] for n in names}
    cpu: dict[str, list[float]] = {n: [] for n in names}
    step_ms: dict[str, list[float]] = {n: [] for n in names}
    trie_ms: dict[str, list[float]] = {n: [] for n in names}
    tops: dict[str, list[Any]] = {n: [] for n in names}
    levels = len(decoder.codes[0])
    for i in range(cfg.requests):
        for name in (names if i % 2 == 0 else names[::-1]):
            prof: dict[str, float] = {}
            t0, c0 = time.perf_counter(), time.thread_time()
            res = decoder.decode(tries[name], hist[i % len(hist)][None], prof)
            spent, spent_cpu = time.perf_counter() - t0, time.thread_time() - c0
            if i >= 10:  # warm-up excluded
                lat[name].append(1000 * spent)
                cpu[name].append(1000 * spent_cpu)
                step_ms[name].append(1000 * prof["total"] / levels)
                trie_ms[name].append(1000 * prof["mask"] / levels)
                tops[name].append(res.items)
    for name in names:
        rec[f"{name}_latency_ms"] = percentiles(lat[name])
        rec[f"{name}_latency_p99_ms"] = rec[f"{name}_latency_ms"]["p99"]
        rec[f"{name}_cpu_latency_ms"] = percentiles(cpu[name])
        rec[f"{name}_step_ms"] = percentiles(step_ms[name])
        rec[f"{name}_step_trie_ms"] = percentiles(trie_ms[name])
        prof = {}
        rows = hist[:cfg.batch_users]
        decoder.decode(tries[name], rows, {})  # warm-up
        t0 = time.perf_counter()
        for _ in range(cfg.batches):
            decoder.decode(tries[name], rows, prof)
        rec[f"{name}_batch_step_ms"] = 1000 * prof["total"] / (cfg.batches * levels)
        rec[f"{name}_batch_step_trie_ms"] = 1000 * prof["mask"] / (cfg.batches * levels)
        rec[f"{name}_batch_users_per_s"] = cfg.batches * len(rows) / (time.perf_counter() - t0)
    if len(names) == 2:
        import torch

        a, b = (torch.cat(tops[n]) for n in names)
        rec["identical_top_k"] = float((a == b).all(dim=1).float().mean())


def run_scale(n: int, cfg: CatalogueBenchConfig,
              progress: Callable[[str, int], Callable[[int], None]] | None = None
              ) -> dict[str, Any]:
    """Every measurement at one scale -> a record with ``status`` "ok"."""
    import torch

    from onefeed.decoding.dense_trie import DenseTrie
    from onefeed.decoding.trie import Trie

    rec: dict[str, Any] = {"n_items": n, "status": "running"}
    bar = progress or (lambda label, total: None)  # type: ignore[return-value]
    with measured(rec, "embeddings"):
        x = synthetic_embeddings(n, cfg, bar(f"{n:,} synthetic embeddings", n))
    table = build_sids(x, cfg, bar(f"{n:,} items: assign codes", n), rec)
    del x
    gc.collect()
    tries = {"trie": build_trie(Trie, table, rec, "trie")}
    if n in cfg.compare_at:
        tries["dense"] = build_trie(DenseTrie, table, rec, "dense")
    torch.set_num_threads(1)
    with measured(rec, "decode"):
        decode_figures(Decoder(table, cfg), tries, rec)
    if "dense" in tries:
        rec["dense_vs_trie"] = {
            "bytes": rec["dense_bytes"] / rec["trie_bytes"],
            "build_seconds": rec["dense_build_seconds"] / rec["trie_build_seconds"],
            "latency_p50": rec["dense_latency_ms"]["p50"] / rec["trie_latency_ms"]["p50"],
            "latency_p99": rec["dense_latency_ms"]["p99"] / rec["trie_latency_ms"]["p99"],
            "step_ms": rec["dense_step_ms"]["mean"] / rec["trie_step_ms"]["mean"],
            "batch_step_ms": rec["dense_batch_step_ms"] / rec["trie_batch_step_ms"]}
    rec["latency_p99_ms"] = rec["trie_latency_p99_ms"]
    peaks = [v for k, v in rec.items() if k.endswith("_peak_rss_bytes") and v is not None]
    rec["peak_rss_bytes"] = max(peaks) if peaks else None  # highest of the phases' peaks
    rec["status"] = "ok"
    return rec


def run(cfg: CatalogueBenchConfig,
        progress: Callable[[str, int], Callable[[int], None]] | None = None) -> dict[str, Any]:
    """All scales (a scale that raises is recorded as failed and the next one still runs)."""
    scales = []
    for n in cfg.scales:
        try:
            scales.append(run_scale(n, cfg, progress))
        except (Exception, MemoryError) as exc:  # noqa: BLE001 - recorded, never "met"
            scales.append({"n_items": n, "status": "failed",
                           "error": f"{type(exc).__name__}: {exc}"[:500]})
        gc.collect()
    return {"benchmark": "catalogue", "config": asdict(cfg), "seed": cfg.seed,
            "scales": scales, "minilm": minilm_throughput(cfg), "targets": targets(scales)}


def targets(scales: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Each target of ``TARGETS`` -> met / missed from the measured value, or "not measured"
    when its scale is absent, failed, or lacks a finite value."""
    by_n = {s.get("n_items"): s for s in scales}
    out = {}
    for name, (n, key, limit, op, unit) in TARGETS.items():
        rec = by_n.get(n)
        value = rec.get(key) if rec and rec.get("status") == "ok" else None
        row: dict[str, Any] = {"scale": n, "measure": key, "limit": limit, "op": op,
                               "unit": unit, "value": value}
        if not isinstance(value, (int, float)) or not math.isfinite(value):
            row["status"] = "not measured"
            row["why"] = ("scale not run" if rec is None else
                          f"scale {rec.get('status')}" if rec.get("status") != "ok" else
                          f"no value for {key}")
        else:
            met = value < limit if op == "<" else value <= limit
            row["status"] = "met" if met else "missed"
        out[name] = row
    return out


# ---- report ------------------------------------------------------------------------------------
def _mib(b: float | None) -> str:
    return "–" if b is None else f"{b / 2**20:,.1f}"


def markdown(r: dict[str, Any]) -> str:
    c = r["config"]
    m = r["machine"]
    lines = [
        "# Large catalogues: SID build, trie and constrained beam search at scale", "",
        f"commit `{r['commit']}`, seed {r['seed']}, CPU {m.get('cpu_model', '?')} "
        f"({m.get('cpu_count')} cores, shared; 1 torch / faiss / BLAS thread), "
        f"{m.get('memory_gib')} GiB RAM. Synthetic items: {c['dim']}-d unit vectors from a "
        f"{c['n_clusters']}-component Gaussian mixture. RQ-KMeans {c['levels']} x "
        f"{c['codebook_size']} ({'balanced' if c['balanced'] else 'faiss'} k-means, "
        f"{c['niter']} iterations) fitted on {c['fit_sample']:,} sampled items, every item "
        f"assigned in batches, + disambiguation level. Decoding: random-weight "
        f"GenerativeRecommender (d {c['d_model']}, {c['n_layers']} layers, {c['n_heads']} "
        f"heads, d_ff {c['d_ff']}), beam {c['beam']}, history {c['history']}.", "",
        "| items | status | SID build s (fit / assign / disamb.) | SID build peak RSS MiB "
        "| codebooks | collisions % | trie build s | trie MiB | single request p50 / p99 ms "
        "(CPU time p50 / p99) "
        "| per-step ms (trie part) | batch of "
        f"{c['batch_users']}: per-step ms (trie part) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for s in r["scales"]:
        if s["status"] != "ok":
            lines.append(f"| {s['n_items']:,} | {s['status']}: {s.get('error', '')} |"
                         + " |" * 9)
            continue
        lines.append(
            f"| {s['n_items']:,} | ok | {s['sid_build_seconds']:.1f} ({s['sid_fit_seconds']:.1f}"
            f" / {s['sid_assign_seconds']:.1f} / {s['sid_disambiguate_seconds']:.1f}) | "
            f"{_mib(s['sid_build_peak_rss_bytes'])} | {s['codebook_sizes']} | "
            f"{s['collision_rate']:.1f} | {s['trie_build_seconds']:.2f} | "
            f"{_mib(s['trie_bytes'])} | {s['trie_latency_ms']['p50']:.2f} / "
            f"{s['trie_latency_ms']['p99']:.2f} ({s['trie_cpu_latency_ms']['p50']:.2f} / "
            f"{s['trie_cpu_latency_ms']['p99']:.2f}) | {s['trie_step_ms']['mean']:.2f} "
            f"({s['trie_step_trie_ms']['mean']:.2f}) | {s['trie_batch_step_ms']:.1f} "
            f"({s['trie_batch_step_trie_ms']:.1f}) |")
    for s in r["scales"]:
        if s.get("status") == "ok" and "dense_vs_trie" in s:
            ratio = s["dense_vs_trie"]
            lines += [
                "", f"## Old (DenseTrie) vs new (Trie) at {s['n_items']:,} items, same run", "",
                "| trie | build s | bytes MiB (arrays / RSS retained) | p50 ms | p99 ms "
                "| per-step ms (trie part) | batch per-step ms (trie part) |",
                "|---|---|---|---|---|---|---|"]
            for key, label in (("dense", "DenseTrie (old)"), ("trie", "Trie (CSR, new)")):
                lines.append(
                    f"| {label} | {s[f'{key}_build_seconds']:.2f} | "
                    f"{_mib(s[f'{key}_nbytes'])} / {_mib(s[f'{key}_build_retained_bytes'])} | "
                    f"{s[f'{key}_latency_ms']['p50']:.2f} | {s[f'{key}_latency_ms']['p99']:.2f}"
                    f" | {s[f'{key}_step_ms']['mean']:.2f} ({s[f'{key}_step_trie_ms']['mean']:.2f})"
                    f" | {s[f'{key}_batch_step_ms']:.1f} ({s[f'{key}_batch_step_trie_ms']:.1f}) |")
            lines += ["", "old / new: " + ", ".join(f"{k} {v:.2f}x" for k, v in ratio.items())
                      + f"; identical top-{c['beam']} lists: "
                      f"{100 * s['identical_top_k']:.1f}% of requests."]
    mini = r["minilm"]
    if mini.get("status") == "ok":
        ext = ", ".join(f"{int(n):,} items ≈ {sec / 60:.0f} min"
                        for n, sec in mini["extrapolated_seconds"].items())
        lines += ["", f"MiniLM text embedding (fp32, batch 64, on the shared machine): "
                  f"{mini['texts_per_s']:.0f} texts/s wall clock "
                  f"({mini['texts_per_cpu_s']:.0f} texts per CPU second) measured on "
                  f"{mini['texts']} synthetic item texts; extrapolated from the wall-clock "
                  f"rate, not measured: {ext}."]
    else:
        lines += ["", f"MiniLM text embedding: {mini.get('status')} {mini.get('error', '')}"]
    lines += ["", "## Targets", "", "| target | value | limit | status |", "|---|---|---|---|"]
    for name, t in r["targets"].items():
        fmt = _mib if t["unit"] == "bytes" else (lambda v: "–" if v is None else f"{v:.2f}")
        unit = "MiB" if t["unit"] == "bytes" else t["unit"]
        lines.append(f"| {name} ({t['measure']} at {t['scale']:,} items) | {fmt(t['value'])} "
                     f"{unit} | {t['op']} {fmt(t['limit'])} {unit} | {t['status']}"
                     f"{' (' + t['why'] + ')' if 'why' in t else ''} |")
    lines += ["", "Trie bytes = max(array bytes, RSS retained by the build). Latency: wall "
              "clock of one user's request (history encode + beam search), warm-up excluded; "
              "the target is judged on it; CPU time (the thread's, so time spent waiting for a "
              "core on this shared machine is left out) in brackets. "
              "Per-step: beam-search time per code level (model step + trie work; trie part in "
              "brackets). SID build peak RSS is the process high-water mark during the build "
              "(the embedding matrix included).", ""]
    return "\n".join(lines)
