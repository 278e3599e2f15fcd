"""Benchmark suites: models x seeds on one prepared dataset -> results.json, per-case parquet,
report.md and plots under bench/results/<suite>/ (schema: docs/BENCHMARKS.md).

A suite is a TOML file (configs/bench/<suite>.toml) read into ``SuiteConfig``. Each model row
has a ``kind``: a registered baseline (``onefeed.baselines.TASKS``) or ``external`` with an
``entry = "module:Class"`` following the same shape (``fit(ds, cfg: dict, seed)`` then
``recommend(cases, k)``; optionally ``retrieve(queries, k)`` — or ``search(users, queries, k)``
when the ranking is personalised by each user's history — and ``generate(cases, k)``, whose
results are then scored as search / query generation too). That is how the generative model
enters the table as the ``tiger`` / ``onefeed`` rows.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import polars as pl
import torch
from rich.console import Console

from onefeed import config as cfglib
from onefeed.artifacts import dir_lock, git_commit, machine_info, write_json
from onefeed.baselines import load_entry, resolve, task_of
from onefeed.baselines.pop import train_popularity
from onefeed.baselines.query_baselines import query_cases
from onefeed.data.schemas import DataError, Dataset
from onefeed.data.synthetic import tiny_dataset
from onefeed.data.views import RecCases, rec_cases
from onefeed.evaluation.coverage import catalogue_coverage, long_tail_hits, tail_mask
from onefeed.evaluation.metrics import drop_seen, per_case_metrics, target_ranks
from onefeed.evaluation.protocol import Protocol
from onefeed.evaluation.query_metrics import (most_frequent, personal_share, query_per_case,
                                              retrievable)
from onefeed.evaluation.text_metrics import bleu_at_k, distinct_n, rouge_l
from onefeed.paths import results_root

console = Console(stderr=True)


@dataclass
class DatasetSpec:
    RANGES: ClassVar[dict[str, str]] = {"synthetic_users": ">= 1", "synthetic_items": ">= 2"}
    dir: str = ""  # a prepared Dataset directory (``onefeed data prepare``)
    prepare: str = ""  # the prepare config that builds ``dir`` (documentation / hint)
    synthetic: bool = False  # build a tiny synthetic dataset in memory (CI / quick suite)
    synthetic_users: int = 60
    synthetic_items: int = 30


@dataclass
class ModelSpec:
    kind: str = ""
    entry: str = ""  # kind = "external": "module:Class"
    params: dict[str, Any] = field(default_factory=dict)
    seeds: int = 0  # 0 = all suite seeds for headline models, 1 otherwise
    quick: dict[str, Any] = field(default_factory=dict)  # params overridden by --quick
    history: int = 0  # evaluation history length for this row (0 = the protocol's)
    max_k: int = 0  # longest list asked of recommend (0 = max(ks, curve_k)); beam search rows
    note: str = ""


@dataclass
class Reference:
    """A literature row printed beside ours (never mixed into our table)."""

    name: str = ""
    source: str = ""
    category: str = ""  # a template suite's dataset variant it belongs to ("" = always shown)
    metrics: dict[str, float] = field(default_factory=dict)


@dataclass
class SuiteConfig:
    RANGES: ClassVar[dict[str, str]] = {"seeds": ">= 0", "threads": ">= 1"}
    suite: str = ""
    description: str = ""
    dataset: DatasetSpec = field(default_factory=DatasetSpec)
    protocol: Protocol = field(default_factory=Protocol)
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    headline: list[str] = field(default_factory=lambda: ["onefeed", "tiger", "sasrec"])
    # head-to-head pairs [a, b]: paired over users on every task both rows are scored on
    compare: list[list[str]] = field(default_factory=list)
    threads: int = 1  # torch threads (the machine is shared)
    models: dict[str, Any] = field(default_factory=dict)  # name -> ModelSpec table
    references: list[Any] = field(default_factory=list)  # Reference tables

    def model_specs(self) -> dict[str, ModelSpec]:
        out = {}
        for name, table in self.models.items():
            if name != name.lower():
                raise cfglib.ConfigError(f"models.{name}: model names must be lowercase")
            spec = cfglib.from_dict(ModelSpec, table, f"models.{name}.")
            if spec.kind != "external":
                task_of(spec.kind)  # raises on an unknown kind
            elif not spec.entry:
                raise cfglib.ConfigError(f"models.{name}: kind 'external' needs entry")
            out[name] = spec
        return out

    def reference_rows(self) -> list[Reference]:
        return [cfglib.from_dict(Reference, r, f"references[{i}].")
                for i, r in enumerate(self.references)]


def load_suite(path: str | Path, overrides: list[str] | None = None) -> SuiteConfig:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such suite config")
    cfg = cfglib.load(SuiteConfig, path, overrides)
    cfg.model_specs()  # validate early
    cfg.reference_rows()
    return cfg


def load_dataset(spec: DatasetSpec, override_dir: str | None = None) -> Dataset:
    if override_dir:
        return Dataset.load(override_dir)
    if spec.synthetic:
        return tiny_dataset(spec.synthetic_users, spec.synthetic_items)
    if not spec.dir:
        raise cfglib.ConfigError("dataset.dir is empty and dataset.synthetic is false")
    if not (Path(spec.dir) / "manifest.json").exists():
        hint = f" (build it: onefeed data prepare --config {spec.prepare})" if spec.prepare else ""
        raise DataError(f"{spec.dir}: no prepared dataset{hint}; or pass --data DIR")
    return Dataset.load(spec.dir)


# ---------------------------------------------------------------------------------------------
# One (model, seed) run per task. Each returns (scalar metrics, per-case arrays, extras).

@dataclass
class RunOutput:
    metrics: dict[str, float]
    per_case: dict[str, np.ndarray]  # metric -> (n_cases,) aligned with ``users``
    users: np.ndarray
    train_seconds: float
    infer_seconds: float
    curve: list[float] = field(default_factory=list)  # Recall@1..curve_k
    log: dict[str, Any] = field(default_factory=dict)


def model_config(model: Any, params: dict[str, Any], where: str) -> Any:
    """Typed config of a baseline from the suite's params (unknown keys raise)."""
    cls = getattr(model, "Config", None)
    if cls is None or not dataclasses.is_dataclass(cls):
        return dict(params)
    return cfglib.from_dict(cls, cfglib._merge(cfglib.to_dict(cls()), params), where)


def eval_rec(model: Any, cases: RecCases, proto: Protocol, n_items: int, tail: np.ndarray,
             max_k: int = 0) -> tuple[dict[str, float], dict[str, np.ndarray], list[float], float]:
    k = max(max(proto.ks), max_k or proto.curve_k)
    start = time.perf_counter()
    topk = np.asarray(model.recommend(cases, k))
    infer = time.perf_counter() - start
    if proto.filter_seen and not getattr(getattr(model, "cfg", None), "filter_seen", False):
        topk = drop_seen(topk, cases.history)
    ranks = target_ranks(topk, cases.targets)
    per_case = per_case_metrics(ranks, tuple(proto.ks))
    metrics = {m: float(v.mean()) if len(v) else 0.0 for m, v in per_case.items()}
    for kk in proto.ks:
        metrics[f"coverage@{kk}"] = catalogue_coverage(topk[:, :kk], n_items)
        hits = long_tail_hits(ranks, cases.targets, tail, kk)
        metrics[f"tail_recall@{kk}"] = float(hits.mean()) if len(hits) else 0.0
    if proto.popularity_split:
        metrics.update(popularity_recalls(ranks, cases.targets, tail, proto.ks))
    per_case["rank"] = ranks.astype(np.float64)
    curve = [float(((ranks >= 0) & (ranks < c)).mean()) if len(ranks) else 0.0
             for c in range(1, min(proto.curve_k, k) + 1)]
    return metrics, per_case, curve, infer


def search_cases(ds: Dataset, split: str) -> pl.DataFrame:
    eq = ds.eval_queries.filter(pl.col("split") == split).sort(["user", "item"])
    return eq.unique(["user"], keep="first", maintain_order=True)


def popularity_recalls(ranks: np.ndarray, targets: np.ndarray, tail: np.ndarray,
                       ks: list[int]) -> dict[str, float]:
    """head_recall@K and tail_recall@K: Recall@K over the cases whose target is a head (top
    ``tail_head_frac`` by train popularity) or a tail item (Spotify Table 2's head/torso split)."""
    out = {}
    for kk in ks:
        for name, mask in (("head", ~tail), ("tail", tail)):
            hits = long_tail_hits(ranks, targets, mask, kk)
            out[f"{name}_recall@{kk}"] = float(hits.mean()) if len(hits) else 0.0
    return out


def eval_search(model: Any, ds: Dataset, proto: Protocol, tail: np.ndarray | None = None
                ) -> tuple[dict[str, float], dict[str, np.ndarray], np.ndarray, list[float], float]:
    eq = search_cases(ds, proto.search_split)
    k = max(max(proto.search_ks), proto.curve_k)
    start = time.perf_counter()
    if getattr(model, "search", None) is not None:  # personalised: history + query
        topk = np.asarray(model.search(eq["user"].to_numpy().astype(np.int64),
                                       eq["query"].to_list(), k))
    else:
        topk = np.asarray(model.retrieve(eq["query"].to_list(), k))
    infer = time.perf_counter() - start
    ranks = target_ranks(topk, eq["item"].to_numpy().astype(np.int64))
    full = per_case_metrics(ranks, tuple(proto.search_ks))
    per_case = {m: v for m, v in full.items() if not m.startswith("hr@")}
    per_case["rank"] = ranks.astype(np.float64)
    metrics = {m: float(v.mean()) if len(v) else 0.0 for m, v in per_case.items() if m != "rank"}
    if proto.popularity_split and tail is not None:
        metrics.update(popularity_recalls(ranks, eq["item"].to_numpy().astype(np.int64), tail,
                                          proto.search_ks))
    curve = [float(((ranks >= 0) & (ranks < c)).mean()) if len(ranks) else 0.0
             for c in range(1, proto.curve_k + 1)]
    return metrics, per_case, eq["user"].to_numpy().astype(np.int64), curve, infer


def eval_query(model: Any, cases: RecCases, refs: list[str], proto: Protocol,
               bm25: Any, global_list: list[str] | None = None
               ) -> tuple[dict[str, float], dict[str, np.ndarray], float]:
    """Query-suggestion metrics; ``global_list`` (the training split's most frequent queries)
    adds ``personal_share@k``: the share of users whose list differs from it."""
    k = max(proto.query_ks)
    start = time.perf_counter()
    generated = [list(g) for g in model.generate(cases, k)]
    infer = time.perf_counter() - start
    per_case = query_per_case(generated, refs, tuple(proto.query_ks), proto.edit_distance)
    for kk in sorted({1, k}):
        per_case[f"bleu@{kk}"] = np.array([bleu_at_k(g, r, kk) for g, r in zip(generated, refs)])
    per_case["rouge_l@1"] = np.array([rouge_l(g[0] if g else "", r)
                                      for g, r in zip(generated, refs)])
    top1 = [g[0] if g else "" for g in generated]
    per_case["retrievability@1"] = retrievable(bm25.n_matches(top1)) if top1 else np.zeros(0)
    metrics = {m: float(v.mean()) if len(v) else 0.0 for m, v in per_case.items()}
    metrics["distinct_2@1"] = distinct_n(top1, 2)
    metrics[f"distinct_2@{k}"] = distinct_n([q for g in generated for q in g], 2)
    if global_list is not None:
        metrics[f"personal_share@{k}"] = personal_share(generated, global_list)
    return metrics, per_case, infer


# ---------------------------------------------------------------------------------------------

@dataclass
class BenchContext:
    ds: Dataset
    proto: Protocol
    cases: RecCases
    q_cases: RecCases
    q_refs: list[str]
    tail: np.ndarray
    _bm25: Any = None
    _global_queries: list[str] | None = None
    _by_history: dict[int, tuple[RecCases, RecCases]] = field(default_factory=dict)

    @property
    def bm25(self) -> Any:
        """BM25 over item text for the retrievability metric, built when a query row first
        needs it (a dataset without item text never builds it unless such a row runs)."""
        if self._bm25 is None:
            from onefeed.search.bm25 import BM25Config, BM25Retriever

            self._bm25 = BM25Retriever()
            self._bm25.fit(self.ds, BM25Config())
        return self._bm25

    @property
    def global_queries(self) -> list[str]:
        """The 100 most frequent training-split queries (what a non-personal suggester shows)."""
        if self._global_queries is None:
            train = self.ds.queries
            if "split" in train.columns:
                train = train.filter(pl.col("split") == "train")
            self._global_queries = most_frequent(train["query"].to_list(), 100)
        return self._global_queries

    def rec_and_query_cases(self, history: int) -> tuple[RecCases, RecCases]:
        """Test cases (and their query-eval subset) with ``history`` items (0 = protocol's)."""
        if not history or history == self.proto.max_history:
            return self.cases, self.q_cases
        if history not in self._by_history:
            cases = rec_cases(self.ds, self.proto.split, history)
            q_cases = subsample_query_cases(*query_cases(self.ds, cases, self.proto.search_split),
                                            self.proto.query_max_cases)[0]
            self._by_history[history] = (cases, q_cases)
        return self._by_history[history]


def subsample_query_cases(cases: RecCases, refs: list[str], n: int
                          ) -> tuple[RecCases, list[str]]:
    """A fixed (seed 0) random subset of ``n`` query-generation cases, the same for every row
    (0 or n >= len: all). Query generation is the dearest task to score."""
    if not n or n >= len(refs):
        return cases, refs
    pick = np.sort(np.random.default_rng(0).choice(len(refs), n, replace=False))
    return RecCases(*(a[pick] for a in cases)), [refs[i] for i in pick]


def make_context(ds: Dataset, proto: Protocol) -> BenchContext:
    cases = rec_cases(ds, proto.split, proto.max_history)
    q_cases, q_refs = subsample_query_cases(*query_cases(ds, cases, proto.search_split),
                                            proto.query_max_cases)
    tail = tail_mask(train_popularity(ds), proto.tail_head_frac)
    return BenchContext(ds, proto, cases, q_cases, q_refs, tail)


def run_model(name: str, spec: ModelSpec, seed: int, ctx: BenchContext, quick: bool
              ) -> dict[str, RunOutput]:
    """Fit ``spec`` with ``seed`` and score every task it supports: task -> RunOutput."""
    params = dict(spec.params, **(spec.quick if quick else {}))
    if spec.kind == "external":
        cls, task = load_entry(spec.entry), "rec"
        model = cls()
        cfg = dict(params)
    else:
        cls, task = resolve(spec.kind), task_of(spec.kind)
        model = cls()
        cfg = model_config(model, params, f"models.{name}.params.")
    start = time.perf_counter()
    log = model.fit(ctx.ds, cfg, seed)
    fit_seconds = time.perf_counter() - start
    log_dict = log.as_dict() if hasattr(log, "as_dict") else (log if isinstance(log, dict) else {})
    # the loop's own time over all resumes when the model reports it, else this fit's wall
    loop_seconds = log_dict.get("train_seconds")
    train_seconds = float(loop_seconds) if loop_seconds is not None else fit_seconds
    log_dict = dict(log_dict, fit_seconds=round(fit_seconds, 3))
    out: dict[str, RunOutput] = {}
    cases, q_cases = ctx.rec_and_query_cases(spec.history)
    if task == "rec" and getattr(model, "recommend", None) is not None:
        m, pc, curve, infer = eval_rec(model, cases, ctx.proto, ctx.ds.n_items, ctx.tail,
                                        spec.max_k)
        out["rec"] = RunOutput(m, pc, cases.users, train_seconds, infer, curve, log_dict)
    if task == "search" or getattr(model, "retrieve", None) is not None or \
            getattr(model, "search", None) is not None:
        m, pc, users, curve, infer = eval_search(model, ctx.ds, ctx.proto, ctx.tail)
        out["search"] = RunOutput(m, pc, users, train_seconds, infer, curve, log_dict)
    if task == "query" or getattr(model, "generate", None) is not None:
        m, pc, infer = eval_query(model, q_cases, ctx.q_refs, ctx.proto, ctx.bm25,
                                  ctx.global_queries)
        out["query"] = RunOutput(m, pc, q_cases.users, train_seconds, infer, [], log_dict)
    return out


TASK_KEYS = {"rec": "metrics", "search": "metrics_search", "query": "metrics_query"}
TASK_LABELS = {"rec": "recommendation", "search": "search", "query": "query suggestion"}


def progress_line(task: str, r: RunOutput) -> str:
    """One readable line per scored task, e.g. ``  recommendation: recall@10 0.4605 ndcg@10
    0.3462 mrr@10 0.3115 tail_recall@10 0.1252 (train 7.4 s, inference 0.4 s)``."""
    head = " ".join(f"{m} {v:.4f}" for m, v in r.metrics.items()
                    if m.endswith("@10") and not m.startswith(("hr", "coverage")))
    return (f"  {TASK_LABELS.get(task, task)}: {head} (train {r.train_seconds:.1f} s, "
            f"inference {r.infer_seconds:.1f} s)")


def seeds_for(name: str, spec: ModelSpec, cfg: SuiteConfig, seeds: list[int], quick: bool
              ) -> list[int]:
    if quick:
        return seeds[:1]
    kind_task = "rec" if spec.kind == "external" else task_of(spec.kind)
    if kind_task != "rec":
        return seeds[:1]  # search / query baselines are deterministic
    n = spec.seeds or (len(seeds) if name in cfg.headline else 1)
    return seeds[:n]


def _stat(values: list[float]) -> dict[str, Any]:
    arr = np.asarray(values, dtype=np.float64)
    return {"mean": float(arr.mean()), "std": float(arr.std(ddof=1)) if len(arr) > 1 else 0.0,
            "per_seed": [float(v) for v in arr]}


def run_suite(cfg: SuiteConfig, out_dir: str | Path | None = None, quick: bool = False,
              seeds: list[int] | None = None, models: list[str] | None = None,
              data_dir: str | None = None, suite_path: str | None = None,
              extra: dict[str, Any] | None = None) -> Path:
    """Run every (model, seed) of the suite; write results.json, per_case.parquet, report.
    ``extra``: more top-level keys of results.json (``bench auto`` records its grid there)."""
    from onefeed.evaluation.report import write_report

    torch.set_num_threads(max(cfg.threads, 1))
    # the code that runs, read before anything is written: a results dir inside the tree (or
    # a parallel run of the suite merging first) would otherwise make the record say +dirty
    commit = git_commit()
    specs = cfg.model_specs()
    if models:
        unknown = sorted(set(models) - set(specs))
        if unknown:
            raise cfglib.ConfigError(f"--models {unknown} not in suite {cfg.suite}: {sorted(specs)}")
        specs = {n: s for n, s in specs.items() if n in models}
    seeds = seeds or list(cfg.seeds)
    out_dir = Path(out_dir or results_root() / cfg.suite)
    ds = load_dataset(cfg.dataset, data_dir)
    ctx = make_context(ds, cfg.protocol)
    proto = ctx.proto
    results: dict[str, Any] = {}
    per_case_frames: list[pl.DataFrame] = []
    for name, spec in specs.items():
        run_seeds = seeds_for(name, spec, cfg, seeds, quick)
        runs: dict[int, dict[str, RunOutput]] = {}
        for seed in run_seeds:
            console.print(f"[bold]{cfg.suite}[/] {name} seed {seed} ...")
            runs[seed] = run_model(name, spec, seed, ctx, quick)
            for task, r in runs[seed].items():
                console.print(progress_line(task, r), markup=False)
                per_case_frames.append(_per_case_frame(task, name, seed, r))
        results[name] = _summarise_model(name, spec, runs, params=spec.params, quick=quick)
        results[name]["dataset"] = {"dir": data_dir or cfg.dataset.dir, "name": ds.name,
                                    "files": ds.manifest.get("files", {})}
        results[name]["eval_history"] = spec.history or proto.max_history
        results[name]["commits"] = {str(seed): commit for seed in run_seeds}
    dataset_info = {"name": ds.name, "dir": data_dir or cfg.dataset.dir,
                    "synthetic": cfg.dataset.synthetic and not data_dir,
                    "protocol": ds.manifest.get("protocol"), "n_users": ds.n_users,
                    "n_items": ds.n_items, "n_cases": int(len(ctx.cases.users)),
                    "n_search_cases": int(search_cases(ds, proto.search_split).height),
                    "n_query_cases": int(len(ctx.q_refs)),
                    "manifest_sha": ds.manifest.get("files", {})}
    doc = {
        "schema_version": 1,
        "suite": cfg.suite,
        "config_path": suite_path,
        "quick": quick,
        "dataset": dataset_info,
        "protocol": proto.as_dict(),
        "commit": commit,
        "machine": machine_info(),
        "seeds": sorted({s for m in results.values() for s in m["seeds"]}),
        "headline": cfg.headline,
        "compare": cfg.compare,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "models": results,
        "references": [dataclasses.asdict(r) for r in cfg.reference_rows()],
        **(extra or {}),
    }
    # runs of one suite in parallel (e.g. one seed each) take turns to merge and write
    with dir_lock(out_dir):
        if models:  # a subset run updates the suite's existing results instead of replacing them
            per_case_frames = _merge_previous(doc, out_dir, per_case_frames, set(cfg.models))
        order = list(cfg.models)
        doc["models"] = dict(sorted(doc["models"].items(),
                                    key=lambda kv: order.index(kv[0]) if kv[0] in order else 999))
        if per_case_frames:
            pl.concat(per_case_frames, how="diagonal").write_parquet(out_dir / "per_case.parquet")
        write_report(doc, out_dir)  # adds significance into doc["models"][...] before saving
        write_json(out_dir / "results.json", doc)
    return out_dir


def _merge_previous(doc: dict[str, Any], out_dir: Path, frames: list[pl.DataFrame],
                    suite_models: set[str]) -> list[pl.DataFrame]:
    """Fold a previous results.json of the same suite, dataset and mode into ``doc``.

    Models not re-run are kept as they were, unless the suite no longer has them
    (``suite_models``): a row removed from the config leaves the results too. A re-run model
    with the same kind, params, eval history and dataset files keeps its previous seeds that
    were not re-run (so seeds can be run one command at a time); otherwise the new entry
    replaces the old one.
    """
    import json

    path = out_dir / "results.json"
    if not path.exists():
        return frames
    old = json.loads(path.read_text())
    if old.get("quick") != doc["quick"] or old.get("dataset", {}).get("n_items") != \
            doc["dataset"]["n_items"]:
        console.print(f"[yellow]{path}: previous run has another dataset/mode; not merged[/]")
        return frames
    old_pc = out_dir / "per_case.parquet"
    old_frame = pl.read_parquet(old_pc) if old_pc.exists() else None
    keep_rows = []  # (model, seeds) of previous per-case rows to keep
    merged = {}
    for name, entry in old.get("models", {}).items():
        if name not in suite_models:
            console.print(f"[yellow]{path}: row {name!r} is no longer in the suite; dropped[/]")
            continue
        if name not in doc["models"]:
            merged[name] = entry
            keep_rows.append((name, entry["seeds"]))
            continue
        new = doc["models"][name]
        same = all(entry.get(k) == new.get(k) for k in ("kind", "params", "eval_history")) and \
            entry.get("dataset", {}).get("files") == new.get("dataset", {}).get("files")
        kept = [s for s in entry["seeds"] if s not in new["seeds"]] if same else []
        if kept:
            doc["models"][name] = _combine_seeds(entry, new, kept)
            keep_rows.append((name, kept))
    doc["models"] = {**merged, **doc["models"]}
    doc["seeds"] = sorted({s for m in doc["models"].values() for s in m["seeds"]})
    if old_frame is not None and keep_rows:
        cond = pl.lit(False)
        for name, seeds in keep_rows:
            cond = cond | ((pl.col("model") == name) & pl.col("seed").is_in(seeds))
        frames = [old_frame.filter(cond)] + frames
    return frames


def _combine_seeds(old: dict[str, Any], new: dict[str, Any], kept: list[int]) -> dict[str, Any]:
    """``new`` plus the ``kept`` seeds of ``old`` (same model and params)."""
    idx = [old["seeds"].index(s) for s in kept]
    out = dict(new, seeds=kept + list(new["seeds"]))
    for key in [*TASK_KEYS.values(), "train_seconds", "infer_seconds"]:
        if key not in new or key not in old:
            continue
        if key.endswith("_seconds"):
            out[key] = _stat([old[key]["per_seed"][i] for i in idx] + new[key]["per_seed"])
            continue
        out[key] = {m: _stat([old[key][m]["per_seed"][i] for i in idx] + v["per_seed"])
                    for m, v in new[key].items() if m in old[key]}
    n_old, n_new = len(kept), len(new["seeds"])
    curves = {}
    for task, c in new.get("curves", {}).items():
        prev = old.get("curves", {}).get(task, {}).get("recall_at_k", [])
        cur = c.get("recall_at_k", [])
        curves[task] = {"recall_at_k": ((np.array(prev) * n_old + np.array(cur) * n_new)
                                        / (n_old + n_new)).tolist()
                        if len(prev) == len(cur) and cur else cur}
    out["curves"] = curves
    out["training"] = {**{str(s): old.get("training", {}).get(str(s), {}) for s in kept},
                       **new.get("training", {})}
    out["commits"] = {**{str(s): old.get("commits", {}).get(str(s), "unknown") for s in kept},
                      **new.get("commits", {})}
    return out


def _per_case_frame(task: str, name: str, seed: int, r: RunOutput) -> pl.DataFrame:
    n = len(r.users)
    cols: dict[str, Any] = {"task": [task] * n, "model": [name] * n,
                            "seed": np.full(n, seed, dtype=np.int32),
                            "user": np.asarray(r.users, dtype=np.int32)}
    for m, v in r.per_case.items():
        cols[m] = np.asarray(v, dtype=np.float32)
    return pl.DataFrame(cols)


def _summarise_model(name: str, spec: ModelSpec, runs: dict[int, dict[str, RunOutput]],
                     params: dict[str, Any], quick: bool) -> dict[str, Any]:
    entry: dict[str, Any] = {"kind": spec.kind, "params": params, "note": spec.note,
                             "seeds": list(runs)}
    first = next(iter(runs.values()))
    for task in first:
        outs = [runs[s][task] for s in runs]
        entry[TASK_KEYS[task]] = {m: _stat([o.metrics[m] for o in outs])
                                  for m in outs[0].metrics}
        entry.setdefault("curves", {})[task] = {
            "recall_at_k": np.mean([o.curve for o in outs], axis=0).tolist() if outs[0].curve
            else []}
    outs = [next(iter(runs[s].values())) for s in runs]
    entry["train_seconds"] = _stat([o.train_seconds for o in outs])
    entry["infer_seconds"] = _stat([sum(r.infer_seconds for r in runs[s].values()) for s in runs])
    entry["training"] = {str(s): next(iter(runs[s].values())).log for s in runs}
    return entry


__all__ = ["SuiteConfig", "ModelSpec", "load_suite", "run_suite"]
