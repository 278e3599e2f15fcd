"""``onefeed bench amazon --category <Category>``: the TIGER-protocol recommendation rows on any
Amazon 2014 category, from its raw files to ``bench/results/amazon-<category>/``.

One command, unchanged across categories: prepare the data (configs/prepare/beauty.toml with
the category swapped), build content RQ-KMeans semantic IDs (configs/sid/content-rq_kmeans.toml;
a category without item text gets collaborative-only IDs, which the SID manifest records),
train and score every row of ``configs/bench/amazon/category.toml`` and print the chosen
category's published references beside them. Prepared data and SID tables already on disk
are reused (delete ``runs/amazon-<category>`` to rebuild); a trained generative run resumes.
"""

from __future__ import annotations

import re
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape

from onefeed.paths import REPO, runs_root

TEMPLATE = REPO / "configs" / "bench" / "amazon" / "category.toml"
PREPARE = REPO / "configs" / "prepare" / "beauty.toml"
SID_CONFIG = REPO / "configs" / "sid" / "content-rq_kmeans.toml"
console = Console(stderr=True)


def category_name(category: str) -> str:
    """``"Sports_and_Outdoors"`` -> ``"amazon-sports_and_outdoors"`` (run and results dir name)."""
    if not re.fullmatch(r"[A-Za-z0-9_]+", category):
        raise typer.BadParameter(f"category {category!r}: letters, digits and '_' only "
                                 "(the folder is amazon2014-<Category>)")
    return f"amazon-{category.lower()}"


def ensure_data(category: str, raw: Path | None, out: Path, overrides: list[str]) -> Path:
    """The prepared dataset dir for ``category`` (prepared now unless already on disk)."""
    from onefeed.data.prepare import load_config, prepare_to_dir

    if (out / "manifest.json").exists():
        console.print(f"using prepared data {out} (delete it to prepare again)", markup=False)
        return out
    cfg = load_config(PREPARE, [f"name={category_name(category)}",
                                f"options.category={category}", *overrides])
    if raw is not None:
        cfg.path = str(raw)
    console.print(f"preparing {category} -> {out}", markup=False)
    prepare_to_dir(cfg, out)
    return out


def ensure_sid(data_dir: Path, out: Path, overrides: list[str]) -> Path:
    """The content RQ-KMeans SID table for a prepared dataset (built now unless on disk)."""
    from onefeed import config as cfg_mod
    from onefeed.data.schemas import Dataset
    from onefeed.sid.build import SidConfig, build

    if (out / "manifest.json").exists():
        console.print(f"using semantic IDs {out} (delete it to build again)", markup=False)
        return out
    cfg = cfg_mod.load(SidConfig, SID_CONFIG, overrides)
    console.print(f"building semantic IDs ({cfg.strategy} {cfg.quantizer}) -> {out}", markup=False)
    build(Dataset.load(data_dir), cfg, out, data_dir=data_dir)
    return out


def suite_for(category: str, data_dir: Path, sid_dir: Path, model_dir: Path,
              overrides: list[str]):
    """The template suite with this category's paths filled in and only its references."""
    from onefeed.bench.runner import load_suite

    cfg = load_suite(TEMPLATE, overrides)
    cfg.suite = category_name(category)
    cfg.description = cfg.description.replace("Amazon 2014 category", f"Amazon 2014 {category}")
    cfg.dataset.dir = str(data_dir)
    for table in cfg.models.values():
        if table.get("entry", "").endswith(":GenerativeAdapter"):
            table["params"] = {**table.get("params", {}), "sid": str(sid_dir),
                               "out": str(model_dir)}
    cfg.references = [r for r in cfg.references if r.get("category", "") in ("", category)]
    return cfg


def register(app: typer.Typer) -> None:
    @app.command("amazon")
    def bench_amazon(
        category: str = typer.Option(..., help="Amazon 2014 category as in the folder name "
                                               "amazon2014-<Category>, e.g. Beauty, Sports, Toys."),
        raw: Path | None = typer.Option(None, help="The category's folder: user_sequence.txt, "
                                                   "optional items.jsonl.gz (item text) and "
                                                   "p5_datamaps.json.gz (default: <data root>/"
                                                   "amazon2014-<Category>)."),
        quick: bool = typer.Option(False, "--quick", help="1 seed, tiny epochs (smoke run)."),
        seeds: str = typer.Option("", "--seeds", help="Comma-separated seeds, e.g. 0,1,2."),
        models: str = typer.Option("", "--models", help="Comma-separated rows to run."),
        out: str = typer.Option("", "--out", help="Output dir (default bench/results/"
                                                  "amazon-<category>)."),
        prepare_set: list[str] = typer.Option([], "--prepare-set", help="Prepare override."),
        sid_set: list[str] = typer.Option([], "--sid-set", help="SID build override."),
        override: list[str] = typer.Option([], "--set", help="Suite override key.sub=value."),
    ) -> None:
        """Any Amazon 2014 category, TIGER protocol: prepare, semantic IDs, train, evaluate."""
        from onefeed.config import ConfigError
        from onefeed.data.schemas import DataError
        from onefeed.bench.runner import run_suite

        root = runs_root() / category_name(category)
        try:
            data_dir = ensure_data(category, raw, root / "data", list(prepare_set))
            sid_dir = ensure_sid(data_dir, root / "sid" / "content-rq_kmeans", list(sid_set))
            cfg = suite_for(category, data_dir, sid_dir, root / "model" / "bench-tiger",
                            list(override))
        except (DataError, ConfigError, FileNotFoundError) as exc:
            console.print(f"[red]error:[/] {escape(str(exc))}", markup=True, highlight=False)
            raise typer.Exit(1) from None
        out_dir = run_suite(cfg, out or None, quick=quick,
                            seeds=[int(s) for s in seeds.split(",") if s.strip()] or None,
                            models=[m.strip() for m in models.split(",") if m.strip()] or None,
                            suite_path=str(TEMPLATE.relative_to(REPO)))
        typer.echo(f"wrote {out_dir / 'results.json'} and {out_dir / 'report.md'}")
