"""``onefeed data ...``: prepare, check and inspect datasets. Parses, calls the library, formats."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from onefeed.config import ConfigError
from onefeed.data.schemas import DataError, Dataset

app = typer.Typer(help="Prepare, check and inspect datasets (raw logs -> split, leak-checked "
                       "data).", no_args_is_help=True)
console = Console()
PREPARE_STAGES = 7  # load, preprocess, split, weak queries, sessions, leakage checks, save
err = Console(stderr=True)


def _fail(message: str) -> None:
    err.print(f"[red]error:[/red] {escape(message)}", highlight=False, markup=True,
              soft_wrap=True)
    raise typer.Exit(1)


@app.command()
def prepare(
    config: Path = typer.Option(None, "--config", "-c",
                                help="TOML config (configs/prepare/*.toml)."),
    raw_dir: Path = typer.Option(None, "--raw-dir", help="Raw data folder/file for the loader."),
    out: Path = typer.Option(None, "--out", "-o", help="Output dir (default runs/<name>/data)."),
    set_: list[str] = typer.Option([], "--set", help="Override a config key: key=value (repeat)."),
) -> None:
    """Load raw logs, preprocess, split, build weak queries and sessions, check leakage, save."""
    from onefeed.data.prepare import LeakageError, load_config, prepare_to_dir

    try:
        cfg = load_config(config, list(set_))
        if raw_dir is not None:
            cfg.path = str(raw_dir)
        with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                      TimeElapsedColumn(), console=err, transient=True) as progress:
            task = progress.add_task("prepare", total=PREPARE_STAGES)

            def on_step(stage: str) -> None:
                progress.update(task, description=f"prepare: {stage}",
                                completed=min(progress.tasks[0].completed + 1, PREPARE_STAGES))

            ds, path = prepare_to_dir(cfg, out, on_step=on_step)
    except LeakageError as exc:
        for finding in exc.findings:
            err.print(str(finding), markup=False, highlight=False)
        _fail(f"leakage check(s) failed: {', '.join(f.check for f in exc.findings)}; "
              "nothing was written")
    except (DataError, ConfigError, FileNotFoundError) as exc:
        _fail(str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__)
    c = ds.manifest["counts"]
    console.print(f"wrote {path}: {c['users']:,} users, {c['items']:,} items, "
                  f"{c['events']:,} events ({c['item_events']:,} item events), "
                  f"{ds.eval_queries.height:,} eval queries; leakage checks passed")


def _load(directory: Path) -> Dataset:
    try:
        return Dataset.load(directory)
    except (DataError, FileNotFoundError) as exc:
        _fail(str(exc))
        raise  # unreachable; keeps type checkers happy


@app.command()
def check(directory: Path = typer.Argument(..., help="A prepared dataset directory.")) -> None:
    """Run the leakage diagnostics (OneFeed App. B) on a prepared dataset."""
    from onefeed.data import leakage

    ds = _load(directory)
    results = leakage.check_all(ds)
    table = Table(title=f"leakage checks: {directory}")
    table.add_column("check")
    table.add_column("result")
    for name, finding in results.items():
        table.add_row(name, "[green]pass[/green]" if finding is None else f"[red]FAIL[/red] "
                      f"{finding.message}")
    console.print(table)
    failures = [f for f in results.values() if f is not None]
    for finding in failures:
        err.print(str(finding), markup=False, highlight=False)
    if failures:
        raise typer.Exit(1)


def _counts_table(ds: Dataset) -> Table:
    tab = ds.events.group_by(["behaviour", "split"]).len()
    table = Table(title=f"{ds.name}: {ds.n_users:,} users, {ds.n_items:,} items, "
                        f"{ds.events.height:,} events ({ds.manifest.get('protocol')})")
    table.add_column("behaviour")
    for split in ("train", "valid", "test", "all"):
        table.add_column(split, justify="right")
    for b in ("rec_click", "search_query", "search_click"):
        row = tab.filter(pl.col("behaviour") == b)
        cells = [int(row.filter(pl.col("split") == s)["len"].sum())
                 for s in ("train", "valid", "test")]
        table.add_row(b, *[f"{n:,}" for n in cells], f"{sum(cells):,}")
    cold = ds.items.group_by("first_split").len()
    table.caption = ("items by first split: " + ", ".join(f"{s}={n:,}" for s, n in cold.iter_rows())
                     + f"; queries {ds.queries.height:,}; eval queries {ds.eval_queries.height:,}")
    return table


def _queries_table(ds: Dataset, n_items: int = 3) -> Table:
    table = Table(title="weak queries (sample items)")
    for col in ("item", "title", "query", "source", "split"):
        table.add_column(col, overflow="fold")
    items = ds.queries["item"].unique(maintain_order=True).head(n_items).to_list()
    titles = dict(ds.items.select("item", "title").iter_rows())
    for item in items:
        for _, query, source, split in ds.queries.filter(pl.col("item") == item).select(
                "item", "query", "source", "split").iter_rows():
            table.add_row(str(item), (titles.get(item) or "")[:50], query, source, split)
    return table


def _history_table(ds: Dataset, n: int = 12) -> Table:
    ev = ds.events
    # the longest history among the first 200 users who searched (or the first user)
    searchers = ev.filter(pl.col("behaviour") == "search_query")["user"].unique(maintain_order=True)
    pool = ev.filter(pl.col("user").is_in(searchers.head(200).implode())) if searchers.len() else ev
    longest = pool.group_by("user").len().sort(["len", "user"], descending=[True, False])
    user = int(longest["user"][0])
    titles = dict(ds.items.select("item", "title").iter_rows())
    table = Table(title=f"mixed history of user {user} (last {n} events)")
    for col in ("pos", "split", "behaviour", "item / query"):
        table.add_column(col, overflow="fold")
    for pos, split, b, item, query in (ev.filter(pl.col("user") == user).tail(n)
                                       .select("position", "split", "behaviour", "item", "query")
                                       .iter_rows()):
        text = f"q: {query}" if b == "search_query" else f"{item}: {(titles.get(item) or '')[:60]}"
        table.add_row(str(pos), split, b, text)
    return table


@app.command()
def stats(directory: Path = typer.Argument(..., help="A prepared dataset directory.")) -> None:
    """Counts by behaviour and split, sample weak queries, a sample mixed history."""
    ds = _load(directory)
    console.print(_counts_table(ds))
    console.print(_queries_table(ds))
    console.print(_history_table(ds))


@app.command()
def show(directory: Path = typer.Argument(..., help="A prepared dataset directory.")) -> None:
    """Alias of stats: counts, sample weak queries, a sample mixed history."""
    stats(directory)


@app.command()
def fetch(name: str = typer.Argument(..., help="ml-100k or ml-1m (official GroupLens zips)."),
          dest: Path = typer.Option(None, help="Raw-data root (default $ONEFEED_DATA_ROOT or "
                                               "../shared/datasets).")) -> None:
    """Download an official archive (needs internet), verify its sha256, extract the files."""
    from onefeed.data.datasets.fetch import fetch as fetch_archive
    from onefeed.paths import raw_root

    try:
        folder = fetch_archive(name, dest or raw_root())
    except DataError as exc:
        _fail(str(exc))
    console.print(f"wrote {folder} (checksum verified); the GroupLens terms apply: research "
                  "use, no redistribution")
