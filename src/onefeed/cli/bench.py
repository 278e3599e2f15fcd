"""``onefeed bench ...``: every benchmark writes JSON + markdown under bench/results/.

Each benchmark family lives in its own ``onefeed.cli.bench_*`` module exposing
``register(app)``; suites (``onefeed bench <suite>``) are registered by ``bench_suite``.
"""

from __future__ import annotations

import importlib

import typer

app = typer.Typer(help="Benchmarks (write JSON + markdown under bench/results/).",
                  no_args_is_help=True, rich_markup_mode=None)

for _module in ("onefeed.cli.bench_suite", "onefeed.cli.bench_prepare",
                "onefeed.cli.bench_sid", "onefeed.cli.bench_decode",
                "onefeed.cli.bench_decode_text", "onefeed.cli.bench_sid_matrix", "onefeed.cli.bench_amazon",
                "onefeed.cli.bench_fuzz", "onefeed.cli.bench_auto", "onefeed.cli.bench_ddp",
                "onefeed.cli.bench_serve", "onefeed.cli.bench_serve_fuzz",
                "onefeed.cli.bench_closed_loop", "onefeed.cli.bench_catalogue",
                "onefeed.cli.bench_onebar", "onefeed.cli.bench_unisearch"):
    try:
        importlib.import_module(_module).register(app)
    except ModuleNotFoundError as exc:
        if exc.name != _module:
            raise


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="bench")
