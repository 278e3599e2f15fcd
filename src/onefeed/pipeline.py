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
    from onefeed.evaluation.bench import load_suite, run_suite
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
    rec, search = {}, {}
    for name, row in doc["models"].items():
        if "metrics" in row:
            rec[name] = {m: v["mean"] for m, v in row["metrics"].items()}
        if "metrics_search" in row:
            search[name] = {m: v["mean"] for m, v in row["metrics_search"].items()}
    return {
        "data": {"users": ds.n_users, "items": ds.n_items, "events": ds.events.height,
                 "behaviours": dict(zip(behaviours["behaviour"], behaviours["len"]))},
        "leakage": ds.manifest.get("leakage"),
        "protocol": doc["protocol"].get("name", ds.manifest.get("protocol")),
        "sid": {"levels": table.n_levels, "codebook_sizes": list(table.codebook_sizes),
                "collision_rate": table.meta.get("collision_rate", float("nan")) / 100.0,
                "coherence_ratio": diag.get("coherence", {}).get("same_category_path", {})
                .get("ratio", float("nan"))},
        "results": rec,
        "search": search,
        "paths": {"root": str(root), "data": str(data_dir), "sid": str(sid_dir),
                  "report": str(report_dir / "report.md")},
    }
