"""``onefeed bench beauty-onebar``: content-grounded query suggestion (issue 15, OneBar Table 4
shape) -> bench/results/<suite>/{results.json, report.md, per_case.parquet}.

A row is a function ``(context, seed) -> suggest_fn`` (``evaluate.SuggestFn``: trigger,
history, k -> queries) registered in ``ROWS``; the suite refuses names not registered. Every
row is scored through ``labels.safe_suggestions`` on the split's examples of the OneBar
artifact (built by ``onebar.pipeline.build`` when missing) with ``onebar.evaluate``; latency is
one ``suggest_fn`` call per trigger, timed over ``latency_triggers`` triggers after the scoring
pass has filled every per-item cache. Each row is tested against the best baseline (hr@8,
mrr@8) with ``evaluate.paired`` over per-case scores averaged over seeds.

The model rows ``onebar-stage1``, ``onebar-stage1-verbose``, ``onebar-stage2``, ``onebar``
train their stage (``bench.onebar_train``, settings in the suite's ``[train]`` section), save it
under ``<artifact>/models/<row>/seed<seed>`` and reuse a saved model whose config matches; a
row returning a ``many(examples, k)`` method is scored in batches (latency stays one call per
trigger). ``checkpoint_row`` serves a model saved there by other means.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import polars as pl

from onefeed import config as cfglib
from onefeed.artifacts import dir_lock, fingerprint, git_commit, machine_info, write_json
from onefeed.bench.onebar_train import STAGE_ROWS, STAGES_OF, OneBarTrainConfig, trained_row
from onefeed.onebar import pipeline
from onefeed.onebar.baselines import BASELINES
from onefeed.onebar.config import OneBarConfig, load_config as load_onebar_config
from onefeed.onebar.evaluate import SuggestFn, evaluate, paired, score
from onefeed.onebar.labels import Example, safe_suggestions
from onefeed.onebar.suggesters import ModelSuggester
from onefeed.paths import REPO, results_root

METRICS: tuple[str, ...] = ("hr@1", "hr@4", "hr@8", "mrr@1", "mrr@4", "mrr@8", "edit_hr@8",
                            "distinct_2", "retrievability", "reject_precision",
                            "reject_recall", "blocked_exposed")
PAIRED: tuple[str, ...] = ("hr@8", "mrr@8")
CASE_COLUMNS: tuple[str, ...] = ("hr@1", "hr@4", "hr@8", "mrr@1", "mrr@4", "mrr@8",
                                 "edit_hr@8")


@dataclass
class OneBarSuiteConfig:
    RANGES: ClassVar[dict[str, str]] = {"latency_triggers": ">= 1", "max_cases": ">= 0",
                                        "threads": ">= 1"}
    suite: str = "beauty-onebar"
    description: str = ""
    data: str = "runs/beauty/data"  # prepared dataset (onefeed data prepare)
    prepare: str = "configs/prepare/beauty.toml"  # how to build ``data`` (hint only)
    artifact: str = "runs/beauty/onebar"  # OneBar artifact; built here when missing
    embeddings: str = ""  # reuse an .npy / SID dir's embeddings ("" = MiniLM over item text)
    onebar: str = "configs/onebar/default.toml"  # OneBarConfig TOML used to build the artifact
    onebar_overrides: list[str] = field(default_factory=list)
    split: str = "test"
    rows: list[str] = field(default_factory=lambda: list(BASELINES))
    seeds: list[int] = field(default_factory=lambda: [0])
    latency_triggers: int = 500
    max_cases: int = 0  # 0 = every example of the split; else a fixed (seed 0) subset
    threads: int = 1
    train: OneBarTrainConfig = field(default_factory=OneBarTrainConfig)  # the model rows

    def check(self) -> None:
        if self.split not in ("valid", "test"):
            raise ValueError(f"split must be valid or test, got {self.split!r}")
        check_rows(self.rows)


def load_config(path: str | Path, overrides: list[str] | None = None) -> OneBarSuiteConfig:
    return cfglib.load(OneBarSuiteConfig, path, overrides)


# ---- rows -----------------------------------------------------------------------------------

@dataclass
class OneBarContext:
    run: pipeline.OneBarRun
    cfg: OneBarConfig
    examples: list[Example]  # the scored split
    n_matches: Callable[[list[str]], np.ndarray] | None = None  # BM25 retrievability
    train: OneBarTrainConfig = field(default_factory=OneBarTrainConfig)
    progress: Callable[[str], None] = print
    trainers: dict[int, Any] = field(default_factory=dict)  # seed -> onebar_train.Trainer

    @property
    def ds(self):
        return self.run.dataset()


RowFn = Callable[[OneBarContext, int], SuggestFn]


@dataclass
class Row:
    fn: RowFn
    deterministic: bool = False  # seeds beyond the first are skipped
    kind: str = "model"
    note: str = ""


def baseline_row(name: str) -> RowFn:
    def make(ctx: OneBarContext, seed: int) -> SuggestFn:
        model = BASELINES[name]()
        model.fit(ctx.ds, ctx.run.index, ctx.cfg)
        return model.suggest
    return make


def checkpoint_row(name: str, beam: int | None = None) -> RowFn:
    """A row serving ``<artifact>/models/<name>/seed<seed>`` (``QuerySuggester.load``)."""
    def make(ctx: OneBarContext, seed: int) -> SuggestFn:
        path = ctx.run.directory / "models" / name / f"seed{seed}"
        if not path.is_dir():
            raise cfglib.ConfigError(f"row {name}: no trained model at {path} (save a "
                                     "QuerySuggester there, or register a training row)")
        from onefeed.onebar.model import QuerySuggester

        s = ModelSuggester(QuerySuggester.load(path), ctx.run.index, ctx.cfg, beam)
        return lambda trigger, history, k: s.suggest([trigger], [history], k)[0]
    return make


ROWS: dict[str, Row] = {
    **{name: Row(baseline_row(name), True, "baseline") for name in BASELINES},
    **{name: Row(trained_row(name), False, "model") for name in STAGE_ROWS},
}


def check_rows(names: list[str]) -> None:
    unknown = [n for n in names if n not in ROWS]
    if unknown:
        raise cfglib.ConfigError(f"rows {unknown} not registered; known: {sorted(ROWS)} "
                         "(onefeed.bench.onebar.ROWS)")


# ---- one row --------------------------------------------------------------------------------

def guarded(fn: SuggestFn, block_list: list[str]) -> SuggestFn:
    """``fn`` through the exposure guard (idempotent for the baselines, which guard already)."""
    return lambda trigger, history, k: safe_suggestions(fn(trigger, history, k), block_list, k)


def latency_ms(fn: SuggestFn, examples: list[Example], k: int, n: int) -> dict[str, float]:
    """p50 / p99 / mean milliseconds of one ``fn`` call, over ``n`` triggers (cycled)."""
    times = []
    for i in range(n):
        ex = examples[i % len(examples)]
        start = time.perf_counter()
        fn(ex.trigger, list(ex.history), k)
        times.append((time.perf_counter() - start) * 1e3)
    arr = np.asarray(times)
    return {"p50": float(np.percentile(arr, 50)), "p99": float(np.percentile(arr, 99)),
            "mean": float(arr.mean()), "n": n}


def run_row(name: str, ctx: OneBarContext, seed: int, latency_n: int) -> dict[str, Any]:
    """Score one (row, seed): {"score": evaluate result, "latency_ms", "fit_seconds",
    "eval_seconds"}."""
    start = time.perf_counter()
    raw = ROWS[name].fn(ctx, seed)
    block = list(ctx.cfg.block_list)
    fn = guarded(raw, block)
    fit = time.perf_counter() - start
    start = time.perf_counter()
    if hasattr(raw, "many"):  # batched scoring, same lists as one call per trigger
        shown = [safe_suggestions(s, block, ctx.cfg.k) for s in raw.many(ctx.examples,
                                                                         ctx.cfg.k)]
        result = score(shown, ctx.examples, ctx.cfg, ctx.n_matches)
    else:
        result = evaluate(fn, ctx.examples, ctx.cfg, ctx.n_matches)
    ev = time.perf_counter() - start
    lat = latency_ms(fn, ctx.examples, ctx.cfg.k, latency_n) if ctx.examples else {}
    return {"score": result, "latency_ms": lat, "fit_seconds": fit, "eval_seconds": ev,
            "train": getattr(raw, "info", None)}


def mean_cases(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Per-case arrays averaged over seeds (every seed scores the same examples)."""
    pcs = [r["per_case"] for r in results]
    out = {"user": pcs[0]["user"], "trigger": pcs[0]["trigger"]}
    for m in CASE_COLUMNS:
        out[m] = np.mean([pc[m] for pc in pcs], axis=0)
    return {"per_case": out}


def _stat(values: list[float | None]) -> dict[str, Any]:
    if any(v is None for v in values):
        return {"mean": None, "std": None, "per_seed": values}
    arr = np.asarray(values, dtype=np.float64)
    return {"mean": float(arr.mean()), "std": float(arr.std(ddof=1)) if len(arr) > 1 else 0.0,
            "per_seed": [float(v) for v in arr]}


def summarise(name: str, runs: dict[int, dict[str, Any]]) -> dict[str, Any]:
    row = ROWS[name]
    scores = [r["score"] for r in runs.values()]
    return {
        "kind": row.kind, "note": row.note, "seeds": list(runs),
        "metrics_query": {m: _stat([s["metrics"].get(m) for s in scores]) for m in METRICS},
        "latency_ms": {q: float(np.mean([r["latency_ms"][q] for r in runs.values()]))
                       for q in ("p50", "p99", "mean")} | {
            "n": next(iter(runs.values()))["latency_ms"].get("n", 0)},
        "fit_seconds": _stat([r["fit_seconds"] for r in runs.values()]),
        "eval_seconds": _stat([r["eval_seconds"] for r in runs.values()]),
        "n": scores[0]["n"],
        **({"train": {str(s): r["train"] for s, r in runs.items()}}
           if any(r.get("train") for r in runs.values()) else {}),
    }


# ---- the suite ------------------------------------------------------------------------------

def _repo_path(path: str) -> Path:
    p = Path(path)
    return p if p.is_absolute() or p.exists() else REPO / p


def open_artifact(cfg: OneBarSuiteConfig, progress: Callable[[str], None] = print
                  ) -> pipeline.OneBarRun:
    """The suite's OneBar artifact, built first when missing."""
    from onefeed.data.schemas import DataError

    artifact = Path(cfg.artifact)
    if (artifact / "manifest.json").is_file():
        return pipeline.load(artifact)
    data = Path(cfg.data)
    if not (data / "manifest.json").is_file():
        raise DataError(f"{data}: no prepared dataset (build it: onefeed data prepare --config "
                        f"{cfg.prepare})")
    onebar_cfg = load_onebar_config(_repo_path(cfg.onebar), list(cfg.onebar_overrides))
    progress(f"building the OneBar artifact {artifact} from {data}")
    return pipeline.build(data, onebar_cfg, artifact, cfg.embeddings or None)


def make_context(cfg: OneBarSuiteConfig, run: pipeline.OneBarRun,
                 progress: Callable[[str], None] = print) -> OneBarContext:
    from onefeed.search.bm25 import BM25Config, BM25Retriever

    examples = run.examples(cfg.split)
    if cfg.max_cases and cfg.max_cases < len(examples):
        pick = np.sort(np.random.default_rng(0).choice(len(examples), cfg.max_cases,
                                                       replace=False))
        examples = [examples[i] for i in pick]
    bm25 = BM25Retriever()
    bm25.fit(run.dataset(), BM25Config())
    return OneBarContext(run, run.cfg, examples, bm25.n_matches, cfg.train, progress)


def significance(per_case: dict[str, dict[str, Any]], rows: dict[str, Any]) -> str | None:
    """Adds ``significance`` (paired tests vs the best baseline on hr@8 / mrr@8) to ``rows``;
    returns the best baseline's name."""
    base = [n for n, r in rows.items() if r["kind"] == "baseline" and n in per_case]
    if not base:
        return None
    best = max(base, key=lambda n: (rows[n]["metrics_query"]["hr@8"]["mean"],
                                    rows[n]["metrics_query"]["mrr@8"]["mean"]))
    for name, row in rows.items():
        if name in per_case:
            row["significance"] = {"vs": best, **{m: paired(per_case[name], per_case[best], m)
                                                  for m in PAIRED}}
    return best


def run_suite(cfg: OneBarSuiteConfig, out_dir: str | Path | None = None,
              rows: list[str] | None = None, seeds: list[int] | None = None,
              config_path: str | None = None, progress: Callable[[str], None] = print) -> Path:
    """Run every (row, seed); write results.json, report.md and per_case.parquet. With
    ``rows`` a subset, the other rows of a previous run on the same artifact are kept."""
    import torch

    torch.set_num_threads(cfg.threads)
    names = rows or list(cfg.rows)
    check_rows(names)
    seeds = seeds or list(cfg.seeds)
    out_dir = Path(out_dir or results_root() / cfg.suite)
    run = open_artifact(cfg, progress)
    ctx = make_context(cfg, run, progress)
    results: dict[str, Any] = {}
    per_case: dict[str, dict[str, Any]] = {}
    for name in names:
        run_seeds = seeds[:1] if ROWS[name].deterministic else seeds
        runs = {}
        for seed in run_seeds:
            progress(f"{cfg.suite} {name} seed {seed} ...")
            runs[seed] = run_row(name, ctx, seed, cfg.latency_triggers)
            m = runs[seed]["score"]["metrics"]
            progress(f"  hr@8 {m['hr@8']:.4f} mrr@8 {m['mrr@8']:.4f} reject p/r "
                     f"{m['reject_precision']:.3f}/{m['reject_recall']:.3f} p99 "
                     f"{runs[seed]['latency_ms']['p99']:.2f} ms")
        results[name] = summarise(name, runs)
        per_case[name] = mean_cases([r["score"] for r in runs.values()])
    doc = {
        "schema_version": 1, "suite": cfg.suite, "description": cfg.description,
        "config_path": config_path, "config": cfglib.to_dict(cfg),
        "onebar_config": cfglib.to_dict(run.cfg), "format": run.cfg.format,
        "artifact": {"dir": str(run.directory), "fingerprint": fingerprint(
            run.manifest["files"]), "data_sha256": run.manifest["data_sha256"],
            "embeddings": run.manifest["embeddings"], "n_planted": len(run.planted)},
        "dataset": {**run.manifest["dataset"], "dir": run.manifest["data"],
                    "split": cfg.split, "n_cases": len(ctx.examples),
                    "n_reject": sum(e.reject for e in ctx.examples)},
        "commit": git_commit(), "machine": machine_info(), "seeds": seeds,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "models": results}
    out_dir.mkdir(parents=True, exist_ok=True)
    with dir_lock(out_dir):
        if rows:
            _merge_previous(doc, out_dir, per_case)
        doc["seeds"] = sorted({s for r in doc["models"].values() for s in r["seeds"]})
        doc["best_baseline"] = significance(per_case, doc["models"])
        case_frame(per_case).write_parquet(out_dir / "per_case.parquet")
        (out_dir / "report.md").write_text(markdown(doc))
        write_json(out_dir / "results.json", doc)
    return out_dir


def case_frame(per_case: dict[str, dict[str, Any]]) -> pl.DataFrame:
    frames = [pl.DataFrame({"row": [name] * len(pc["per_case"]["user"]),
                            **{c: np.asarray(pc["per_case"][c]) for c in
                               ("user", "trigger", *CASE_COLUMNS)}})
              for name, pc in per_case.items()]
    return pl.concat(frames) if frames else pl.DataFrame()


def _merge_previous(doc: dict[str, Any], out_dir: Path, per_case: dict[str, Any]) -> None:
    """Keep the rows of a previous results.json not re-run, if it scored the same artifact."""
    path, cases = out_dir / "results.json", out_dir / "per_case.parquet"
    if not path.exists() or not cases.exists():
        return
    old = json.loads(path.read_text())
    if old.get("artifact", {}).get("fingerprint") != doc["artifact"]["fingerprint"] or \
            old.get("config", {}).get("split") != doc["config"]["split"] or \
            old.get("dataset", {}).get("n_cases") != doc["dataset"]["n_cases"]:
        return
    frame = pl.read_parquet(cases)
    for name, row in old.get("models", {}).items():
        if name in doc["models"]:
            continue
        part = frame.filter(pl.col("row") == name)
        if part.is_empty():
            continue
        doc["models"][name] = row
        per_case[name] = {"per_case": {c: part[c].to_numpy() for c in
                                       ("user", "trigger", *CASE_COLUMNS)}}
    order = [n for n in ROWS if n in doc["models"]]
    doc["models"] = {n: doc["models"][n] for n in order}


# ---- report ---------------------------------------------------------------------------------

def _fmt(v: Any, digits: int = 4) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def _p(v: float) -> str:
    return "<1e-4" if v < 1e-4 else f"{v:.4f}"


def markdown(doc: dict[str, Any]) -> str:
    ds, art = doc["dataset"], doc["artifact"]
    m = doc["machine"]
    lines = [f"# Bench `{doc['suite']}`", "", doc.get("description", ""), "",
             "## Protocol", "",
             f"- Dataset `{ds['name']}` ({ds['n_users']} users, {ds['n_items']} items), split "
             f"`{ds['split']}`: {ds['n_cases']} trigger -> next-query cases, {ds['n_reject']} "
             f"labelled [REJECT] ({art['n_planted']} items planted with a block-list term, "
             "plus items with too little evidence).",
             f"- Evidence format `{doc['format']}`; anchors from "
             f"{art['embeddings'].get('source')} embeddings; config in results.json "
             "(`onebar_config`).",
             "- Matching metrics over answerable cases (exact, Levenshtein <= "
             f"{doc['onebar_config']['max_distance']} for edit_hr); reject precision/recall "
             "over all cases; blocked_exposed = share of shown suggestions with a blocked term "
             "(every row passes labels.safe_suggestions).",
             f"- Latency: one suggest call per trigger, {doc['config']['latency_triggers']} "
             "triggers after the scoring pass filled every per-item cache, guard included, "
             f"{doc['config']['threads']} torch thread(s), Python GC on (a collection "
             "falling in the window adds ~4 ms to one call: a baseline's p99 varies 0.1-4 ms "
             "between runs).",
             (f"- p: paired t-test over answerable cases vs the best baseline (by hr@8) "
              f"`{doc['best_baseline']}` (bootstrap p in results.json)."
              if doc.get("best_baseline") else "- p: no baseline row, no paired tests."), "",
             f"Commit `{doc['commit']}`, {doc['created']}, machine "
             f"{m.get('cpu_model', m.get('processor'))} ({m.get('cpu_count')} cores). "
             f"Seeds {doc['seeds']}.", "", "## Results", ""]
    cols = [c for c in METRICS]
    lines.append("| row | seeds | " + " | ".join(cols) + " | p hr@8 | p mrr@8 | p50 ms | "
                 "p99 ms |")
    lines.append("|---" * (len(cols) + 6) + "|")
    for name, row in doc["models"].items():
        mq = row["metrics_query"]
        cells = []
        for c in cols:
            s = mq[c]
            cell = _fmt(s["mean"])
            if s["mean"] is not None and len(s["per_seed"]) > 1:
                cell += f" ± {s['std']:.4f}"
            cells.append(cell)
        sig = row.get("significance", {})
        ps = ["best" if sig.get("vs") == name else _p(sig[m]["ttest_p"]) if m in sig else "-"
              for m in PAIRED]
        lat = row["latency_ms"]
        lines.append(f"| `{name}` | {len(row['seeds'])} | " + " | ".join(cells)
                     + f" | {ps[0]} | {ps[1]} | {lat['p50']:.3f} | {lat['p99']:.3f} |")
    return "\n".join(lines + training_lines(doc)) + "\n"


def training_lines(doc: dict[str, Any]) -> list[str]:
    """The model rows' training, per seed and stage (from each row's ``train`` record)."""
    rows = [(n, s, info) for n, r in doc["models"].items() for s, info in
            r.get("train", {}).items() if info]
    if not rows:
        return []
    lines = ["", "## Training (valid HR@8 for early stopping; test never seen)", "",
             "| row | seed | stage | seconds | epochs | steps | best valid hr@8 | kept start |",
             "|---" * 8 + "|"]
    for name, seed, info in rows:
        for stage, st in info.get("stages", {}).items():
            if stage not in STAGES_OF.get(name, (stage,)):
                continue
            valid = st.get("valid_hr@8")
            lines.append(f"| `{name}` | {seed} | {stage} | {_fmt(st.get('train_seconds'), 0)} "
                         f"| {st.get('epochs')} | {st.get('steps')} | {_fmt(valid)} | "
                         f"{'yes' if st.get('kept_start') else '-'} |")
    lines += ["", "An epoch is a pseudo-epoch of `rows_per_epoch` sampled training rows "
              "(config `[train]`); a stage whose epochs never beat its starting model on "
              "valid keeps the starting weights (`kept_start` in results.json)."]
    return lines


__all__ = ["OneBarSuiteConfig", "ROWS", "Row", "run_suite", "load_config"]
