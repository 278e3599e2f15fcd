"""The main job as a line of library calls: prepare → semantic IDs → bench suite → summary.

``onefeed run`` (and ``make run``) calls :func:`run_pipeline` on the built-in synthetic world;
any prepare config and suite can be swapped in through :class:`PipelineConfig`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from onefeed.paths import REPO
from onefeed.sid.build import SidConfig


@dataclass
class PipelineConfig:
    prepare: str = "configs/prepare/synthetic.toml"  # a PrepareConfig TOML (relative to the repo)
    prepare_overrides: list[str] = field(default_factory=list)
    sid: SidConfig = field(default_factory=SidConfig)
    suite: str = "configs/bench/synthetic.toml"  # models x seeds run on the prepared data
    suite_overrides: list[str] = field(default_factory=list)
    models: list[str] = field(default_factory=list)  # a subset of the suite's models ([] = all)
    quick: bool = False  # the suite's quick parameters (fewer epochs): a smoke run


def _repo_path(path: str) -> Path:
    p = Path(path)
    return p if p.is_absolute() or p.exists() else REPO / p


def prepare_name(cfg: PipelineConfig) -> str:
    """The prepared dataset's name (``runs/<name>``) that the pipeline's prepare config gives."""
    from onefeed.data.prepare import load_config

    return load_config(_repo_path(cfg.prepare), cfg.prepare_overrides).name


def run_pipeline(cfg: PipelineConfig, root: Path, log: Callable[[str], None] = print
                 ) -> dict[str, Any]:
    """Run every stage into ``root`` (data/, sid/<name>/, report/) and return a summary dict."""
    from onefeed.data.prepare import load_config, prepare_to_dir
    from onefeed.bench.runner import load_suite, run_suite
    from onefeed.sid.build import build as build_sid
    from onefeed.sid.diagnostics import diagnose

    prep_cfg = load_config(_repo_path(cfg.prepare), cfg.prepare_overrides)
    log(f"prepare {prep_cfg.name} ({prep_cfg.dataset}, {prep_cfg.protocol})")
    ds, data_dir = prepare_to_dir(prep_cfg, root / "data")

    sid_dir = root / "sid" / f"{cfg.sid.strategy}-{cfg.sid.quantizer}"
    log(f"semantic IDs: {cfg.sid.strategy} embeddings, {cfg.sid.quantizer}")
    table = build_sid(ds, cfg.sid, sid_dir, progress=False, data_dir=data_dir)
    diag = diagnose(table, ds.items, seed=cfg.sid.seed)

    suite = load_suite(_repo_path(cfg.suite), cfg.suite_overrides)
    _anchor_model_rows(suite.models, root, data_dir, sid_dir)
    log(f"bench suite {suite.suite}: {', '.join(suite.models)}")
    report_dir = run_suite(suite, root / "report", quick=cfg.quick, data_dir=str(data_dir),
                           suite_path=str(cfg.suite), models=cfg.models or None)
    doc = json.loads((report_dir / "results.json").read_text())
    return _summary(ds, data_dir, sid_dir, table, diag, doc, report_dir, root)


def _anchor_model_rows(models: dict[str, Any], root: Path, data_dir: Path, sid_dir: Path) -> None:
    """Point every generative row (one with ``params.sid``) at this run's data, SIDs and
    ``root/model/<row>`` as absolute paths, and its model config at the repo's copy, so the
    job works from any cwd and each trained model's manifest names its inputs (then
    ``onefeed recommend / evaluate / joint ...`` need no extra flags)."""
    for name, table in models.items():
        params = table.get("params")
        if not isinstance(params, dict) or "sid" not in params:
            continue
        params.update(sid=str(sid_dir.resolve()), data=str(Path(data_dir).resolve()),
                      out=str((root / "model" / name).resolve()))
        if params.get("config"):
            params["config"] = str(_repo_path(params["config"]))


def _summary(ds, data_dir, sid_dir, table, diag, doc, report_dir, root) -> dict[str, Any]:
    behaviours = ds.events.group_by("behaviour").len().sort("behaviour")
    tables: dict[str, dict[str, dict[str, float]]] = {"metrics": {}, "metrics_search": {},
                                                      "metrics_query": {}}
    for name, row in doc["models"].items():
        for key, rows in tables.items():
            if key in row:
                rows[name] = {m: v["mean"] for m, v in row[key].items()}
    models = {name: str(root / "model" / name / "seed0") for name in doc["models"]
              if (root / "model" / name / "seed0" / "best").is_dir()}
    return {
        "data": {"users": ds.n_users, "items": ds.n_items, "events": ds.events.height,
                 "behaviours": dict(zip(behaviours["behaviour"], behaviours["len"]))},
        "leakage": ds.manifest.get("leakage"),
        "protocol": doc["protocol"].get("name", ds.manifest.get("protocol")),
        "quick": bool(doc.get("quick")),
        "sid": {"levels": table.n_levels, "codebook_sizes": list(table.codebook_sizes),
                "collision_rate": table.meta.get("collision_rate", float("nan")) / 100.0,
                "coherence_ratio": diag.get("coherence", {}).get("same_category_path", {})
                .get("ratio", float("nan"))},
        "notes": {name: row.get("note", "") for name, row in doc["models"].items()},
        "results": tables["metrics"],
        "search": tables["metrics_search"],
        "query": tables["metrics_query"],
        "examples": _examples(ds, models.get("onefeed"), models.get("tiger")),
        "paths": {"root": str(root), "data": str(data_dir), "sid": str(sid_dir),
                  "report": str(report_dir / "report.md"),
                  "plots": [str(p) for p in sorted(report_dir.glob("*.png"))],
                  "models": models},
    }


def _examples(ds, joint_run: str | None, rec_run: str | None, k: int = 3) -> list[str]:
    """What the joint model answers for one user: feed, search for their held-out test query,
    suggested next queries, and the commands that ask it yourself. [] without a joint row."""
    import numpy as np
    import polars as pl

    if joint_run is None:
        return []
    from onefeed.train import joint as tj

    manifest = json.loads((Path(joint_run) / "manifest.json").read_text())
    model, run_cfg, _ = tj.load_joint(Path(joint_run) / "best")
    pred = tj.predictor(model, run_cfg, ds, manifest["sid"])
    eq = ds.eval_queries.filter(pl.col("split") == "test").head(1)
    if eq.is_empty():
        return []
    u, query = int(eq["user"][0]), str(eq["query"][0])
    user_id = ds.users.filter(pl.col("user") == u)["user_id"][0]
    titles = ds.items.sort("item")["title"].to_list()
    users = np.array([u])

    def names(ids: Any) -> str:
        return "; ".join(titles[int(i)] for i in ids if int(i) >= 0)

    lines = [f"user {user_id}: feed → {names(pred.recommend(users, 'test', k, 20)[0])}",
             f"user {user_id} searches {query!r} → "
             f"{names(pred.search(users, [query], 'test', k, 20)[0])}",
             f"user {user_id}: suggested next queries → "
             + "; ".join(repr(q) for q in pred.generate_queries(users, "test", k, 10)[0])]
    run_arg = f"--run {joint_run} --user {user_id}"
    lines += ["try it:",
              f"  onefeed recommend --run {rec_run or joint_run} --user {user_id}",
              f"  onefeed joint search {run_arg} --query {json.dumps(query)}",
              f"  onefeed joint suggest {run_arg}"]
    return lines
