"""``onefeed bench beauty-unisearch``: UniSearch generative search rows vs BM25 ->
bench/results/<suite>/{results.json, report.md} (``onefeed.bench.unisearch``)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from onefeed.paths import REPO

CONFIG = REPO / "configs" / "bench" / "beauty-unisearch.toml"


def register(app: typer.Typer) -> None:
    app.command("beauty-unisearch")(bench_unisearch)


def bench_unisearch(
    config: Optional[Path] = typer.Option(None, help="suite TOML (default "
                                          "configs/bench/beauty-unisearch.toml)"),
    rows: str = typer.Option("", help="comma-separated rows (default: the config's); other "
                             "rows of an earlier run on the same data and cases are kept"),
    seeds: str = typer.Option("", help="comma-separated seeds (default: the config's)"),
    set_: list[str] = typer.Option([], "--set", help="suite override key=value (repeatable)"),
    out: Optional[Path] = typer.Option(None, help="output dir (default bench/results/<suite>)"),
) -> None:
    """bm25, unisearch-plain, unisearch, unisearch-spo, unisearch-bm25-fused: recall@10/100,
    mrr@10 on held-out eval queries, the trie study, epochs reached under each row's cap."""
    from onefeed.bench import unisearch

    path = config or CONFIG
    try:
        seed_list = [int(s) for s in seeds.split(",") if s.strip()]
    except ValueError:
        raise typer.BadParameter(f"--seeds {seeds!r}: give integers like 0,1,2") from None
    cfg = unisearch.load_config(path, list(set_))
    done = unisearch.run_suite(cfg, out, [r.strip() for r in rows.split(",") if r.strip()]
                               or None, seed_list or None, str(path), progress=typer.echo)
    typer.echo((done / "report.md").read_text())
