"""``onefeed feedback export``: the feedback log of ``onefeed serve`` -> events Parquet for
``onefeed data prepare`` (docs/SERVING.md "Feedback log")."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape

app = typer.Typer(help="The feedback log of onefeed serve: export it for onefeed data prepare.",
                  no_args_is_help=True, rich_markup_mode=None)
console = Console()
err = Console(stderr=True)


def _fail(message: str) -> None:
    err.print(f"[red]error:[/red] {escape(message)}", highlight=False, markup=True, soft_wrap=True)
    raise typer.Exit(1)


@app.command("export")
def export_cmd(
    log: str = typer.Option(..., "--log", help="the log: a SQLite file (onefeed serve's "
                            "default <run>.feedback.sqlite) or a postgresql:// URL"),
    out: Path = typer.Option(..., "--out", "-o", help="output folder (new, empty, or an earlier "
                             "export with --force)"),
    data: Optional[Path] = typer.Option(None, "--data", help="a prepared dataset whose item "
                                        "table (titles, text) to include as items.parquet"),
    name: str = typer.Option("feedback", help="dataset name written into prepare.toml"),
    force: bool = typer.Option(False, "--force", help="replace an earlier export at --out"),
) -> None:
    """Write events.parquet (clicks, dwells, queries), negatives.parquet (impressions, skips),
    mapping.toml and prepare.toml: then onefeed data prepare --config OUT/prepare.toml."""
    from onefeed.artifacts import ArtifactError, OutputError
    from onefeed.data.schemas import DataError
    from onefeed.feedback import FeedbackError
    from onefeed.feedback.export import export

    try:
        done = export(log, out, data, name, replace=force)
    except (FeedbackError, OutputError, DataError, ArtifactError) as exc:
        _fail(str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__)
    c = done.counts
    by = ", ".join(f"{n:,} {b}" for b, n in c["by_behaviour"].items())
    console.print(f"wrote {escape(str(done.path))}: {c['events']:,} events ({escape(by)}), "
                  f"{c['negatives']:,} negatives, {c['users']:,} users, {c['items']:,} items "
                  f"from {c['logged']:,} logged; next: onefeed data prepare --config "
                  f"{escape(str(done.path / 'prepare.toml'))}", soft_wrap=True)
