"""``onefeed bench sid``: content-embedding throughput, RQ-KMeans and RQ-VAE fit times.

Default input: Amazon 2014 Beauty's 12,101 item texts (from a prepared dataset via ``--data``,
else straight from ``<raw_root>/amazon2014-Beauty/items.jsonl.gz``). Writes
``bench/results/sid.json`` and ``sid.md`` with machine, commit, config, seed and the load
average before/after (the machine is shared; a busy machine slows every number here).
``--embedding-only`` re-measures the text-encoding rows (plain fp32 reference, fast fp32, the
bf16 default at 2 and 1 threads, int8) and keeps the quantizer rows of the previous sid.json.
"""

from __future__ import annotations

import dataclasses
import gzip
import json
import os
import time
from pathlib import Path

import numpy as np
import typer
from rich.console import Console

console = Console()
INT8_SAMPLE = 2000  # the int8 comparison encodes only the first N texts (time on a shared box)


def _beauty_texts(data: Path | None) -> tuple[list[str], str]:
    from onefeed.embeddings.text import item_text, item_texts

    if data is not None:
        from onefeed.data.schemas import Dataset

        return item_texts(Dataset.load(data).items), str(data)
    from onefeed.paths import raw_root

    path = raw_root() / "amazon2014-Beauty" / "items.jsonl.gz"
    if not path.exists():
        raise typer.BadParameter(f"{path} not found; pass --data runs/<name>/data")
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        rows = [json.loads(line) for line in fh]
    return [item_text(r.get("title"), r.get("brand"), r.get("categories")) for r in rows], str(path)


def _timed(fn):
    """(result, wall seconds, process CPU seconds) of fn()."""
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - wall, time.process_time() - cpu


def _cosine(a, b) -> dict:
    cos = (a * b).sum(1)
    return {"mean": float(cos.mean()), "min": float(cos.min())}


def run_embedding(texts: list[str], repeats: int = 3) -> tuple[dict, np.ndarray]:
    """Throughput of the plain and fast text-encoding paths; fidelity vs plain fp32 on all texts.

    Returns (results, the default fast embeddings (n, 384)). Threads: 1 and 2 (torch threads
    are restored afterwards). The headline row (default path, 2 threads) is run ``repeats``
    times and reports the median, so one lucky or unlucky run on a shared machine decides
    nothing. The machine is shared: items per CPU-second is the steadier number.
    """
    import torch

    from onefeed.embeddings.content import load_encoder
    from onefeed.embeddings.text import (TextEncoderConfig, encode_fast, encode_plain,
                                         resolve_precision, token_lengths)

    n = len(texts)
    model, load_s, _ = _timed(load_encoder)
    lengths = token_lengths(model, texts)
    rows, embs = {}, {}

    def measure(name: str, fn, count: int = n, threads: int = 2, repeats: int = 1) -> None:
        """``repeats`` > 1: the row reports the median run; every run's items/s is kept."""
        before_threads = torch.get_num_threads()
        torch.set_num_threads(threads)
        load = os.getloadavg()
        console.print(f"[dim]{name}: {count} texts, {threads} thread(s), {repeats} run(s), "
                      f"load {load[0]:.1f}")
        try:
            runs = [_timed(fn) for _ in range(repeats)]
        finally:
            torch.set_num_threads(before_threads)
        emb, wall, cpu = sorted(runs, key=lambda r: r[1])[len(runs) // 2]
        embs[name] = emb
        rows[name] = {"threads": threads, "n": count, "encode_s": wall,
                      "items_per_s": count / wall, "items_per_cpu_s": count / cpu,
                      "load_average_before": load, "load_average_after": os.getloadavg()}
        if repeats > 1:
            rows[name]["items_per_s_runs"] = [count / r[1] for r in runs]

    default = TextEncoderConfig()
    for precision in ("fp32", "bf16"):  # warm-up: first-call kernel set-up is not throughput
        encode_fast(model, texts[:64], TextEncoderConfig(precision), progress=False)
    measure("plain_fp32", lambda: encode_plain(model, texts))  # the reference
    measure("fast_fp32", lambda: encode_fast(model, texts, TextEncoderConfig("fp32")))
    measure("fast_default", lambda: encode_fast(model, texts, default), repeats=repeats)
    ops = TextEncoderConfig(parallel="ops")  # the previous default: cores split every op
    measure("fast_default_ops", lambda: encode_fast(model, texts, ops), repeats=repeats)
    measure("fast_default_1thread", lambda: encode_fast(model, texts, default), threads=1)
    ref = embs["plain_fp32"]
    for name in ("fast_fp32", "fast_default", "fast_default_ops", "fast_default_1thread"):
        rows[name]["cosine_to_plain_fp32"] = _cosine(embs[name], ref)
    n8 = min(n, INT8_SAMPLE)
    model8 = load_encoder(int8=True)
    measure("int8_dynamic", lambda: encode_fast(model8, texts[:n8], TextEncoderConfig("fp32")),
            count=n8)
    rows["int8_dynamic"]["cosine_to_plain_fp32"] = _cosine(embs["int8_dynamic"], ref[:n8])
    long = np.flatnonzero(lengths > 128)
    short128 = encode_fast(model, [texts[i] for i in long], TextEncoderConfig("fp32", 64, 128),
                           progress=False) if len(long) else np.zeros((0, ref.shape[1]))
    cos128 = (short128 * ref[long]).sum(1)
    return {
        "model": "all-MiniLM-L6-v2 (packaged)", "load_s": load_s,
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "unset (libgomp default)"),
        "default": {**dataclasses.asdict(default),
                    "resolved_precision": resolve_precision(default.precision)},
        "word_pieces": {"mean": float(lengths.mean()), "p90": float(np.percentile(lengths, 90)),
                        "max": int(lengths.max()), "over_128": int(len(long)),
                        "at_256_cap": int((lengths >= 256).sum())},
        "truncate_128_cosine_to_256": {
            "n_truncated": int(len(long)),
            "truncated_mean": float(cos128.mean()) if len(long) else 1.0,
            "truncated_min": float(cos128.min()) if len(long) else 1.0,
            "all_items_mean": float((cos128.sum() + n - len(long)) / n)},
        "runs": rows,
    }, embs["fast_default"]


def run(data: Path | None, rqvae_epochs: int | None, seed: int, limit: int | None,
        embedding_only: bool = False, repeats: int = 3) -> dict:
    texts, source = _beauty_texts(data)
    texts = texts[:limit] if limit else texts
    load_before = os.getloadavg()
    content, emb = run_embedding(texts, repeats)
    out = {"input": {"source": source, "n_items": len(texts)}, "content_embedding": content,
           "load_average_before": load_before, "seed": seed}
    if not embedding_only:
        out.update(run_quantizers(emb, rqvae_epochs, seed))
    out["load_average_after"] = os.getloadavg()
    out["targets"] = {"embedding_items_per_s": 300, "rq_kmeans_s": 30, "rqvae_s": 300}
    return out


def run_quantizers(emb, rqvae_epochs: int | None, seed: int) -> dict:
    """RQ-KMeans (plain, balanced) and RQ-VAE fit times on the content embeddings."""
    from onefeed.sid.collisions import collision_rate
    from onefeed.sid.rq_kmeans import RQKMeans, RQKMeansConfig
    from onefeed.sid.rqvae import RQVAEConfig, train_rqvae

    results = {}
    for name, cfg, enc in [
        ("rq_kmeans_plain", RQKMeansConfig(3, 256, 25, seed, balanced=False), "encode"),
        ("rq_kmeans_balanced", RQKMeansConfig(3, 256, 20, seed, balanced=True), "encode_balanced"),
    ]:
        (rq, codes), secs, _ = _timed(lambda: (lambda q: (q, getattr(q, enc)(emb)))(
            RQKMeans.fit(emb, cfg)))
        results[name] = {"config": dataclasses.asdict(cfg), "fit_encode_s": secs,
                         "mse_by_level": rq.residual_errors(emb, codes),
                         "collision_rate": collision_rate(codes)}
    vae_cfg = RQVAEConfig(seed=seed)
    if rqvae_epochs is not None:
        vae_cfg = dataclasses.replace(vae_cfg, epochs=rqvae_epochs)
    (vae, log), vae_s, _ = _timed(lambda: train_rqvae(emb, vae_cfg))
    results["rqvae"] = {"config": dataclasses.asdict(vae_cfg), "train_encode_s": vae_s,
                        "reconstruction_error": log["reconstruction_error"],
                        "dead_code_resets": log["dead_code_resets"],
                        "collision_rate": collision_rate(vae.encode(emb))}
    return results


_EMBED_ROWS = [  # (run key, label)
    ("fast_default", "MiniLM default: {precision} autocast + token-length batches, 2 cores "
                     "each encoding whole batches"),
    ("fast_default_ops", "MiniLM default maths, the 2 cores splitting every op (torch intra-op "
                         "threads; the previous default)"),
    ("fast_default_1thread", "MiniLM default, 1 thread"),
    ("fast_fp32", "MiniLM fp32, token-length batches, 2 threads"),
    ("plain_fp32", "MiniLM fp32, plain sentence-transformers encode (old default), 2 threads"),
    ("int8_dynamic", "MiniLM dynamic int8 (optional, not default), 2 threads"),
]


def _embedding_lines(ce: dict) -> list[str]:
    ok = lambda good: "meets" if good else "MISSES"  # noqa: E731
    lines = []
    for key, label in _EMBED_ROWS:
        row = ce["runs"][key]
        cos = row.get("cosine_to_plain_fp32")
        fid = (f"; cosine to plain fp32 mean {cos['mean']:.6f}, min {cos['min']:.6f}"
               if cos else " (the fidelity reference)")
        label = label.format(precision=ce["default"]["resolved_precision"])
        runs = row.get("items_per_s_runs")
        spread = (f"median of {len(runs)} runs: " + ", ".join(f"{x:.0f}" for x in runs) + "; "
                  if runs else "")
        lines.append(
            f"| content embedding, {label}, {row['n']} items | {row['items_per_s']:.0f} items/s "
            f"({spread}"
            f"{row['encode_s']:.1f} s; {row['items_per_cpu_s']:.0f} items per CPU-second; "
            f"load {row['load_average_before'][0]:.1f}){fid} | >= 300 items/s "
            f"({ok(row['items_per_s'] >= 300)}) |")
    if "fast_default_ops" in ce["runs"]:
        by_batch, by_op = ce["runs"]["fast_default"], ce["runs"]["fast_default_ops"]
        lines.append(f"| batch-parallel / op-parallel cores (same maths, same run) | "
                     f"{by_batch['items_per_s'] / by_op['items_per_s']:.2f}x items/s | |")
    t = ce["truncate_128_cosine_to_256"]
    lines.append(f"| max_seq_length 128 instead of 256 | {t['n_truncated']} items truncated; their "
                 f"cosine to 256: mean {t['truncated_mean']:.4f}, min {t['truncated_min']:.4f} "
                 f"(all items: {t['all_items_mean']:.6f}) | (default stays 256) |")
    return lines


def _markdown(r: dict) -> str:
    ce = r["content_embedding"]
    ok = lambda good: "meets" if good else "MISSES"  # noqa: E731
    wp = ce["word_pieces"]
    head = [
        "# onefeed bench sid", "",
        f"`{r['command']}` · commit `{r['commit']}` · seed {r['seed']} · "
        f"{r['input']['n_items']} items ({r['input']['source']})",
        f"machine: {r['machine'].get('cpu_model', r['machine'].get('processor'))}, "
        f"{r['machine']['cpu_count']} cores · load average (1/5/15 min) before "
        f"{[round(x, 1) for x in r['load_average_before']]}, after "
        f"{[round(x, 1) for x in r['load_average_after']]} (shared machine)", "",
        f"Text: {wp['mean']:.1f} word pieces on average (p90 {wp['p90']:.0f}, max {wp['max']}); "
        f"default encoder {ce['default']}; OMP_WAIT_POLICY {ce.get('omp_wait_policy')}.", "",
        "| measurement | value | target |", "|---|---|---|", *_embedding_lines(ce)]
    if "quantizers_from" in r:
        q = r["quantizers_from"]
        head += ["", f"Quantizer rows below: from `{q['command']}` at commit `{q['commit']}` "
                 f"(load before {[round(x, 1) for x in q['load_average_before']]}); not re-run "
                 "with the embedding rows above.", "", "| measurement | value | target |",
                 "|---|---|---|"]
    if "rqvae" not in r:
        return "\n".join(head + [""])
    rv, rp, rb = r["rqvae"], r["rq_kmeans_plain"], r["rq_kmeans_balanced"]
    return "\n".join(head + [
        f"| RQ-KMeans 3x256 plain (25 iter) fit + encode | {rp['fit_encode_s']:.1f} s, "
        f"collisions {rp['collision_rate']:.2f}% | < 30 s ({ok(rp['fit_encode_s'] < 30)}) |",
        f"| RQ-KMeans 3x256 balanced (20 iter, default) | {rb['fit_encode_s']:.1f} s, "
        f"collisions {rb['collision_rate']:.2f}% | < 30 s ({ok(rb['fit_encode_s'] < 30)}) |",
        f"| RQ-VAE train ({rv['config']['epochs']} epochs) + encode | {rv['train_encode_s']:.1f}"
        f" s, collisions {rv['collision_rate']:.2f}%, recon MSE "
        f"{rv['reconstruction_error']:.4f} | < 300 s ({ok(rv['train_encode_s'] < 300)}) |", ""])


def _keep_quantizers(result: dict, previous: Path) -> dict:
    """Embedding-only run: carry the quantizer rows of an earlier full run, with its provenance."""
    if not previous.exists():
        return result
    old = json.loads(previous.read_text())
    if "rqvae" not in old:
        return result
    for key in ("rq_kmeans_plain", "rq_kmeans_balanced", "rqvae"):
        result[key] = old[key]
    result["quantizers_from"] = old.get("quantizers_from") or {
        k: old.get(k) for k in ("command", "commit", "load_average_before",
                                "load_average_after")}
    return result


def register(app: typer.Typer) -> None:
    @app.command("sid")
    def bench_sid(
        data: Path | None = typer.Option(None, help="Prepared Beauty dataset dir (default: "
                                                    "raw items.jsonl.gz)."),
        rqvae_epochs: int | None = typer.Option(None, help="Override RQ-VAE epochs."),
        seed: int = typer.Option(0, help="Seed of the quantizers (k-means / RQ-VAE)."),
        limit: int | None = typer.Option(None, help="Only the first N items (quick check)."),
        out: Path | None = typer.Option(None, help="Results dir (default bench/results)."),
        embedding_only: bool = typer.Option(False, help="Only the text-encoding rows; keep the "
                                                        "quantizer rows of the previous sid.json."),
        repeats: int = typer.Option(3, min=1, help="Runs of the headline embedding row "
                                                   "(the median is reported)."),
    ) -> None:
        """Content-embedding throughput, RQ-KMeans 3x256 and RQ-VAE times on Beauty."""
        from onefeed.artifacts import atomic_write_text, git_commit, machine_info, write_json
        from onefeed.paths import results_root

        result = run(data, rqvae_epochs, seed, limit, embedding_only, repeats)
        result.update(commit=git_commit(), machine=machine_info(),
                      command="onefeed bench sid" + (f" --data {data}" if data else "")
                      + (" --embedding-only" if embedding_only else ""))
        out = out or results_root()
        if embedding_only:
            result = _keep_quantizers(result, out / "sid.json")
        out.mkdir(parents=True, exist_ok=True)
        write_json(out / "sid.json", result)
        atomic_write_text(out / "sid.md", _markdown(result))
        console.print(_markdown(result), markup=False)
