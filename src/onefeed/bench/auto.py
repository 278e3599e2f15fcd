"""``onefeed bench auto --data DIR``: an honest table for any prepared dataset, no hand-tuning.

prepared data (``onefeed data prepare``) → content MiniLM + RQ-KMeans semantic IDs (codebook
size from the catalogue size, :func:`codebook_size`) → for each tuned row (SASRec, our
generative core ``tiger``, our joint model ``onefeed`` when the dataset has search sessions) a
small grid (configs/bench/auto/default.toml), each point trained once under a wall-clock budget
and scored on the **validation** split by the suite runner's own evaluator
(:func:`onefeed.bench.runner.run_model`) → the best point per row (:func:`choose`) → the suite
(configs/bench/auto/suite.toml, filled in code) on test through :func:`run_suite`, with the
grid, every trial's valid score and the choice in ``results.json["auto"]``.

The trained generative and joint runs of the chosen points are reused by the test run (their
directories are keyed by a hash of everything that shaped them, so a re-run resumes them);
SASRec is retrained with the chosen point and the same seed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from rich.console import Console

from onefeed import config as cfglib
from onefeed.bench.runner import (ModelSpec, SuiteConfig, load_suite, make_context, run_model,
                                  run_suite)
from onefeed.data.schemas import Dataset
from onefeed.evaluation.protocol import Protocol
from onefeed.paths import REPO, results_root

console = Console(stderr=True)
DEFAULT_CONFIG = REPO / "configs" / "bench" / "auto" / "default.toml"
TUNED = ("sasrec", "tiger", "onefeed")  # rows with a grid; the others run with their defaults
SEARCH_ROWS = ("onefeed", "bm25")  # rows that need search sessions / held-out queries


@dataclass
class SidRule:
    RANGES: ClassVar[dict[str, str]] = {"levels": ">= 1", "min_codebook": ">= 2",
                                        "max_codebook": ">= 2"}
    levels: int = 3
    min_codebook: int = 8
    max_codebook: int = 256

    def check(self) -> None:
        if self.min_codebook > self.max_codebook:
            raise cfglib.ConfigError(f"sid.min_codebook {self.min_codebook} > sid.max_codebook "
                                     f"{self.max_codebook}")


@dataclass
class AutoConfig:
    RANGES: ClassVar[dict[str, str]] = {"trial_minutes": "> 0", "quick_points": ">= 1",
                                        "quick_minutes": "> 0"}
    template: str = "configs/bench/auto/suite.toml"
    trial_minutes: float = 2.0  # wall-clock training budget per trial
    metric: str = "ndcg@10"
    seeds: list[int] = field(default_factory=lambda: [0])
    quick_points: int = 2
    quick_minutes: float = 0.1
    sid: SidRule = field(default_factory=SidRule)
    grid: dict[str, Any] = field(default_factory=dict)  # row -> {param: [values]}

    def check(self) -> None:
        self.sid.check()
        if not self.seeds:
            raise cfglib.ConfigError("seeds: at least one seed")
        for row, table in self.grid.items():
            if row not in TUNED:
                raise cfglib.ConfigError(f"grid.{row}: only {list(TUNED)} are tuned")
            for key, values in table.items():
                if not isinstance(values, list) or not values:
                    raise cfglib.ConfigError(f"grid.{row}.{key}: a non-empty list of values")


def load_config(path: str | Path | None = None, overrides: list[str] | None = None
                ) -> AutoConfig:
    return cfglib.load(AutoConfig, path or DEFAULT_CONFIG, overrides)


# ---- the pure parts: codebook rule, grid, choice ---------------------------------------------
def codebook_size(n_items: int, rule: SidRule) -> int:
    """Codes per level: ``2 ** round(log2(sqrt(n_items)))``, clamped to [min, max] and to
    ``n_items``. Two levels then give about one item per prefix (K² ≈ n_items) and the third
    separates the rest: ML-100K (1,349 items) → 32, Beauty (12,101) → 128, 1M items → 256."""
    k = 2 ** round(math.log2(math.sqrt(max(n_items, 1))))
    return max(2, min(max(rule.min_codebook, min(k, rule.max_codebook)), n_items))


def grid_points(grid: dict[str, list[Any]], limit: int = 0) -> list[dict[str, Any]]:
    """The product of the grid's value lists, in file order (``limit`` > 0: the first ones)."""
    keys = list(grid)
    points = [dict(zip(keys, values)) for values in itertools.product(*grid.values())]
    return points[:limit] if limit else points


def point_name(point: dict[str, Any]) -> str:
    """``{"model.d_model": 64, "model.dropout": 0.2}`` -> ``"d_model=64,dropout=0.2"``."""
    return ",".join(f"{k.rsplit('.', 1)[-1]}={v}" for k, v in point.items()) or "default"


@dataclass
class Trial:
    point: dict[str, Any]
    score: float  # the valid metric that ranks the points
    valid: dict[str, float]  # every valid metric of the trial
    train_seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"point": point_name(self.point), "params": self.point, "score": self.score,
                "valid": self.valid, "train_seconds": self.train_seconds}


def choose(points: list[dict[str, Any]],
           evaluate: Callable[[dict[str, Any], str], tuple[dict[str, float], float]],
           metric: str) -> tuple[list[Trial], Trial]:
    """Score every point with ``evaluate(point, "valid")`` -> (metrics, train seconds) and
    return all trials and the best by ``metrics[metric]`` (the first point on a tie). Only the
    validation split is ever asked for."""
    trials = []
    for point in points:
        metrics, seconds = evaluate(point, "valid")
        if metric not in metrics:
            raise KeyError(f"trial {point_name(point)}: no valid {metric!r} in {sorted(metrics)}")
        trials.append(Trial(point, float(metrics[metric]), metrics, seconds))
    best = max(trials, key=lambda t: (t.score, -trials.index(t)))
    return trials, best


# ---- the dataset side ---------------------------------------------------------------------------
def search_skip_reason(ds: Dataset) -> str:
    """Why the search rows (the joint model, BM25) cannot run on ``ds`` ("" = they can)."""
    import polars as pl

    train = ds.events.filter(pl.col("split") == "train")
    if train.filter(pl.col("behaviour") == "search_query").is_empty():
        return ("the dataset has no search sessions (no train search_query events), so the "
                "joint model's search and query-suggestion tasks have nothing to learn from")
    missing = [s for s in ("valid", "test") if ds.eval_queries.filter(pl.col("split") == s)
               .is_empty()]
    if missing:
        return f"the dataset has no held-out search queries (eval_queries) for {missing}"
    return ""


def ensure_sid(ds: Dataset, data_dir: Path, rule: SidRule, work: Path) -> tuple[Path, int]:
    """The content RQ-KMeans SID table for ``ds`` under ``work/sid`` (built unless on disk)."""
    from onefeed.sid.build import SidConfig, build
    from onefeed.sid.table import SidTable

    k = codebook_size(ds.n_items, rule)
    out = work / "sid" / f"content-rq_kmeans-{rule.levels}x{k}"
    if (out / "manifest.json").exists():
        SidTable.load(out).check_dataset(ds)  # a table of another dataset: refused
        console.print(f"using semantic IDs {out}", markup=False)
        return out, k
    console.print(f"building semantic IDs (content MiniLM + RQ-KMeans {rule.levels}x{k} for "
                  f"{ds.n_items} items) -> {out}", markup=False)
    build(ds, SidConfig(levels=rule.levels, codebook_size=k, seed=0), out, progress=False,
          data_dir=data_dir)
    return out, k


# ---- rows: one grid point -> the suite row's params ---------------------------------------------
def _repo_path(path: str) -> str:
    p = Path(path)
    return str(p if p.is_absolute() else REPO / p)


def row_params(name: str, spec: ModelSpec, point: dict[str, Any], minutes: float,
               history: int, quick: bool) -> dict[str, Any]:
    """The row's params for ``point``: the template's, its quick ones when ``quick`` (lists of
    overrides are appended, not replaced), the dataset's history, the point, the budget."""
    params = dict(spec.params)
    for key, value in (spec.quick if quick else {}).items():
        params[key] = list(params.get(key, [])) + list(value) if key == "overrides" else value
    if spec.kind == "sasrec":
        return {**params, "max_history": history, **point, "time_limit_min": minutes}
    if "config" not in params:  # an untuned baseline: its defaults
        return {**params, **point}
    overrides = [*params.get("overrides", []), f"model.max_len={history}",
                 *([f"tasks.max_history_items={history}"] if name == "onefeed" else []),
                 *(f"{k}={v}" for k, v in point.items()), f"train.time_limit_min={minutes}"]
    return {**params, "config": _repo_path(params["config"]), "overrides": overrides}


def _run_key(name: str, params: dict[str, Any], ds: Dataset, sid_dir: Path) -> str:
    """8 hex digits of everything that shapes a trained run (params, data files, SID table)."""
    sid = json.loads((sid_dir / "manifest.json").read_text()).get("files", {})
    blob = json.dumps({"row": name, "params": params, "data": ds.manifest.get("files", {}),
                       "sid": sid}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:8]


def anchor(name: str, params: dict[str, Any], point: dict[str, Any], ds: Dataset,
           data_dir: Path, sid_dir: Path, work: Path) -> dict[str, Any]:
    """A generative / joint row's paths: data, SIDs and ``work/runs/<row>/<point>-<key>``
    (``resume``: the same run trained again is the same, so it is loaded, not retrained)."""
    if "config" not in params:
        return params
    out = dict(params, data=str(data_dir.resolve()), sid=str(sid_dir.resolve()))
    key = _run_key(name, out, ds, sid_dir)
    slug = point_name(point).replace(",", "_").replace("=", "-")
    return dict(out, out=str((work / "runs" / name / f"{slug}-{key}").resolve()), resume=True)


# ---- one trial: fit on train, score on valid through the runner --------------------------------
class ValidTrials:
    """``evaluate(point, split)`` for one row: fit with the first seed, score on ``split`` with
    the suite runner (its protocol with ``split`` and ``search_split`` set to it)."""

    def __init__(self, name: str, spec: ModelSpec, suite: SuiteConfig, ds: Dataset,
                 build: Callable[[dict[str, Any]], dict[str, Any]], seed: int) -> None:
        self.name, self.spec, self.suite, self.ds, self.build, self.seed = \
            name, spec, suite, ds, build, seed
        self._ctx: dict[str, Any] = {}

    def context(self, split: str) -> Any:
        if split not in self._ctx:
            proto = cfglib.from_dict(Protocol, {**self.suite.protocol.as_dict(), "split": split,
                                                "search_split": split})
            self._ctx[split] = make_context(self.ds, proto)
        return self._ctx[split]

    def __call__(self, point: dict[str, Any], split: str) -> tuple[dict[str, float], float]:
        params = self.build(point)
        if self.name == "onefeed":  # histories before the scored split; no query decoding
            params = dict(params, split=split, tasks="rec,search")
        spec = dataclasses.replace(self.spec, params=params, quick={})
        console.print(f"[bold]trial[/] {self.name} {point_name(point)} (score on {split}) ...")
        out = run_model(self.name, spec, self.seed, self.context(split), quick=False)
        metrics = {f"{task}_{m}": v for task, r in out.items() for m, v in r.metrics.items()}
        if "rec" in out:
            metrics.update(out["rec"].metrics)
        if self.name == "onefeed":  # the joint model's own early-stopping score
            metrics = {**metrics, **{m: (out["rec"].metrics[m] + out["search"].metrics[m]) / 2
                                     for m in out["rec"].metrics if m in out["search"].metrics}}
        seconds = next(iter(out.values())).train_seconds
        shown = " ".join(f"{m} {metrics[m]:.4f}" for m in ("ndcg@10", "recall@10")
                         if m in metrics)
        console.print(f"  valid {shown} (train {seconds:.0f} s)", markup=False)
        return metrics, seconds


# ---- the command ---------------------------------------------------------------------------------
def run_auto(data_dir: str | Path, cfg: AutoConfig, work: str | Path | None = None,
             out_dir: str | Path | None = None, quick: bool = False,
             budget_min: float | None = None) -> Path:
    """Run ``bench auto`` on the prepared dataset at ``data_dir``; return the results dir."""
    data_dir = Path(data_dir)
    ds = Dataset.load(data_dir)
    minutes = budget_min if budget_min is not None else (cfg.quick_minutes if quick
                                                         else cfg.trial_minutes)
    if not minutes > 0:
        raise cfglib.ConfigError(f"--budget-min must be > 0, got {minutes}")
    work = Path(work) if work else data_dir.parent / f"auto-{ds.name}"
    suite = load_suite(_repo_path(cfg.template))
    suite.suite, suite.seeds = f"auto-{ds.name}", list(cfg.seeds)
    suite.dataset.dir = str(data_dir)
    history = int(ds.manifest.get("max_history") or suite.protocol.max_history)
    suite.protocol.max_history = history
    skip = search_skip_reason(ds)
    skipped = {name: skip for name in SEARCH_ROWS if skip and name in suite.models}
    for name in skipped:
        del suite.models[name]
    sid_dir, k = ensure_sid(ds, data_dir, cfg.sid, work)
    specs = suite.model_specs()

    def build(name: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
        return lambda point: anchor(name, row_params(name, specs[name], point, minutes, history,
                                                     quick), point, ds, data_dir, sid_dir, work)

    trials: dict[str, list[dict[str, Any]]] = {}
    chosen: dict[str, str] = {}
    for name, spec in specs.items():
        grid = cfg.grid.get(name, {}) if name in TUNED else {}
        points = grid_points(grid, cfg.quick_points if quick else 0) or [{}]
        if name in TUNED:
            evaluate = ValidTrials(name, spec, suite, ds, build(name), cfg.seeds[0])
            rows, best = choose(points, evaluate, cfg.metric)
            trials[name], chosen[name] = [t.as_dict() for t in rows], point_name(best.point)
            point = best.point
        else:
            point = {}
        suite.models[name] = {**suite.models[name], "params": build(name)(point), "quick": {}}
    auto = {"config": cfglib.to_dict(cfg), "trial_minutes": minutes, "metric": cfg.metric,
            "selection": (f"each tuned row's points trained with seed {cfg.seeds[0]} and scored "
                          f"on the validation split ({cfg.metric}; joint row: mean of rec and "
                          "search); the best point (first on a tie) is the only one run on test"),
            "sid": {"rule": "K = 2 ** round(log2(sqrt(n_items))), clamped to "
                            f"[{cfg.sid.min_codebook}, {cfg.sid.max_codebook}]",
                    "n_items": ds.n_items, "levels": cfg.sid.levels, "codebook_size": k,
                    "dir": str(sid_dir)},
            "grid": {n: cfg.grid.get(n, {}) for n in trials}, "trials": trials,
            "chosen": chosen, "skipped": skipped, "quick": quick, "work": str(work)}
    out = Path(out_dir) if out_dir else results_root() / suite.suite
    return run_suite(suite, out, quick=quick, data_dir=str(data_dir),
                     suite_path=cfg.template, extra={"auto": auto})


__all__ = ["AutoConfig", "choose", "codebook_size", "grid_points", "load_config", "run_auto",
           "search_skip_reason"]
