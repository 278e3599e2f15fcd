"""``onefeed run``: the main job, end to end on the built-in synthetic world (no download).

synthetic world → prepare (splits, weak queries, joint sessions, leakage checks) → semantic IDs
→ generative model → full-ranking evaluation next to baselines → a readable summary.
"""

from __future__ import annotations

import time
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from onefeed.cli.output import QUIET_HELP
from onefeed.cli.output import quiet as quiet_output
from onefeed.paths import REPO, runs_root

console = Console()


# the suite's row names → what the summary calls them (tiger is our generative core trained on
# recommendation only, the TIGER/OneRec-style row; onefeed is the joint model)
LABELS = {"tiger": "onefeed generative core (tiger)", "onefeed": "onefeed joint model"}


def run_main(config: Path = typer.Option(REPO / "configs" / "run" / "default.toml",
                                         help="Run config: prepare / sid / model sections."),
             out: Path = typer.Option(None, help="Artifacts root (default runs/<name> under "
                                                 "the cwd, or $ONEFEED_RUNS/<name>)."),
             quick: bool = typer.Option(False, help="Smoke test (~1.5 min on 2 cores): every "
                                        "model row uses its suite's quick parameters (2 "
                                        "epochs for the generative core and SASRec, 20 steps "
                                        "for the joint model); same world, data and SIDs."),
             quiet: bool = typer.Option(False, help=QUIET_HELP),
             ) -> None:
    """Run the whole pipeline on the built-in synthetic feed+search world and print a summary."""
    from onefeed.pipeline import PipelineConfig, prepare_name, run_pipeline
    from onefeed import config as config_lib

    default = REPO / "configs" / "run" / "default.toml"
    cfg = config_lib.load(PipelineConfig, None if config == default and not config.exists()
                          else config, ["quick=true"] if quick else [])  # a named file must exist
    root = out or runs_root() / prepare_name(cfg)
    t0 = time.perf_counter()
    with quiet_output(quiet):
        summary = run_pipeline(cfg, root, log=(lambda msg: None) if quiet else
                               lambda msg: console.print(f"[bold cyan]▶[/] {escape(msg)}"))
    _print_summary(summary, time.perf_counter() - t0)


def _label(name: str) -> str:
    return LABELS.get(name, name)


def _metric_table(title: str, rows: dict[str, dict[str, float]], metrics: list[str]) -> Table:
    table = Table(title=title)
    table.add_column("model")
    metrics = [m for m in metrics if any(m in r for r in rows.values())]
    for m in metrics:
        table.add_column(m, justify="right")
    for name, row in rows.items():
        table.add_row(escape(_label(name)),
                      *[f"{row[m]:.4f}" if m in row else "-" for m in metrics])
    return table


def _print_summary(summary: dict, seconds: float) -> None:
    say = lambda text: console.print(text, markup=False, highlight=False)  # noqa: E731
    data, paths = summary["data"], summary["paths"]
    console.rule("[bold]onefeed — summary")
    behaviours = ", ".join(f"{n:,} {b}" for b, n in data["behaviours"].items())
    say(f"data: {data['users']:,} users, {data['items']:,} items, {data['events']:,} events "
        f"({behaviours}) → {paths['data']}")
    leakage = summary.get("leakage") or {}
    passed = [k for k, v in leakage.items() if v == "pass"]
    say(f"leakage checks: {len(passed)}/{len(leakage)} pass ({', '.join(leakage)})")
    sid = summary["sid"]
    say(f"semantic IDs: {sid['levels']} levels {sid['codebook_sizes']}, collision rate before "
        f"disambiguation {sid['collision_rate']:.1%}, first-level coherence ratio "
        f"{sid.get('coherence_ratio', float('nan')):.2f} → {paths['sid']}")
    for name, note in summary.get("notes", {}).items():
        if name in LABELS:
            say(f"{_label(name)}: {note}")
    console.print(_metric_table(f"recommendation: test, full ranking over {data['items']:,} "
                                f"items ({escape(str(summary['protocol']))})",
                                summary["results"], ["recall@10", "ndcg@10", "recall@20",
                                                     "ndcg@20"]))
    if summary.get("search"):
        console.print(_metric_table("search on held-out queries (full ranking)",
                                    summary["search"], ["recall@10", "ndcg@10", "mrr@10"]))
    if summary.get("query"):
        console.print(_metric_table("query suggestion: the user's next query",
                                    summary["query"], ["hr@10", "ed_hr@10", "mrr@10",
                                                       "bleu@10"]))
    else:
        say("onefeed's own search and query suggestion come from the joint model (a suite row "
            "with entry onefeed.baselines.joint:JointAdapter, or `onefeed joint train`); this "
            "suite has none, so search shows the lexical / dense baselines only.")
    for line in summary.get("examples", []):
        say(line)
    if summary.get("quick"):
        say("--quick: a few training steps per model; the numbers are a smoke test, not a "
            "benchmark (run without --quick for the real ones).")
    say(f"report: {paths['report']}")
    for png in paths.get("plots", []):
        say(f"plot: {png}")
    for name, run in paths.get("models", {}).items():
        say(f"model {_label(name)}: {run}")
    say(f"done in {seconds:.0f}s; artifacts under {paths['root']}")


def register(app: typer.Typer) -> None:
    app.command("run")(run_main)
