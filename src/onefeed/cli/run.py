"""``onefeed run``: the main job, end to end on the built-in synthetic world (no download).

synthetic world → prepare (splits, weak queries, joint sessions, leakage checks) → semantic IDs
→ generative model → full-ranking evaluation next to baselines → a readable summary.
"""

from __future__ import annotations

import time
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from onefeed.paths import REPO, runs_root

console = Console()


def run_main(config: Path = typer.Option(REPO / "configs" / "run" / "default.toml",
                                         help="Run config: prepare / sid / model sections."),
             out: Path = typer.Option(None, help="Artifacts root (default runs/<name>)."),
             quick: bool = typer.Option(False, help="A smaller world and fewer steps (smoke test)."),
             ) -> None:
    """Run the whole pipeline on the built-in synthetic feed+search world and print a summary."""
    from onefeed.pipeline import PipelineConfig, prepare_name, run_pipeline
    from onefeed import config as config_lib

    default = REPO / "configs" / "run" / "default.toml"
    cfg = config_lib.load(PipelineConfig, None if config == default and not config.exists()
                          else config, ["quick=true"] if quick else [])  # a named file must exist
    root = out or runs_root() / prepare_name(cfg)
    t0 = time.perf_counter()
    summary = run_pipeline(cfg, root, log=lambda msg: console.print(f"[bold cyan]▶[/] {msg}"))
    _print_summary(summary, time.perf_counter() - t0)


def _print_summary(summary: dict, seconds: float) -> None:
    data = summary["data"]
    console.rule("[bold]onefeed — summary")
    console.print(f"data: {data['users']:,} users, {data['items']:,} items, "
                  f"{data['events']:,} events {data['behaviours']} → {summary['paths']['data']}")
    console.print(f"leakage checks: {summary['leakage']}")
    sid = summary["sid"]
    console.print(f"semantic IDs: {sid['levels']} levels {sid['codebook_sizes']}, "
                  f"collision rate before disambiguation {sid['collision_rate']:.1%}, "
                  f"first-level coherence ratio {sid.get('coherence_ratio', float('nan')):.2f} "
                  f"→ {summary['paths']['sid']}")
    table = Table(title=f"test, full ranking over {data['items']:,} items ({summary['protocol']})")
    table.add_column("model")
    metrics = ["recall@10", "ndcg@10", "recall@20", "ndcg@20"]
    for m in metrics:
        table.add_column(m, justify="right")
    for name, row in summary["results"].items():
        table.add_row(name, *[f"{row[m]:.4f}" for m in metrics])
    console.print(table)
    if summary.get("search"):
        st = Table(title="search on held-out queries (full ranking)")
        st.add_column("model")
        for m in ("recall@10", "ndcg@10"):
            st.add_column(m, justify="right")
        for name, row in summary["search"].items():
            st.add_row(name, *[f"{row[m]:.4f}" for m in ("recall@10", "ndcg@10")])
        console.print(st)
    for example in summary.get("examples", []):
        console.print(example)
    console.print(f"done in {seconds:.0f}s; artifacts under {summary['paths']['root']}")


def register(app: typer.Typer) -> None:
    app.command("run")(run_main)
