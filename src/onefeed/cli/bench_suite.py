"""``onefeed bench <suite>``: one command per configs/bench/<suite>.toml (see bench/runner.py)."""

from __future__ import annotations

from pathlib import Path

import typer

from onefeed.paths import REPO

SUITES_DIR = REPO / "configs" / "bench"


def _command(suite_path: Path):
    def run(
        quick: bool = typer.Option(False, "--quick", help="1 seed, tiny epochs (CI smoke run)."),
        seeds: str = typer.Option("", "--seeds", help="Comma-separated seeds, e.g. 0,1,2."),
        models: str = typer.Option("", "--models", help="Comma-separated model names to run."),
        data: str = typer.Option("", "--data", help="Prepared dataset dir (overrides the suite)."),
        out: str = typer.Option("", "--out", help="Output dir (default bench/results/<suite>)."),
        threads: int = typer.Option(0, "--threads", help="torch threads (default: suite's)."),
        override: list[str] = typer.Option([], "--set", help="Suite override key.sub=value."),
    ) -> None:
        from onefeed.bench.runner import load_suite, run_suite

        overrides = list(override) + ([f"threads={threads}"] if threads else [])
        cfg = load_suite(suite_path, overrides)
        out_dir = run_suite(cfg, out or None, quick=quick,
                            seeds=[int(s) for s in seeds.split(",") if s.strip()] or None,
                            models=[m.strip() for m in models.split(",") if m.strip()] or None,
                            data_dir=data or None, suite_path=str(suite_path))
        typer.echo(f"wrote {out_dir / 'results.json'} and {out_dir / 'report.md'}")

    run.__doc__ = f"Run the `{suite_path.stem}` benchmark suite ({suite_path.name})."
    return run


def register(app: typer.Typer) -> None:
    for path in sorted(SUITES_DIR.glob("*.toml")):
        app.command(name=path.stem)(_command(path))
