"""Feedback log -> an events folder ``onefeed data prepare`` reads through the generic loader.

    onefeed feedback export --log runs/x.feedback.sqlite --out runs/feedback-export [--data D]
    onefeed data prepare --config runs/feedback-export/prepare.toml --out runs/fb/data

What goes where (one snapshot of the log, rows ordered by timestamp, then log id):

- ``events.parquet`` (positives, read by prepare): ``query`` -> ``search_query``; ``click`` ->
  ``rec_click``, or ``search_click`` when the click carries the query it answered; ``dwell``
  -> an item event the same way, except that a dwell on an item the same user clicked in the
  same response (same non-null ``request_id``) is folded into that click: its ``strength`` is
  the summed ``dwell_ms``, and no second event is written. ``strength`` = dwell ms or null.
- ``negatives.parquet`` (not read by prepare): every ``impression`` and ``skip``, with
  ``kind``, ``position``, ``request_id`` and ``clicked`` (the same user clicked or dwelt on that
  item in the same response: an impression that was a positive after all).
- ``mapping.toml`` (the generic loader's column mapping), ``prepare.toml`` (dataset
  ``generic``; add ``--set k_core=...`` etc.), ``items.parquet`` when ``--data`` names a
  prepared dataset whose item table (titles, text, categories) should come along, and
  ``manifest.json`` (kind ``feedback-export``: source log, counts, file hashes).

The folder is written atomically; an existing folder that onefeed did not make is refused.
"""

from __future__ import annotations

import datetime as _dt
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

import onefeed
from onefeed.artifacts import (OutputError, atomic_dir, check_not_input, git_commit, hash_files,
                               write_json)
from onefeed.data.schemas import ITEM_SCHEMA
from onefeed.feedback.events import FIELDS, FeedbackError
from onefeed.feedback.log import LoggedEvent, is_postgres, open_log, redact

KIND = "feedback-export"
POSITIVE_KINDS = ("click", "dwell", "query")
NEGATIVE_KINDS = ("impression", "skip")
EVENT_COLUMNS = ["id", "user_id", "item_id", "timestamp", "behaviour", "query", "strength",
                 "kind", "position", "dwell_ms", "request_id"]
NEGATIVE_COLUMNS = ["id", "user_id", "item_id", "timestamp", "kind", "query", "position",
                    "request_id", "clicked"]
LOG_SCHEMA: dict[str, pl.DataType] = {
    "id": pl.Int64, "received_at": pl.Float64, "user": pl.Utf8, "kind": pl.Utf8,
    "timestamp": pl.Float64, "item": pl.Utf8, "query": pl.Utf8, "position": pl.Int64,
    "dwell_ms": pl.Int64, "request_id": pl.Utf8}


@dataclass(frozen=True)
class Exported:
    path: Path
    counts: dict[str, Any]


def log_frame(rows: Iterable[LoggedEvent]) -> pl.DataFrame:
    """The log as one frame (LOG_SCHEMA), in log order."""
    data = [(r.id, r.received_at, *(getattr(r.event, f) for f in FIELDS)) for r in rows]
    return pl.DataFrame(data, schema=LOG_SCHEMA, orient="row")


def split_log(log: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame, int]:
    """(events, negatives, dwells folded into clicks) from a LOG_SCHEMA frame (rules above)."""
    key = ["user", "item", "request_id"]
    clicks = log.filter((pl.col("kind") == "click") & pl.col("request_id").is_not_null())
    dwell = log.filter((pl.col("kind") == "dwell") & pl.col("request_id").is_not_null())
    folded = dwell.join(clicks.select(key).unique(), on=key, how="semi")
    folded_ms = folded.group_by(key).agg(pl.col("dwell_ms").sum().alias("_folded_ms"))
    keep = log.filter(pl.col("kind").is_in(POSITIVE_KINDS)).join(
        folded.select("id"), on="id", how="anti")
    keep = keep.join(folded_ms.with_columns(pl.lit("click").alias("kind")),
                     on=[*key, "kind"], how="left")
    behaviour = (pl.when(pl.col("kind") == "query").then(pl.lit("search_query"))
                 .when(pl.col("query").is_not_null()).then(pl.lit("search_click"))
                 .otherwise(pl.lit("rec_click")))
    strength = (pl.when(pl.col("kind") == "dwell").then(pl.col("dwell_ms"))
                .otherwise(pl.col("_folded_ms")).cast(pl.Float64))
    events = (keep.sort(["timestamp", "id"])
              .with_columns(behaviour.alias("behaviour"), strength.alias("strength"),
                            pl.col("user").alias("user_id"), pl.col("item").alias("item_id"))
              .select(EVENT_COLUMNS))
    positive_keys = log.filter(pl.col("kind").is_in(("click", "dwell"))
                               & pl.col("request_id").is_not_null()).select(key).unique()
    negatives = (log.filter(pl.col("kind").is_in(NEGATIVE_KINDS))
                 .join(positive_keys.with_columns(pl.lit(True).alias("clicked")), on=key,
                       how="left")
                 .sort(["timestamp", "id"])  # joins need not keep row order
                 .with_columns(pl.col("clicked").fill_null(False),
                               pl.col("user").alias("user_id"), pl.col("item").alias("item_id"))
                 .select(NEGATIVE_COLUMNS))
    return events, negatives, folded.height


def _toml_value(v: Any) -> str:
    return "true" if v is True else "false" if v is False else json.dumps(v)


def mapping_toml(with_items: bool) -> str:
    events = {"file": "events.parquet", "format": "parquet", "user": "user_id",
              "item": "item_id", "timestamp": "timestamp", "timestamp_format": "unix",
              "behaviour": "behaviour", "query": "query", "strength": "strength",
              "review": ""}
    items = ({"file": "items.parquet", "format": "parquet", "id": "item_id", "title": "title",
              "description": "description", "brand": "brand", "categories": "categories",
              "tags": "tags"} if with_items else {"file": ""})
    lines = ["# Column mapping of a feedback export for the generic loader (written by",
             "# onefeed feedback export; see docs/SERVING.md \"Feedback log\").",
             'name = "feedback"', "", "[events]"]
    lines += [f"{k} = {_toml_value(v)}" for k, v in events.items()]
    lines += ["", "[items]"] + [f"{k} = {_toml_value(v)}" for k, v in items.items()]
    return "\n".join(lines) + "\n"


def prepare_toml(name: str) -> str:
    return "\n".join([
        "# Prepare this feedback export (written by onefeed feedback export):",
        "#   onefeed data prepare --config <this folder>/prepare.toml --out runs/<name>/data",
        "# Every other PrepareConfig key keeps its default; add --set k_core=2 etc.",
        f"name = {_toml_value(name)}", 'dataset = "generic"', "", "[options]",
        'config = "mapping.toml"']) + "\n"


def _items(data: str | Path) -> pl.DataFrame:
    from onefeed.data.schemas import Dataset

    ds = Dataset.load(data)
    return ds.items.select(list(ITEM_SCHEMA))


def _not_over_log(out: Path, log: Path) -> None:
    """Refuse an ``out`` that is the log file or a folder holding it (replacing ``out``
    would delete the log, its -wal and -shm files); a sibling folder is fine."""
    o, f = out.resolve(), log.resolve()
    if o == f or o in f.parents:
        raise OutputError(f"--out {out} holds the feedback log {log}: writing there would "
                          "delete it; choose a separate output directory")


def export(target: str | Path, out: str | Path, data: str | Path | None = None,
           name: str = "feedback", replace: bool = False) -> Exported:
    """Write the export folder ``out`` from the log at ``target`` (never created here).
    ``replace``: overwrite an earlier export (never a folder onefeed did not make)."""
    target, out = str(target), Path(out)
    if not is_postgres(target):
        _not_over_log(out, Path(target))
    if data is not None:
        check_not_input(out, [data], "--out")
    log = open_log(target, create=False)
    try:
        frame = log_frame(log.read())
    finally:
        log.close()
    events, negatives, folded = split_log(frame)
    if events.height == 0:
        raise FeedbackError(f"{redact(target)}: no click, dwell or query events among "
                            f"{frame.height} logged; nothing that prepare could use")
    items = _items(data) if data is not None else None
    counts = {"logged": frame.height,
              "by_kind": dict(sorted(frame.group_by("kind").len().iter_rows())),
              "events": events.height,
              "by_behaviour": dict(sorted(events.group_by("behaviour").len().iter_rows())),
              "negatives": negatives.height, "dwell_folded_into_clicks": folded,
              "users": events["user_id"].n_unique(),
              "items": events["item_id"].drop_nulls().n_unique(),
              "max_id": int(frame["id"].max()) if frame.height else 0}
    with atomic_dir(out, kind=KIND, replace=replace) as tmp:
        events.write_parquet(tmp / "events.parquet")
        negatives.write_parquet(tmp / "negatives.parquet")
        if items is not None:
            items.write_parquet(tmp / "items.parquet")
        (tmp / "mapping.toml").write_text(mapping_toml(items is not None), encoding="utf-8")
        (tmp / "prepare.toml").write_text(prepare_toml(name), encoding="utf-8")
        write_json(tmp / "manifest.json", {
            "kind": KIND,
            "created_at": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
            "onefeed_version": onefeed.__version__, "git_commit": git_commit(),
            "source": {"log": redact(target),
                       "backend": "postgresql" if is_postgres(target) else "sqlite",
                       "items_from": str(data) if data is not None else None},
            "counts": counts, "files": hash_files(tmp)})
    return Exported(out, counts)
