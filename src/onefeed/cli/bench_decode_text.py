"""``onefeed bench decode-text``: our word-piece beam search vs the reference one.

Both decode the same users' next queries (NSQP) from the same encoded states of one trained
joint run, batch by batch in alternation (after an untimed warm-up each), so a load change
hits both sides alike. Ours is ``text.text_beam_search`` with the text head's key/value cache
(``TextSteps``); the reference is ``reference.reference_text_beam_search`` over full-prefix
passes (``full_prefix_logits``): every beam fed at every step, a top-k per beam then a
cross-beam one, no pruning. With one thread times are the thread's CPU time.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import typer


def register(app: typer.Typer) -> None:
    app.command("decode-text")(bench_decode_text)


def bench_decode_text(
    run: Path = typer.Option(Path("runs/synthetic/model/onefeed/seed0"),
                             help="a joint run (onefeed run's onefeed row)"),
    users: int = typer.Option(512, min=1, help="users decoded per batch size"),
    batches: str = typer.Option("1,8,32,128", help="comma-separated batch sizes"),
    beam: int = typer.Option(20, min=1, help="beam width (as /suggest's suggest_beam)"),
    k: int = typer.Option(5, min=1, help="queries per user (as /suggest)"),
    max_words: int = typer.Option(10, min=1, help="longest query in word pieces"),
    threads: int = typer.Option(1, min=1, help="torch threads"),
    seed: int = typer.Option(0, help="seed of the user sample"),
    out: Path = typer.Option(None, help="default bench/results/decode-text.{json,md}"),
) -> None:
    """Next-query beam search: ours (cache, live beams, one top-k, pruning) vs reference."""
    import numpy as np
    import torch
    from rich.progress import Progress

    from onefeed.artifacts import git_commit, machine_info, write_json
    from onefeed.decoding.reference import reference_text_beam_search
    from onefeed.decoding.text import text_beam_search
    from onefeed.evaluation.joint import TextSteps, full_prefix_logits, hypotheses
    from onefeed.paths import results_root
    from onefeed.predict import Predictor

    torch.set_num_threads(threads)
    clock = time.thread_time if threads == 1 else time.perf_counter
    pred = Predictor.from_run(run, threads=threads)
    if pred.joint is None:
        raise typer.BadParameter(f"--run {run}: not a joint run (no query generation)")
    jp, model = pred.joint, pred.joint.model
    ids = pred.ds.users["user_id"].to_list()
    pick = np.random.default_rng(seed).choice(len(ids), min(users, len(ids)), replace=False)
    who = [str(ids[i]) for i in pick]
    cont, n_hyp = jp._continuation_pieces(), hypotheses(k, beam, max_words)
    sides = {"ours": (text_beam_search, lambda c: TextSteps(model, c, cont)),
             "reference": (reference_text_beam_search,
                           lambda c: full_prefix_logits(model, c, cont))}

    def decode(name: str, cond: torch.Tensor, fed: list[int]) -> tuple[torch.Tensor, ...]:
        search, make = sides[name]
        step = make(cond)

        def counted(rows: torch.Tensor, local: torch.Tensor) -> torch.Tensor:
            fed.append(len(rows))
            return step(rows, local)

        with torch.inference_mode():
            return search(counted, len(cond), beam, n_hyp, max_words)

    rows_out = []
    with Progress() as bar, torch.inference_mode():
        for size in [int(b) for b in batches.split(",")]:
            conds = []
            for start in range(0, len(who), size):
                mini, idx = pred._joint_rows(who[start:start + size], "all")
                conds.append(jp._states(idx, "NSQP", mini, None))
            task = bar.add_task(f"batch {size}: ours and reference", total=2 * len(who))
            for name in sides:
                decode(name, conds[0], [])  # warm-up, untimed
            spent = {name: 0.0 for name in sides}
            fed: dict[str, list[int]] = {name: [] for name in sides}
            outs: dict[str, list[tuple[torch.Tensor, ...]]] = {name: [] for name in sides}
            for i, cond in enumerate(conds):
                for name in (list(sides) if i % 2 == 0 else list(sides)[::-1]):
                    t0 = clock()
                    outs[name].append(decode(name, cond, fed[name]))
                    spent[name] += clock() - t0
                    bar.advance(task, len(cond))
            pairs = list(zip(outs["ours"], outs["reference"]))
            same = [torch.equal(a[0], b[0]) for a, b in pairs]
            drift = max(float((a[1] - b[1]).nan_to_num(0.0, 0.0, 0.0).abs().max())
                        for a, b in pairs)
            record: dict[str, Any] = {"batch": size, "users": len(who)}
            for name in sides:
                record[name] = {"users_per_s": len(who) / spent[name], "seconds": spent[name],
                                "model_calls": len(fed[name]),
                                "beam_rows_fed": int(sum(fed[name]))}
            record["speedup"] = spent["reference"] / spent["ours"]
            record["identical_tokens"] = float(np.mean(same))  # share of batches
            record["max_score_difference"] = drift  # float summation order only
            rows_out.append(record)
    cfg = model.cfg
    result = {"benchmark": "decode-text", "run": str(run), "seed": seed, "threads": threads,
              "clock": clock.__name__, "beam": beam, "k": k, "hypotheses": n_hyp,
              "max_words": max_words, "model": {"d_model": cfg.d_model,
                                                "text_layers": cfg.text_layers,
                                                "n_text_vocab": cfg.n_text_vocab},
              "commit": git_commit(), "machine": machine_info(), "throughput": rows_out}
    out = out or results_root() / "decode-text"
    write_json(out.with_suffix(".json"), result)
    out.with_suffix(".md").write_text(_markdown(result))
    typer.echo(_markdown(result))


def _markdown(r: dict[str, Any]) -> str:
    m = r["model"]
    lines = ["# Next-query decoding speed: our text beam search vs the reference", "",
             f"run `{r['run']}` (d {m['d_model']}, {m['text_layers']} text block(s), "
             f"{m['n_text_vocab']} word pieces), beam {r['beam']}, {r['k']} queries "
             f"({r['hypotheses']} hypotheses) of up to {r['max_words']} pieces, threads "
             f"{r['threads']}, clock {r['clock']}, seed {r['seed']}, commit `{r['commit']}`, "
             f"CPU {r['machine'].get('cpu_model', '?')} ({r['machine'].get('cpu_count')} cores)",
             "", "| batch | users | ours users/s | reference users/s | speed-up "
             "| beam rows fed (ours / reference) | identical queries | max score difference |",
             "|---|---|---|---|---|---|---|---|"]
    for row in r["throughput"]:
        o, ref = row["ours"], row["reference"]
        lines.append(f"| {row['batch']} | {row['users']} | {o['users_per_s']:.0f} | "
                     f"{ref['users_per_s']:.0f} | {row['speedup']:.2f}x | "
                     f"{o['beam_rows_fed']} / {ref['beam_rows_fed']} | "
                     f"{100 * row['identical_tokens']:.1f}% | "
                     f"{row['max_score_difference']:.1e} |")
    lines += ["", "Both sides decode the same encoded states (encoding is not timed). Ours: "
              "the text head's key/value cache, only live beams fed (one per user at the first "
              "step), one top-k per user over all beams' continuations, and beams that can no "
              "longer enter the top hypotheses dropped; the reference runs the whole prefix "
              "through the head for every beam at every step. Identical queries: share of batches "
              "whose returned word pieces are the same on both sides for every user; their "
              "log-probabilities differ only by float summation order.", ""]
    return "\n".join(lines)
