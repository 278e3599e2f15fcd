"""``onefeed bench decode``: our batched trie beam search vs per-beam prefix-allowed masking.

Both decoders run in the same process on the same trained model, the same users and the same
step function; they differ only in how the trie constraint is applied (row gathers in per-depth
slot tables vs a Python loop asking a dict trie for every beam, the HF/GENRE way). They run
batch by batch in alternation (after one untimed warm-up batch each), so a load change on the
shared machine hits both sides alike. With one thread, times are the thread's CPU time
(``time.thread_time``): time spent waiting for a core on a busy machine is not counted.
Wall-clock figures are kept in the JSON too.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer


def register(app: typer.Typer) -> None:
    app.command("decode")(bench_decode)


def bench_decode(
    run: Path = typer.Option(..., help="run dir written by onefeed train"),
    split: str = typer.Option("test", help="valid | test: whose histories are decoded"),
    users: int = typer.Option(2048, help="users decoded per configuration"),
    beams: str = typer.Option("20,50", help="comma-separated beam sizes"),
    batch_size: int = typer.Option(256, help="users per batched decode"),
    requests: int = typer.Option(300, help="single-user requests for the latency figures"),
    threads: int = typer.Option(1, help="torch threads"),
    seed: int = typer.Option(0, help="seed of the user sample and of torch"),
    out: Path = typer.Option(None, help="default bench/results/decode.{json,md}"),
) -> None:
    """Trie beam search vs per-beam prefix masking (HF/GENRE) on one trained run: users/s,
    masking share, single-request latency."""
    import numpy as np
    import torch
    from rich.progress import Progress

    from onefeed.artifacts import git_commit, machine_info, write_json
    from onefeed.cli.model import run_inputs
    from onefeed.data.schemas import Dataset
    from onefeed.data.views import rec_cases
    from onefeed.decoding import beam as beam_module
    from onefeed.decoding.beam import beam_search
    from onefeed.decoding.reference import DictTrie, reference_beam_search
    from onefeed.decoding.trie import Trie
    from onefeed.paths import results_root
    from onefeed.sid.table import SidTable
    from onefeed.tasks.rec import history_events, sid_tensor
    from onefeed.train.rec import load_model

    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    clock = time.thread_time if threads == 1 else time.perf_counter
    _, data_dir, sid_dir = run_inputs(run)
    ds, sid = Dataset.load(data_dir), SidTable.load(sid_dir)
    model, run_cfg, vocab = load_model(run / "best")
    codes = sid_tensor(sid)
    cases = rec_cases(ds, split, run_cfg.model.max_len)
    pick = np.sort(np.random.default_rng(seed).choice(len(cases.users),
                                                      min(users, len(cases.users)), False))
    hist = cases.history[pick]
    sides = {"ours": (beam_search, Trie.from_table(sid.codes, sid.codebook_sizes)),
             "reference": (reference_beam_search, DictTrie.from_codes(sid.codes))}

    def decode(name: str, beam: int, rows: np.ndarray, prof: dict[str, float]) -> Any:
        fn, trie = sides[name]
        with torch.inference_mode():
            t0 = clock()
            state = model.last_state(history_events(rows, codes, vocab))
            prof["encode"] = prof.get("encode", 0.0) + clock() - t0
            return fn(model.step, state, trie, len(rows), beam, profile=prof)

    saved_clock, beam_module.profile_clock = beam_module.profile_clock, clock
    try:
        with Progress() as bar:
            rows_out = [_compare(decode, hist, beam, batch_size, clock, bar)
                        for beam in [int(b) for b in beams.split(",")]]
            latency = _latency(decode, hist, requests, bar)
    finally:
        beam_module.profile_clock = saved_clock
    result = {
        "benchmark": "decode", "run": str(run), "split": split, "seed": seed, "threads": threads,
        "clock": clock.__name__, "batch_size": batch_size, "n_items": sid.n_items,
        "codebook_sizes": sid.codebook_sizes, "model_config": run_cfg.model.__dict__,
        "commit": git_commit(), "machine": machine_info(), "throughput": rows_out,
        "latency_ms_beam20": latency,
    }
    out = out or results_root() / "decode"
    write_json(out.with_suffix(".json"), result)
    out.with_suffix(".md").write_text(_markdown(result))
    typer.echo(_markdown(result))


def _compare(decode: Callable[..., Any], hist: Any, beam: int, batch_size: int,
             clock: Callable[[], float], bar: Any) -> dict[str, Any]:
    """Both decoders over the same users, alternating batch by batch -> one table row."""
    import torch

    names = ("ours", "reference")
    task = bar.add_task(f"beam {beam}: ours and reference", total=2 * len(hist))
    for name in names:  # warm-up (allocator, caches), untimed
        decode(name, beam, hist[:batch_size], {})
    prof: dict[str, dict[str, float]] = {name: {} for name in names}
    spent = {name: [0.0, 0.0] for name in names}  # clock, wall
    items: dict[str, list[torch.Tensor]] = {name: [] for name in names}
    for i, start in enumerate(range(0, len(hist), batch_size)):
        rows = hist[start:start + batch_size]
        for name in (names if i % 2 == 0 else names[::-1]):
            t0, w0 = clock(), time.perf_counter()
            items[name].append(decode(name, beam, rows, prof[name]).items)
            spent[name][0] += clock() - t0
            spent[name][1] += time.perf_counter() - w0
            bar.advance(task, len(rows))
    record: dict[str, Any] = {"beam": beam, "users": len(hist)}
    for name in names:
        p = prof[name]
        record[name] = {"users_per_s": len(hist) / spent[name][0], "seconds": spent[name][0],
                        "wall_seconds": spent[name][1], "encode_seconds": p["encode"],
                        "decode_seconds": p["total"], "mask_seconds": p["mask"],
                        "step_seconds": p["step"], "mask_share_of_decode": p["mask"] / p["total"]}
        if "advance" in p:  # ours: the node/code lookups after top-k, inside mask_seconds
            record[name]["advance_seconds"] = p["advance"]
    ours, ref = record["ours"], record["reference"]
    record["speedup"] = ours["users_per_s"] / ref["users_per_s"]
    record["wall_speedup"] = ref["wall_seconds"] / ours["wall_seconds"]
    record["decode_speedup"] = ref["decode_seconds"] / ours["decode_seconds"]
    record["mask_speedup"] = ref["mask_seconds"] / ours["mask_seconds"]
    same = torch.cat(items["ours"]) == torch.cat(items["reference"])
    record["identical_top_k"] = float(same.all(dim=1).float().mean())
    return record


def _latency(decode: Callable[..., Any], hist: Any, requests: int, bar: Any) -> dict[str, Any]:
    """Wall-clock latency of single-user requests (encode + beam-20 decode)."""
    import numpy as np

    lat = []
    task = bar.add_task("single requests (beam 20)", total=requests)
    for i in range(requests):
        t0 = time.perf_counter()
        decode("ours", 20, hist[i % len(hist)][None], {})
        lat.append(time.perf_counter() - t0)
        bar.advance(task)
    lat_ms = np.asarray(lat[5:] if len(lat) > 10 else lat) * 1000
    return {"p50": float(np.percentile(lat_ms, 50)), "p99": float(np.percentile(lat_ms, 99)),
            "requests": len(lat_ms)}


def _markdown(r: dict[str, Any]) -> str:
    lines = [
        "# Decoding speed: batched trie beam search vs per-beam prefix-allowed masking", "",
        f"run `{r['run']}`, split {r['split']}, {r['n_items']} items, codebooks "
        f"{list(r['codebook_sizes'])}, batch {r['batch_size']}, threads {r['threads']}, "
        f"clock {r.get('clock', 'perf_counter')}, seed {r['seed']}, commit `{r['commit']}`, "
        f"CPU {r['machine'].get('cpu_model', '?')} ({r['machine'].get('cpu_count')} cores, "
        "shared)", "",
        "| beam | users | ours users/s | reference users/s | speed-up (wall) "
        "| beam-search speed-up | masking speed-up | mask share (ours) | mask share (reference) "
        "| model step s (ours / reference) | identical top-K |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in r["throughput"]:
        ours, ref = row["ours"], row["reference"]
        lines.append(f"| {row['beam']} | {row['users']} | {ours['users_per_s']:.0f} | "
                     f"{ref['users_per_s']:.0f} | {row['speedup']:.1f}x "
                     f"({row.get('wall_speedup', row['speedup']):.1f}x) | "
                     f"{row['decode_speedup']:.1f}x | {row['mask_speedup']:.1f}x | "
                     f"{100 * ours['mask_share_of_decode']:.1f}% | "
                     f"{100 * ref['mask_share_of_decode']:.1f}% | "
                     f"{ours.get('step_seconds', float('nan')):.2f} / "
                     f"{ref.get('step_seconds', float('nan')):.2f} | "
                     f"{100 * row['identical_top_k']:.1f}% |")
    split = []
    for row in r["throughput"]:
        if "advance_seconds" in row["ours"]:
            share = row["ours"]["advance_seconds"] / row["ours"]["decode_seconds"]
            split.append(f"{100 * share:.1f}% at beam {row['beam']}")
    if split:
        lines += ["", "Of our mask share, advancing beams (looking up the chosen slots' codes and "
                  "next trie nodes) is " + ", ".join(split) + " of the beam search; the rest "
                  "restricts candidates to allowed codes."]
    lat = r["latency_ms_beam20"]
    lines += ["", f"Single request (1 user, beam 20, encode + decode, wall clock): p50 "
              f"{lat['p50']:.2f} ms, p99 {lat['p99']:.2f} ms over {lat['requests']} requests.",
              "", "users/s and speed-up include encoding the history (the same model call on "
              "both sides); beam-search speed-up excludes it; masking speed-up compares only the "
              "time spent on the trie constraint (ours: slot-table lookups, gather, padding "
              "bias, advancing trie nodes; reference: the per-beam dict-trie loop and mask "
              "writes); mask share = that time / time in the beam search, which includes the "
              "model's per-level step (its seconds are shown: ours calls it on cache-sized "
              "blocks of beams, the reference on all beams at once).", ""]
    return "\n".join(lines)
