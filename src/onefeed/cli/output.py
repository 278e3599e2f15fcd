"""How commands print: one result shape for ``recommend`` and ``joint recommend / search /
suggest`` (a readable table by default, JSON with ``--json``), ``--quiet`` and markup-safe text.

Result shape (what ``--json`` prints)::

    {"user": "u3", "query": "red lipstick",          # "query" for search only
     "items": [{"rank": 1, "item_id": "i42", "title": "...", "score": -1.23}, ...]}
    {"user": "u3", "queries": [{"rank": 1, "query": "..."}, ...]}          # suggest

Anything user- or config-supplied that goes through rich (titles, queries, error messages
naming ``[events.behaviour_values]``) is escaped: rich would read ``[...]`` as markup and drop it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

JSON_HELP = "print JSON instead of a table"
QUIET_HELP = "no progress bars or log lines (results and errors are still printed)"


def item_rows(ids: Any, item_ids: Any, titles: Any, scores: Any = None) -> list[dict[str, Any]]:
    """``[{"rank", "item_id", "title"[, "score"]}]`` for item indices ``ids`` (-1 = no item)."""
    rows: list[dict[str, Any]] = []
    for pos, i in enumerate(ids):
        if int(i) < 0:
            continue
        row: dict[str, Any] = {"rank": len(rows) + 1, "item_id": item_ids[int(i)],
                               "title": titles[int(i)]}
        if scores is not None:
            row["score"] = round(float(scores[pos]), 4)
        rows.append(row)
    return rows


def query_rows(queries: list[str]) -> list[dict[str, Any]]:
    return [{"rank": r, "query": q} for r, q in enumerate(queries, 1)]


def print_result(result: dict[str, Any], as_json: bool, caption: str | None = None) -> None:
    """Print a result dict (shape in the module docstring) as JSON or as a rich table."""
    if as_json:
        typer.echo(json.dumps(result, indent=2))
        return
    title = f"user {result['user']}"
    if "query" in result:
        title += f" — query {result['query']!r}"
    table = Table(title=escape(title), caption=escape(caption) if caption else None)
    rows = result.get("items", result.get("queries", []))
    columns = [c for c in ("rank", "item_id", "title", "score", "query") if rows and c in rows[0]]
    for c in columns:
        table.add_column(c, justify="right" if c in ("rank", "score") else "left",
                         overflow="fold")
    for row in rows:
        table.add_row(*(escape(f"{row[c]:.3f}" if c == "score" else str(row[c]))
                        for c in columns))
    Console(highlight=False).print(table)
    if not rows:
        typer.echo("(no results)")


@contextmanager
def quiet(enabled: bool = True) -> Iterator[None]:
    """While active (and ``enabled``), silence progress bars and log lines: rich's global
    console (the training loops' bars), the bench's console and tqdm bars (model loading).
    Everything is restored on exit (tests run many commands in one process)."""
    if not enabled:
        yield
        return
    import rich

    from onefeed.bench import runner as bench

    env = {"TQDM_DISABLE": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1",
           "TRANSFORMERS_VERBOSITY": "error"}
    saved_env = {k: os.environ.get(k) for k in env}
    consoles = [rich.get_console(), bench.console]
    saved_quiet = [c.quiet for c in consoles]
    os.environ.update(env)
    for c in consoles:
        c.quiet = True
    hf_bars = _hf_progress_bars(False)  # transformers reads the env vars only at import
    try:
        yield
    finally:
        _hf_progress_bars(hf_bars)
        for c, q in zip(consoles, saved_quiet):
            c.quiet = q
        for k, v in saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _hf_progress_bars(enabled: bool) -> bool:
    """Turn transformers' tqdm bars ("Loading weights") on or off; returns the old state."""
    try:
        from transformers.utils import logging as hf_logging
    except ImportError:
        return enabled
    before = hf_logging.is_progress_bar_enabled()
    (hf_logging.enable_progress_bar if enabled else hf_logging.disable_progress_bar)()
    return before
