"""``onefeed bench auto --data DIR``: the dataset-agnostic default (``onefeed.bench.auto``):
semantic IDs, SASRec + our generative core + our joint model (when the data has search
sessions) with hyperparameters chosen on the validation split, then one test table."""

from __future__ import annotations

from pathlib import Path

import typer

from onefeed.paths import REPO

CONFIG = REPO / "configs" / "bench" / "auto" / "default.toml"


def register(app: typer.Typer) -> None:
    @app.command("auto")
    def bench_auto(
        data: Path = typer.Option(..., "--data", help="A prepared dataset dir (onefeed data "
                                                      "prepare)."),
        config: Path = typer.Option(CONFIG, "--config", help="Grid, budget and SID rule."),
        budget_min: float = typer.Option(None, "--budget-min", help="Training minutes per "
                                         "trial (default: the config's trial_minutes)."),
        quick: bool = typer.Option(False, "--quick", help="Tiny run (CI): the first points of "
                                   "each grid, the rows' quick params, a few seconds per trial."),
        work: Path = typer.Option(None, "--work", help="SIDs and trained runs (default: "
                                  "auto-<name> beside the data dir)."),
        out: Path = typer.Option(None, "--out", help="Results dir (default bench/results/"
                                 "auto-<name>)."),
        override: list[str] = typer.Option([], "--set", help="Config override key=value."),
    ) -> None:
        """Any prepared dataset: SIDs, then SASRec, generative core and joint model tuned on
        valid from a small grid, then results.json + report.md + plots on test."""
        from onefeed.bench.auto import load_config, run_auto

        cfg = load_config(config, list(override))
        out_dir = run_auto(data, cfg, work, out, quick=quick, budget_min=budget_min)
        typer.echo(f"wrote {out_dir / 'results.json'} and {out_dir / 'report.md'}")
