"""``onefeed bench sid``: content-embedding throughput, RQ-KMeans and RQ-VAE fit times.

Default input: Amazon 2014 Beauty's 12,101 item texts (from a prepared dataset via ``--data``,
else straight from ``<raw_root>/amazon2014-Beauty/items.jsonl.gz``). Writes
``bench/results/sid.json`` and ``sid.md`` with machine, commit, config, seed and the load
average before/after (the machine is shared; a busy machine slows every number here).
"""

from __future__ import annotations

import dataclasses
import gzip
import json
import os
import time
from pathlib import Path

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


def run(data: Path | None, rqvae_epochs: int | None, seed: int, limit: int | None) -> dict:
    from onefeed.embeddings.content import encode_texts, load_encoder
    from onefeed.sid.collisions import collision_rate
    from onefeed.sid.rq_kmeans import RQKMeans, RQKMeansConfig
    from onefeed.sid.rqvae import RQVAEConfig, train_rqvae

    texts, source = _beauty_texts(data)
    texts = texts[:limit] if limit else texts
    n = len(texts)
    load_before = os.getloadavg()
    model, load_s, _ = _timed(load_encoder)
    emb, enc_s, enc_cpu = _timed(lambda: encode_texts(model, texts))  # no cache: cold
    model8 = load_encoder(int8=True)
    n8 = min(n, INT8_SAMPLE)
    emb8, enc8_s, _ = _timed(lambda: encode_texts(model8, texts[:n8]))
    cos = (emb[:n8] * emb8).sum(1)
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
    return {
        "input": {"source": source, "n_items": n},
        "content_embedding": {
            "model": "all-MiniLM-L6-v2 (packaged)", "load_s": load_s, "encode_s": enc_s,
            "items_per_s": n / enc_s, "items_per_cpu_s": n / enc_cpu,
            "torch_threads": __import__("torch").get_num_threads(),
            "int8_items_per_s": n8 / enc8_s, "int8_sample": n8,
            "int8_cosine_to_fp32": {"mean": float(cos.mean()), "min": float(cos.min())}},
        **results,
        "targets": {"embedding_items_per_s": 300, "rq_kmeans_s": 30, "rqvae_s": 300},
        "load_average_before": load_before, "load_average_after": os.getloadavg(),
        "seed": seed,
    }


def _markdown(r: dict) -> str:
    ce, rv = r["content_embedding"], r["rqvae"]
    rp, rb = r["rq_kmeans_plain"], r["rq_kmeans_balanced"]
    ok = lambda good: "meets" if good else "MISSES"  # noqa: E731
    return "\n".join([
        "# onefeed bench sid", "",
        f"`{r['command']}` · commit `{r['commit']}` · seed {r['seed']} · "
        f"{r['input']['n_items']} items ({r['input']['source']})",
        f"machine: {r['machine'].get('cpu_model', r['machine'].get('processor'))}, "
        f"{r['machine']['cpu_count']} cores · load average (1/5/15 min) before "
        f"{[round(x, 1) for x in r['load_average_before']]}, after "
        f"{[round(x, 1) for x in r['load_average_after']]} (shared machine)", "",
        "| measurement | value | target |", "|---|---|---|",
        f"| content embedding, MiniLM fp32, cold cache | {ce['items_per_s']:.0f} items/s "
        f"({ce['encode_s']:.1f} s + {ce['load_s']:.1f} s load; {ce['items_per_cpu_s']:.0f} "
        f"items per CPU-second) | >= 300 items/s ({ok(ce['items_per_s'] >= 300)}) |",
        f"| content embedding, MiniLM dynamic int8 (first {ce['int8_sample']} items) | "
        f"{ce['int8_items_per_s']:.0f} items/s "
        f"(cosine to fp32: mean {ce['int8_cosine_to_fp32']['mean']:.3f}, min "
        f"{ce['int8_cosine_to_fp32']['min']:.3f}) | >= 300 items/s "
        f"({ok(ce['int8_items_per_s'] >= 300)}) |",
        f"| RQ-KMeans 3x256 plain (25 iter) fit + encode | {rp['fit_encode_s']:.1f} s, "
        f"collisions {rp['collision_rate']:.2f}% | < 30 s ({ok(rp['fit_encode_s'] < 30)}) |",
        f"| RQ-KMeans 3x256 balanced (20 iter, default) | {rb['fit_encode_s']:.1f} s, "
        f"collisions {rb['collision_rate']:.2f}% | < 30 s ({ok(rb['fit_encode_s'] < 30)}) |",
        f"| RQ-VAE train ({rv['config']['epochs']} epochs) + encode | {rv['train_encode_s']:.1f}"
        f" s, collisions {rv['collision_rate']:.2f}%, recon MSE "
        f"{rv['reconstruction_error']:.4f} | < 300 s ({ok(rv['train_encode_s'] < 300)}) |", ""])


def register(app: typer.Typer) -> None:
    @app.command("sid")
    def bench_sid(
        data: Path | None = typer.Option(None, help="Prepared Beauty dataset dir (default: "
                                                    "raw items.jsonl.gz)."),
        rqvae_epochs: int | None = typer.Option(None, help="Override RQ-VAE epochs."),
        seed: int = typer.Option(0),
        limit: int | None = typer.Option(None, help="Only the first N items (quick check)."),
        out: Path | None = typer.Option(None, help="Results dir (default bench/results)."),
    ) -> None:
        """Content-embedding throughput, RQ-KMeans 3x256 and RQ-VAE times on Beauty."""
        from onefeed.artifacts import atomic_write_text, git_commit, machine_info, write_json
        from onefeed.paths import results_root

        result = run(data, rqvae_epochs, seed, limit)
        result.update(commit=git_commit(), machine=machine_info(),
                      command="onefeed bench sid" + (f" --data {data}" if data else ""))
        out = out or results_root()
        out.mkdir(parents=True, exist_ok=True)
        write_json(out / "sid.json", result)
        atomic_write_text(out / "sid.md", _markdown(result))
        console.print(_markdown(result))
