"""``onefeed bench decode``: our batched trie beam search vs per-beam prefix-allowed masking.

Both decoders run in the same process on the same trained model, the same users and the same
step function; they differ only in how the trie constraint is applied (one gather in a dense
child table vs a Python loop asking a dict trie for every beam, the HF/GENRE way).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import typer


def register(app: typer.Typer) -> None:
    app.command("decode")(bench_decode)


def bench_decode(
    run: Path = typer.Option(..., help="run dir written by onefeed train"),
    split: str = typer.Option("test"),
    users: int = typer.Option(2048, help="users decoded per configuration"),
    beams: str = typer.Option("20,50", help="comma-separated beam sizes"),
    batch_size: int = typer.Option(256),
    requests: int = typer.Option(300, help="single-user requests for the latency figures"),
    threads: int = typer.Option(1),
    seed: int = typer.Option(0),
    out: Path = typer.Option(None, help="default bench/results/decode.{json,md}"),
) -> None:
    import numpy as np
    import torch
    from rich.progress import Progress

    from onefeed.artifacts import git_commit, machine_info, write_json
    from onefeed.data.schemas import Dataset
    from onefeed.data.views import rec_cases
    from onefeed.decoding.beam import beam_search
    from onefeed.decoding.reference import DictTrie, reference_beam_search
    from onefeed.decoding.trie import Trie
    from onefeed.paths import results_root
    from onefeed.sid.table import SidTable
    from onefeed.tasks.rec import history_events, sid_tensor
    from onefeed.training import load_model

    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    manifest = json.loads((run / "manifest.json").read_text())
    ds, sid = Dataset.load(manifest["data"]), SidTable.load(manifest["sid"])
    model, run_cfg, vocab = load_model(run / "best")
    codes = sid_tensor(sid)
    cases = rec_cases(ds, split, run_cfg.model.max_len)
    pick = np.sort(np.random.default_rng(seed).choice(len(cases.users),
                                                      min(users, len(cases.users)), False))
    hist = cases.history[pick]
    trie, dict_trie = Trie.from_table(sid.codes, sid.codebook_sizes), DictTrie.from_codes(sid.codes)

    def decode(fn: Any, t: Any, beam: int, rows: np.ndarray, prof: dict[str, float]) -> Any:
        with torch.no_grad():
            state = model.last_state(history_events(rows, codes, vocab))
            return fn(model.step, state, t, len(rows), beam, profile=prof)

    rows_out = []
    with Progress() as bar:
        for beam in [int(b) for b in beams.split(",")]:
            record: dict[str, Any] = {"beam": beam, "users": len(hist)}
            results = {}
            for name, fn, t in (("ours", beam_search, trie),
                                ("reference", reference_beam_search, dict_trie)):
                task = bar.add_task(f"{name} beam {beam}", total=len(hist))
                prof: dict[str, float] = {}
                t0 = time.perf_counter()
                items = []
                for start in range(0, len(hist), batch_size):
                    res = decode(fn, t, beam, hist[start:start + batch_size], prof)
                    items.append(res.items)
                    bar.advance(task, min(batch_size, len(hist) - start))
                wall = time.perf_counter() - t0
                results[name] = torch.cat(items)
                record[name] = {"users_per_s": len(hist) / wall, "seconds": wall,
                                "decode_seconds": prof["total"], "mask_seconds": prof["mask"],
                                "mask_share_of_decode": prof["mask"] / prof["total"]}
            record["speedup"] = record["ours"]["users_per_s"] / record["reference"]["users_per_s"]
            record["decode_speedup"] = (record["reference"]["decode_seconds"]
                                        / record["ours"]["decode_seconds"])
            record["mask_speedup"] = (record["reference"]["mask_seconds"]
                                      / record["ours"]["mask_seconds"])
            record["identical_top_k"] = float(
                (results["ours"] == results["reference"]).all(dim=1).float().mean())
            rows_out.append(record)
        lat = []
        task = bar.add_task("single requests (beam 20)", total=requests)
        for i in range(requests):
            row = hist[i % len(hist)][None]
            t0 = time.perf_counter()
            decode(beam_search, trie, 20, row, {})
            lat.append(time.perf_counter() - t0)
            bar.advance(task)
    lat_ms = np.asarray(lat[5:] if len(lat) > 10 else lat) * 1000
    result = {
        "benchmark": "decode", "run": str(run), "split": split, "seed": seed, "threads": threads,
        "batch_size": batch_size, "n_items": sid.n_items, "codebook_sizes": sid.codebook_sizes,
        "model_config": run_cfg.model.__dict__, "commit": git_commit(), "machine": machine_info(),
        "throughput": rows_out,
        "latency_ms_beam20": {"p50": float(np.percentile(lat_ms, 50)),
                              "p99": float(np.percentile(lat_ms, 99)), "requests": len(lat_ms)},
    }
    out = out or results_root() / "decode"
    write_json(out.with_suffix(".json"), result)
    out.with_suffix(".md").write_text(_markdown(result))
    typer.echo(_markdown(result))


def _markdown(r: dict[str, Any]) -> str:
    lines = [
        "# Decoding speed: batched trie beam search vs per-beam prefix-allowed masking", "",
        f"run `{r['run']}`, split {r['split']}, {r['n_items']} items, codebooks "
        f"{list(r['codebook_sizes'])}, batch {r['batch_size']}, threads {r['threads']}, "
        f"seed {r['seed']}, commit `{r['commit']}`, CPU {r['machine'].get('cpu_model', '?')} "
        f"({r['machine'].get('cpu_count')} cores, shared)", "",
        "| beam | users | ours users/s | reference users/s | speed-up | beam-search speed-up "
        "| masking speed-up | mask share (ours) | mask share (reference) | identical top-K |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in r["throughput"]:
        lines.append(f"| {row['beam']} | {row['users']} | {row['ours']['users_per_s']:.0f} | "
                     f"{row['reference']['users_per_s']:.0f} | {row['speedup']:.1f}x | "
                     f"{row['decode_speedup']:.1f}x | {row['mask_speedup']:.1f}x | "
                     f"{100 * row['ours']['mask_share_of_decode']:.1f}% | "
                     f"{100 * row['reference']['mask_share_of_decode']:.1f}% | "
                     f"{100 * row['identical_top_k']:.1f}% |")
    lat = r["latency_ms_beam20"]
    lines += ["", f"Single request (1 user, beam 20, encode + decode): p50 {lat['p50']:.2f} ms, "
              f"p99 {lat['p99']:.2f} ms over {lat['requests']} requests.", "",
              "users/s and speed-up include encoding the history (the same model call on both "
              "sides); beam-search speed-up excludes it; masking speed-up compares only the time "
              "spent on the trie constraint (lookups + masking); mask share = that time / time "
              "in the beam search (which includes the model's per-level head).", ""]
    return "\n".join(lines)
