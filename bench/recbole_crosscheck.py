"""RecBole cross-check (issue 5, item 7): RecBole's SASRec on *our* leave-one-out split.

Run with a Python that has RecBole (a separate virtualenv; never imported by onefeed or its tests):

    python3.11 -m venv /tmp/recbole-venv
    /tmp/recbole-venv/bin/pip install torch==2.13.0 recbole "numpy<2" "pandas<2.3" "scipy<1.14"
    cd /tmp/recbole-run   # RecBole writes log/ and log_tensorboard/ into the working directory
    OMP_NUM_THREADS=1 nice -n 10 /tmp/recbole-venv/bin/python \
        /work/main/bench/recbole_crosscheck.py --suite ml-100k --epochs 7 --batch-size 256
    # re-evaluate a saved run without training: add --checkpoint <ckpt .pth> --log <its RecBole log>

Steps: (1) export the prepared dataset with ``python -m onefeed.export.recbole`` (run by the
project's own interpreter, ``--onefeed-python``) -- RecBole's time-ordered leave-one-out on
``timestamp = position`` gives exactly our train / valid / test; (2) train RecBole's SASRec with
its defaults (CE over all items, no sampled negatives, full ranking; RecBole does not mask seen
items for sequential models, like our default protocol) and evaluate on test; (3) read our
``sasrec`` row from ``bench/results/<suite>/results.json``; (4) merge both into
``bench/results/recbole-crosscheck.json`` and rewrite ``recbole-crosscheck.md``.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import subprocess
import sys
import time
import tomllib
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
METRICS = ["recall@5", "recall@10", "recall@20", "ndcg@5", "ndcg@10", "ndcg@20", "mrr@10"]


def suite_history(suite: str) -> int:
    cfg = tomllib.loads((ROOT / "configs" / "bench" / f"{suite}.toml").read_text())
    return int(cfg["protocol"]["max_history"])


def export(args: argparse.Namespace, name: str, history: int) -> Path:
    """Our split as RecBole atomic files, written by the onefeed package itself."""
    cmd = [args.onefeed_python, "-m", "onefeed.export.recbole", "--data", str(args.data),
           "--out", str(args.export_dir), "--name", name, "--max-history", str(history)]
    subprocess.run(cmd, check=True, cwd=ROOT)
    return Path(args.export_dir) / name


def run_recbole(args: argparse.Namespace, name: str, export_dir: Path) -> dict:
    """Train + test one RecBole model; returns its config, metrics and timings."""
    import torch
    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation
    from recbole.trainer import Trainer
    from recbole.utils import get_model, init_logger, init_seed

    torch.set_num_threads(1)
    overrides = {
        "data_path": str(export_dir.parent), "checkpoint_dir": str(Path(args.export_dir) / "ckpt"),
        "device": "cpu", "use_gpu": False, "show_progress": False, "seed": args.seed,
        "reproducibility": True, "epochs": args.epochs, "stopping_step": args.stopping_step,
        "train_batch_size": args.batch_size, "eval_batch_size": 1024, "worker": 0,
    }
    config = Config(model=args.model, dataset=name,
                    config_file_list=[str(export_dir / "recbole.yaml")], config_dict=overrides)
    init_seed(config["seed"], config["reproducibility"])
    init_logger(config)
    dataset = create_dataset(config)
    train, valid, test = data_preparation(config, dataset)
    init_seed(config["seed"], config["reproducibility"])
    model = get_model(config["model"])(config, train._dataset).to(config["device"])
    trainer = Trainer(config, model)
    # RecBole 1.2.1 reloads its own best checkpoint with torch.load, whose weights_only default
    # (True since torch 2.6) rejects the config it pickles in there: load our own file in full.
    torch.load = functools.partial(torch.load, weights_only=False)
    if args.checkpoint:  # re-evaluate a finished run (train time and curve from its log)
        curve, train_seconds, epochs = log_summary(args.log)
        best_valid, best_valid_result = max(curve), {"ndcg@10": max(curve)}
        start = time.perf_counter()
        test_result = trainer.evaluate(test, load_best_model=True, model_file=str(args.checkpoint),
                                       show_progress=False)
        test_seconds = time.perf_counter() - start
    else:
        start = time.perf_counter()
        best_valid, best_valid_result = trainer.fit(train, valid, saved=True, show_progress=False)
        train_seconds = time.perf_counter() - start
        curve, _, epochs = log_summary(current_log())
        start = time.perf_counter()
        test_result = trainer.evaluate(test, load_best_model=True, show_progress=False)
        test_seconds = time.perf_counter() - start
    keys = ["MAX_ITEM_LIST_LENGTH", "n_layers", "n_heads", "hidden_size", "inner_size",
            "hidden_dropout_prob", "attn_dropout_prob", "hidden_act", "loss_type",
            "learning_rate", "train_batch_size", "epochs", "stopping_step", "valid_metric",
            "eval_args", "train_neg_sample_args", "seed"]
    return {
        "model": args.model,
        "config": {k: config[k] for k in keys if k in config},
        "dataset": {"users": dataset.user_num - 1, "items": dataset.item_num - 1,
                    "interactions": sum(1 for _ in open(export_dir / f"{name}.inter")) - 1,
                    "prefix_instances": len(dataset.inter_feat),
                    "train_instances": len(train.dataset), "valid_cases": len(valid.dataset),
                    "test_cases": len(test.dataset)},
        "best_valid_ndcg@10": float(best_valid),
        "valid": {k: float(v) for k, v in best_valid_result.items()},
        "test": {k: float(v) for k, v in test_result.items()},
        "epochs_run": epochs,
        "valid_ndcg10_curve": curve,
        "train_seconds": round(train_seconds, 1),
        "test_seconds": round(test_seconds, 1),
    }


def current_log() -> str:
    """The log file RecBole's ``init_logger`` opened in this process."""
    import logging
    return next(h.baseFilename for h in logging.getLogger().handlers
                if hasattr(h, "baseFilename"))


def log_summary(path: str | Path) -> tuple[list[float], float, int]:
    """RecBole log -> (valid NDCG@10 per epoch, summed training seconds, epochs run); its
    Trainer keeps no curve itself."""
    curve, seconds = [], 0.0
    for line in open(path, encoding="utf-8"):
        if "evaluating" in line and "valid_score:" in line:
            curve.append(float(line.rsplit("valid_score:", 1)[1].strip(" ]\n")))
        elif " training [time: " in line:
            seconds += float(line.split(" training [time: ", 1)[1].split("s", 1)[0])
    return curve, seconds, len(curve)


def ours(suite: str, row: str) -> dict:
    path = ROOT / "bench" / "results" / suite / "results.json"
    res = json.loads(path.read_text())
    m = res["models"][row]
    return {
        "row": row, "results_json": str(path.relative_to(ROOT)), "commit": res["commit"],
        "params": m["params"], "seeds": m["seeds"], "dataset_dir": m["dataset"]["dir"],
        "eval_history": m.get("eval_history"), "protocol": res["protocol"],
        "metrics": {k: {"mean": m["metrics"][k]["mean"], "std": m["metrics"][k]["std"],
                        "per_seed": m["metrics"][k]["per_seed"]}
                    for k in METRICS if k in m["metrics"]},
        "train_seconds": m["train_seconds"]["mean"],
    }


def versions() -> dict:
    import numpy
    import recbole
    import torch
    out = {"python": platform.python_version(), "recbole": recbole.__version__,
           "torch": torch.__version__, "numpy": numpy.__version__}
    for mod in ("pandas", "scipy"):
        try:
            out[mod] = __import__(mod).__version__
        except ImportError:
            pass
    return out


def machine() -> dict:
    cpu = ""
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"platform": platform.platform(), "cpu_count": os.cpu_count(), "cpu_model": cpu,
            "threads": 1}


def without_note(argv: list[str]) -> list[str]:
    """The command line minus ``--note TEXT`` (the note is printed under the table anyway)."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--note":
            skip = True
        elif not arg.startswith("--note="):
            out.append(arg)
    return out


def git_commit() -> str:
    sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True,
                         text=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain"], cwd=ROOT, capture_output=True,
                           text=True).stdout.strip()
    return sha + ("+dirty" if dirty else "")


def render(doc: dict) -> str:
    lines = ["# RecBole cross-check (issue 5, item 7)", "",
             "RecBole's SASRec trained and evaluated by RecBole on **our** exported leave-one-out "
             "split (`python -m onefeed.export.recbole`: RecBole atomic files with `timestamp` = "
             "our "
             "event position, `eval_args = {split: {LS: valid_and_test}, order: TO, mode: full}`), "
             "beside our `sasrec` row from `onefeed bench`. Both: cross-entropy over all items, "
             "full ranking, no sampled negatives, seen items not masked (RecBole masks history "
             "only for non-sequential models), same history cut.", "",
             f"Written by `bench/recbole_crosscheck.py` ({doc['updated']}); versions "
             + ", ".join(f"{k} {v}" for k, v in doc["versions"].items())
             + f"; machine: {doc['machine']['cpu_model']} ({doc['machine']['cpu_count']} cores, "
               "1 torch thread, shared with other jobs).", ""]
    for suite, run in doc["suites"].items():
        rb, us = run["recbole"], run["onefeed"]
        lines += [f"## {suite}", "", f"Command: `{run['command']}`  ",
                  f"Commit: `{run['commit']}`  ",
                  f"Data: `{run['data']}` (history {run['history']}); RecBole saw "
                  f"{rb['dataset']['users']} users, {rb['dataset']['items']} items, "
                  f"{rb['dataset']['interactions']} interactions, {rb['dataset']['test_cases']} "
                  "test cases.", "",
                  "| metric | RecBole SASRec (1 seed) | ours `sasrec` (mean ± std, "
                  f"{len(us['seeds'])} seeds) | ours / RecBole |", "|---|---|---|---|"]
        for k in METRICS:
            if k in rb["test"] and k in us["metrics"]:
                a, b = rb["test"][k], us["metrics"][k]
                ratio = f"{b['mean'] / a:.2f}" if a else "—"
                lines.append(f"| {k} | {a:.4f} | {b['mean']:.4f} ± {b['std']:.4f} | {ratio} |")
        cfg = rb["config"]
        lines += ["", f"RecBole: {rb['model']} defaults ({cfg.get('n_layers')} layers, "
                  f"{cfg.get('hidden_size')}-d, inner {cfg.get('inner_size')}, dropout "
                  f"{cfg.get('hidden_dropout_prob')}/{cfg.get('attn_dropout_prob')}, lr "
                  f"{cfg.get('learning_rate')}, batch {cfg.get('train_batch_size')}, loss "
                  f"{cfg.get('loss_type')}), at most {cfg.get('epochs')} epochs, early stop on "
                  "valid "
                  f"NDCG@10 after {cfg.get('stopping_step')} epochs without gain; ran "
                  f"{rb.get('epochs_run')} epochs, valid NDCG@10 per epoch "
                  f"{', '.join(f'{v:.4f}' for v in rb.get('valid_ndcg10_curve', []))} (best "
                  f"{rb['best_valid_ndcg@10']:.4f}); train {rb['train_seconds']:.0f} s.  ",
                  f"Ours: `{us['results_json']}` row `{us['row']}` (commit `{us['commit']}`, data "
                  f"`{us['dataset_dir']}`), params `{json.dumps(us['params'])}`; train "
                  f"{us['train_seconds']:.0f} s per seed.", ""]
        if run.get("note"):
            lines += [run["note"], ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--suite", required=True, help="bench suite whose split and sasrec row to use")
    p.add_argument("--data", type=Path, help="prepared Dataset dir (default runs/<suite>/data)")
    p.add_argument("--model", default="SASRec")
    p.add_argument("--row", default="sasrec", help="our results.json row to compare with")
    p.add_argument("--epochs", type=int, default=200)
    p.add_argument("--stopping-step", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=2048)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--export-dir", type=Path, default=Path("/tmp/recbole-export"))
    p.add_argument("--onefeed-python", default=str(ROOT / ".venv" / "bin" / "python"))
    p.add_argument("--note", default="", help="free text added under the suite's table")
    p.add_argument("--checkpoint", type=Path, help="evaluate this saved RecBole model, no training")
    p.add_argument("--log", type=Path, help="with --checkpoint: the RecBole log of that run")
    args = p.parse_args(argv)
    args.data = args.data or ROOT / "runs" / args.suite / "data"
    name = "onefeed_" + args.suite.replace("-", "")  # RecBole hard-wires its own 'ml-100k'
    history = suite_history(args.suite)
    export_dir = export(args, name, history)
    result = run_recbole(args, name, export_dir)
    out_json = ROOT / "bench" / "results" / "recbole-crosscheck.json"
    doc = json.loads(out_json.read_text()) if out_json.exists() else {"suites": {}}
    doc.update(updated=datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
               versions=versions(), machine=machine(), venv=sys.prefix)
    doc["suites"][args.suite] = {
        "command": "OMP_NUM_THREADS=1 nice -n 10 " + Path(sys.executable).as_posix()
                   + " bench/recbole_crosscheck.py " + " ".join(without_note(argv or sys.argv[1:])),
        "commit": git_commit(), "data": str(args.data), "history": history,
        "recbole": result, "onefeed": ours(args.suite, args.row), "note": args.note,
    }
    out_json.write_text(json.dumps(doc, indent=2, default=str) + "\n")
    (out_json.with_suffix(".md")).write_text(render(doc) + "\n")
    print(json.dumps({k: result["test"].get(k) for k in ("recall@10", "ndcg@10")}))


if __name__ == "__main__":
    main()
