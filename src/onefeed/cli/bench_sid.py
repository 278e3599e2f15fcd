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


def run(data: Path | None, rqvae_epochs: int | None, seed: int, limit: int | None) -> dict:
    import numpy as np

    from onefeed.embeddings.content import encode_texts, load_encoder
    from onefeed.sid.collisions import collision_rate
    from onefeed.sid.rq_kmeans import RQKMeans, RQKMeansConfig
    from onefeed.sid.rqvae import RQVAEConfig, train_rqvae

    texts, source = _beauty_texts(data)
    texts = texts[:limit] if limit else texts
    load_before = os.getloadavg()
    t0 = time.perf_counter()
    model = load_encoder()
    t1 = time.perf_counter()
    emb = encode_texts(model, texts)  # no cache: a cold-cache measurement
    t2 = time.perf_counter()
    rq_cfg = RQKMeansConfig(levels=3, codebook_size=256, seed=seed)
    rq = RQKMeans.fit(emb, rq_cfg)
    rq_codes = rq.encode(emb)
    t3 = time.perf_counter()
    vae_cfg = RQVAEConfig(seed=seed)
    if rqvae_epochs is not None:
        vae_cfg = dataclasses.replace(vae_cfg, epochs=rqvae_epochs)
    vae, log = train_rqvae(emb, vae_cfg)
    vae_codes = vae.encode(emb)
    t4 = time.perf_counter()
    return {
        "input": {"source": source, "n_items": len(texts)},
        "content_embedding": {"model": "all-MiniLM-L6-v2 (packaged)", "load_s": t1 - t0,
                              "encode_s": t2 - t1, "items_per_s": len(texts) / (t2 - t1),
                              "items_per_s_incl_load": len(texts) / (t2 - t0),
                              "torch_threads": __import__("torch").get_num_threads()},
        "rq_kmeans": {"config": dataclasses.asdict(rq_cfg), "fit_encode_s": t3 - t2,
                      "mse_by_level": rq.residual_errors(emb),
                      "collision_rate": collision_rate(rq_codes)},
        "rqvae": {"config": dataclasses.asdict(vae_cfg), "train_encode_s": t4 - t3,
                  "reconstruction_error": log["reconstruction_error"],
                  "dead_code_resets": log["dead_code_resets"],
                  "collision_rate": collision_rate(vae_codes)},
        "targets": {"embedding_items_per_s": 300, "rq_kmeans_s": 30, "rqvae_s": 300},
        "load_average_before": load_before, "load_average_after": os.getloadavg(),
        "seed": seed, "embedding_norm_mean": float(np.linalg.norm(emb, axis=1).mean()),
    }


def _markdown(r: dict) -> str:
    ce, rk, rv = r["content_embedding"], r["rq_kmeans"], r["rqvae"]
    ok = lambda good: "meets" if good else "MISSES"  # noqa: E731
    return "\n".join([
        "# onefeed bench sid", "",
        f"commit `{r['commit']}` · seed {r['seed']} · input {r['input']['n_items']} items "
        f"({r['input']['source']})",
        f"machine: {r['machine'].get('cpu_model', r['machine'].get('processor'))}, "
        f"{r['machine']['cpu_count']} cores · load average before {r['load_average_before']}"
        f", after {r['load_average_after']}", "",
        "| measurement | value | target |", "|---|---|---|",
        f"| content embedding (MiniLM, cold cache) | {ce['items_per_s']:.0f} items/s "
        f"({ce['encode_s']:.1f} s; +{ce['load_s']:.1f} s load) | >= 300 items/s "
        f"({ok(ce['items_per_s'] >= 300)}) |",
        f"| RQ-KMeans 3x256 fit + encode | {rk['fit_encode_s']:.1f} s | < 30 s "
        f"({ok(rk['fit_encode_s'] < 30)}) |",
        f"| RQ-VAE train ({rv['config']['epochs']} epochs) + encode | {rv['train_encode_s']:.1f}"
        f" s | < 300 s ({ok(rv['train_encode_s'] < 300)}) |", "",
        f"RQ-KMeans MSE by level {[round(x, 4) for x in rk['mse_by_level']]}, collision rate "
        f"{rk['collision_rate']:.2f}% · RQ-VAE reconstruction MSE "
        f"{rv['reconstruction_error']:.4f}, collision rate {rv['collision_rate']:.2f}%", ""])


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
