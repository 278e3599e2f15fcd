"""``onefeed bench beauty-onebar [--dataset ml-100k]``: OneBar query suggestion rows ->
bench/results/<suite>/{results.json, report.md, per_case.parquet} (``onefeed.bench.onebar``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Optional

import typer

from onefeed.paths import REPO

CONFIGS = REPO / "configs" / "bench" / "onebar"  # one suite config per dataset


def register(app: typer.Typer) -> None:
    app.command("beauty-onebar")(bench_onebar)


def bench_onebar(
    dataset: Literal["beauty", "ml-100k"] = typer.Option(
        "beauty", help="which suite config: configs/bench/onebar/<dataset>.toml"),
    config: Optional[Path] = typer.Option(None, help="suite TOML (overrides --dataset)"),
    rows: str = typer.Option("", help="comma-separated rows (default: the config's); other "
                             "rows of an earlier run on the same artifact are kept"),
    seeds: str = typer.Option("", help="comma-separated seeds (default: the config's)"),
    set_: list[str] = typer.Option([], "--set", help="suite override key=value (repeatable)"),
    out: Optional[Path] = typer.Option(None, help="output dir (default bench/results/<suite>)"),
) -> None:
    """Baselines (and registered model rows) on trigger -> next-query cases: HR/MRR@K,
    reject precision/recall, blocked terms exposed, p50/p99 latency, paired tests."""
    from onefeed.bench import onebar

    path = config or CONFIGS / f"{dataset}.toml"
    try:
        seed_list = [int(s) for s in seeds.split(",") if s.strip()]
    except ValueError:
        raise typer.BadParameter(f"--seeds {seeds!r}: give integers like 0,1,2") from None
    cfg = onebar.load_config(path, list(set_))
    done = onebar.run_suite(cfg, out, [r.strip() for r in rows.split(",") if r.strip()] or None,
                            seed_list or None, str(path), progress=typer.echo)
    typer.echo((done / "report.md").read_text())
