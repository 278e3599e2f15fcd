"""OneBar generator latency (issue 15): one trigger at a time, beam 8, top 8, one CPU thread.

    OMP_NUM_THREADS=1 nice -n 19 python bench/onebar_latency.py [--triggers 300] [--set k=v]

OneBar §1/§3.3 budgets 20-30 ms per bottom-bar request. The worst case is timed: an untrained
model of the default size (``SuggesterConfig()``, or ``--set key=value`` overrides, e.g.
``--set dec_layers=1`` or ``--set max_query_len=8``) with EOS's bias pushed to -1e4, so no
hypothesis ends before the length limit and every request runs all max_query_len + 1 decoder
steps, the most any trained model of that config can run. ``--no-no-eos`` times the plain
untrained model instead, whose near-uniform next-token distribution lets the beam stop after
~3 steps (no live beam can beat 8 finished 1-2 word queries): roughly a model that writes
2-word queries. Evidence strings are ``--evidence-pieces`` random word pieces in 4 [SEP]
fields; the output vocabulary is ``--out-vocab`` random words. Prints p50 / p90 / p99 / max
in ms, for wall time and for the process's CPU time (on a shared machine the wall time
includes waiting for a core; the CPU time is what one thread spends), and writes them as
JSON with ``--json``. Not a test: both depend on the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import time

import numpy as np
import torch

from onefeed import config as config_lib
from onefeed.onebar.model import QuerySuggester, SuggesterConfig
from onefeed.tokens import wordpiece_tokenizer


def random_evidence(rng: random.Random, words: list[str], pieces: int, fields: int = 4) -> str:
    per = max(1, pieces // fields)
    return " [SEP] ".join(" ".join(rng.choice(words) for _ in range(per)) for _ in range(fields))


def percentiles(name: str, times: list[float]) -> dict[str, float]:
    ms = np.asarray(times)
    return {f"{name}_{q}_ms": float(np.percentile(ms, int(q[1:]))) for q in ("p50", "p90", "p99")
            } | {f"{name}_max_ms": float(ms.max())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--triggers", type=int, default=300)
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--out-vocab", type=int, default=6000)
    ap.add_argument("--evidence-pieces", type=int, default=120)
    ap.add_argument("--beam", type=int, default=8)
    ap.add_argument("--k", type=int, default=8)
    ap.add_argument("--no-eos", action=argparse.BooleanOptionalAction, default=True)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="SuggesterConfig override, e.g. --set dec_layers=1")
    ap.add_argument("--json", default="")
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    rng = random.Random(0)
    cfg = config_lib.load(SuggesterConfig, None, args.set)
    vocab = [w for w in wordpiece_tokenizer().get_vocab() if w.isalpha() and w.islower()]
    model = QuerySuggester.build([rng.choice(vocab) for _ in range(args.out_vocab)], cfg).eval()
    if args.no_eos:
        with torch.no_grad():
            model.out_bias[0] = -1e4  # local 0 = EOS: every beam runs to the length limit
    evidence = [random_evidence(rng, vocab, args.evidence_pieces)
                for _ in range(args.warmup + args.triggers)]
    wall, cpu = [], []
    for i, ev in enumerate(evidence):
        t0, c0 = time.perf_counter(), time.process_time()
        out = model.suggest([ev], k=args.k, beam=args.beam)
        if i >= args.warmup:
            wall.append((time.perf_counter() - t0) * 1000)
            cpu.append((time.process_time() - c0) * 1000)
    assert len(out[0]) == args.k
    res = {**percentiles("wall", wall), **percentiles("cpu", cpu),
           "triggers": args.triggers, "beam": args.beam, "k": args.k,
           "n_out": model.cfg.n_out, "evidence_pieces": args.evidence_pieces,
           "no_eos": args.no_eos, "decoder_steps_max": model.cfg.max_query_len + 1,
           "threads": torch.get_num_threads(),
           "params": sum(p.numel() for p in model.parameters()),
           "config": model.config_json()["model"],
           "machine": platform.processor() or platform.machine(),
           "load_avg_1min": os.getloadavg()[0]}
    print(json.dumps(res, indent=2))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=2)


if __name__ == "__main__":
    main()
