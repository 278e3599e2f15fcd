"""``prepare``: raw logs -> a split, leak-checked joint search+rec ``Dataset`` (OneFeed §4.1-4.3).

    load_raw -> validate -> drop_duplicates -> chronological [-> first per user/item]
      -> k_core -> split (leave_one_out | temporal) -> remap_ids
      -> weak queries (+ train/held-out split) -> joint sessions -> eval queries
      -> leakage checks -> Dataset.save (atomic)

Split before any label construction (OneFeed §4.10 rule 1): weak queries read review text of
train-split events only, sessions convert train events only, evaluation queries come from
held-out queries only. A failing leakage check raises ``LeakageError`` and nothing is written.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import polars as pl

import onefeed
from onefeed import config as config_mod
from onefeed.artifacts import check_not_input, check_target, file_sha256, git_commit
from onefeed.data import leakage, scan
from onefeed.data.preprocess import (IS_ITEM_EVENT, _renumber, chronological,
                                     conform_raw_events, drop_duplicates, k_core_keep,
                                     keep_first_per_user_item, remap_ids, take_rows, validate)
from onefeed.data.schemas import (EVAL_QUERY_SCHEMA, EVENT_SCHEMA, ITEM_SCHEMA, DataError,
                                  Dataset, RawData)
from onefeed.data.sessions import make_joint_sessions
from onefeed.data.splits import item_first_split, leave_one_out, temporal
from onefeed.data.weak_queries import (WeakQueryConfig, build_item_queries, eval_queries,
                                       normalize_series, query_stats, remap_evidence,
                                       search_pairs, split_queries)
from onefeed.paths import runs_root

log = logging.getLogger(__name__)


@dataclass
class PrepareConfig:
    RANGES: ClassVar[dict[str, str]] = {"k_core": ">= 0", "max_history": ">= 1",
        "valid_frac": "(0, 1)", "test_frac": "(0, 1)", "boundaries": ">= 0",
        "search_share": "[0, 1]", "memory_budget_gib": "> 0"}
    name: str = "synthetic"  # names the output (runs/<name>/data) and the manifest
    dataset: str = "synthetic"  # loader: ml-100k|ml-1m|amazon|amazon-raw|kuairec|lcrec|generic|synthetic
    path: str | None = None  # raw folder/file for the loader (default: the loader's own)
    options: dict[str, Any] = field(default_factory=dict)  # loader options (category=, n_users=...)
    protocol: Literal["leave_one_out", "temporal"] = "leave_one_out"
    k_core: int = 5  # users and items need >= k item events (0 disables)
    dedup: Literal["exact", "first_per_user_item"] = "exact"
    drop_short_users: bool = True  # leave-one-out: drop users with < 3 item events
    max_history: int = 20  # recorded; applied by views/examples, not by prepare
    valid_frac: float = 0.1  # temporal: share of item events after the valid boundary ...
    test_frac: float = 0.1  # ... and after the test boundary
    boundaries: list[int] | None = None  # temporal: explicit [valid_start, test_start]
    queries: WeakQueryConfig = field(default_factory=WeakQueryConfig)
    search_share: float = 0.3  # share of eligible train rec_clicks turned into searches
    # GiB prepare aims to stay within: sizes the streaming engine's chunks (onefeed.data.scan)
    # and warns when the in-memory core (k-core, split, sessions) will not fit
    memory_budget_gib: float = 2.0
    seed: int = 0

    def check(self) -> None:
        """Cross-field rules (``config.from_dict`` calls this after the per-field ranges)."""
        if self.valid_frac + self.test_frac >= 1:
            raise ValueError(f"valid_frac + test_frac = {self.valid_frac + self.test_frac:g}: "
                             "must be < 1")
        if self.boundaries is not None and (len(self.boundaries) != 2
                                            or self.boundaries[0] >= self.boundaries[1]):
            raise ValueError(f"boundaries = {self.boundaries}: must be [valid_start, "
                             "test_start] with valid_start < test_start")

    def seeds(self) -> dict[str, int]:
        """Per-stage seeds derived from ``seed`` (all recorded in the manifest)."""
        return {"query_split": self.seed + 1, "sessions": self.seed + 2,
                "eval_queries": self.seed + 3}


class LeakageError(DataError):
    def __init__(self, findings: list[leakage.Finding]):
        self.findings = findings
        names = ", ".join(f.check for f in findings)
        super().__init__(f"leakage check(s) failed: {names}\n" + "\n".join(map(str, findings)))


def load_config(path: str | Path | None, overrides: list[str] | None = None) -> PrepareConfig:
    """``PrepareConfig`` from TOML + overrides; a relative ``options.config`` written in the file
    resolves against the file's folder (as paths inside a generic mapping resolve against it)."""
    cfg = config_mod.load(PrepareConfig, path, overrides)
    if path is not None:
        named = config_mod.read_toml(path).get("options", {})
        named = named.get("config") if isinstance(named, dict) else None
        if isinstance(named, str) and cfg.options.get("config") == named \
                and not Path(named).is_absolute():
            cfg.options["config"] = str(Path(path).resolve().parent / named)
    return cfg


def load_raw_for(cfg: PrepareConfig) -> RawData:
    try:
        from onefeed.data.datasets import load_raw
    except ImportError as exc:
        raise DataError(f"no loaders available (onefeed.data.datasets.load_raw: {exc})") from None
    return load_raw(cfg.dataset, cfg.path, **cfg.options)


def _counts(step: str, ev: pl.DataFrame) -> dict[str, Any]:
    items = ev.filter(IS_ITEM_EVENT)
    return {"step": step, "events": ev.height, "item_events": items.height,
            "users": ev["user" if "user" in ev.columns else "user_id"].n_unique(),
            "items": items["item" if "item" in items.columns else "item_id"].n_unique()}


def _source_record(source: dict[str, Any]) -> dict[str, Any]:
    """The loader's source record, with sha256 filled in for files given as bare paths."""
    rec = dict(source)
    files = rec.get("files")
    if isinstance(files, (list, tuple)):
        out = {}
        for f in files:
            if isinstance(f, dict):
                out[str(f.get("path"))] = f.get("sha256")
            elif Path(f).is_file():
                out[str(f)] = file_sha256(f)
            else:
                out[str(f)] = None
        rec["files"] = out
    return rec


def _split(ev: pl.DataFrame, cfg: PrepareConfig):
    if cfg.protocol == "leave_one_out":
        return leave_one_out(ev, drop_short_users=cfg.drop_short_users)
    return temporal(ev, cfg.valid_frac, cfg.test_frac, cfg.boundaries)


def _final_events(ev: pl.DataFrame, text: bool = True) -> pl.DataFrame:
    """EVENT_SCHEMA columns; ``text=False`` keeps working frames' Enum behaviour/split."""
    keep = ("behaviour", "split") if not text else ()
    return ev.select([pl.col(c) if c in keep and isinstance(ev.schema[c], pl.Enum)
                      else pl.col(c).cast(t) for c, t in EVENT_SCHEMA.items()])


def _event_stats(ev: pl.DataFrame) -> dict[str, dict[str, int]]:
    tab = (ev.select(pl.col("split", "behaviour").cast(pl.Utf8))  # text order, not Enum order
           .group_by(["split", "behaviour"]).len().sort(["split", "behaviour"]))
    out: dict[str, dict[str, int]] = {}
    for s, b, n in tab.iter_rows():
        out.setdefault(s, {})[b] = n
    return out


def prepare(cfg: PrepareConfig, raw: RawData | None = None,
            on_step: Callable[[str], None] | None = None) -> Dataset:
    """Run the whole pipeline in memory; raise ``LeakageError`` if any check fails.

    ``on_step(name)`` is called as each stage starts (the CLI shows it as progress).
    """
    step = on_step or (lambda name: None)
    step("load")
    raw = raw if raw is not None else load_raw_for(cfg)
    step("validate + preprocess")
    scan.configure_streaming(cfg.memory_budget_gib)
    source_name = raw.source.get("name", cfg.dataset)
    where = f"{source_name} events"
    if isinstance(raw.events, pl.LazyFrame):  # a scan: validated and encoded streaming
        report, users = scan.validate_and_users(raw.events, raw.items, source_name)
        lazy = scan.conform_lazy(raw.events, where)
    else:
        report, users = validate(raw), None
        lazy = conform_raw_events(raw.events, where).lazy()
    encoded = scan.encode_ids(lazy, users)
    del lazy
    ev = encoded.events
    encoded = dataclasses.replace(encoded, events=None)  # ev is the frame's only owner now
    if ev["review"].null_count() == ev.height:  # no review text: no column to carry along
        ev = ev.drop("review")
    scan.check_budget(ev.height, cfg.memory_budget_gib)
    steps = [_counts("loaded", ev)]
    ev = drop_duplicates(ev)
    steps.append(_counts("drop_duplicates", ev))
    ev = chronological(ev).drop("order")  # order is in position now
    if cfg.dedup == "first_per_user_item":
        ev = keep_first_per_user_item(ev)
        steps.append(_counts("first_per_user_item", ev))
    keep, rounds = k_core_keep(ev, cfg.k_core)
    if keep is not None:  # filtered column by column, releasing each input column
        ev = _renumber(take_rows(ev, keep))
    del keep
    steps.append(_counts(f"k_core({cfg.k_core})", ev))
    if ev.height == 0:
        raise DataError(f"{where}: no events left after {cfg.k_core}-core filtering (users and "
                        f"items need >= {cfg.k_core} item events); lower k_core, e.g. --set "
                        "k_core=0 to disable it")
    step(f"split ({cfg.protocol})")
    split = _split(ev, cfg)
    del ev
    split_info, ev = split.info, split.events.with_columns(pl.col("split").cast(scan.SPLIT))
    del split
    steps.append(_counts(f"split({cfg.protocol})", ev))
    if ev.height == 0:
        raise DataError(f"{where}: no users with >= 3 item events; nothing to split (set "
                        "drop_short_users = false to keep short users in train)")
    remapped = remap_ids(ev, raw.items, encoded.user_names, encoded.item_names)
    del ev, encoded
    ev = remapped.events
    remapped = dataclasses.replace(remapped, events=None)
    items = remapped.items.join(item_first_split(ev), on="item", how="left", maintain_order="left")
    items = items.select("item", pl.col("first_split").fill_null("train"), *ITEM_SCHEMA)

    seeds = cfg.seeds()
    step("weak queries")
    train_reviews = ev.select("user", "position", "item", "review").filter(
        (ev["split"] == "train") & ev.select(IS_ITEM_EVENT).to_series()
        & pl.col("review").is_not_null()) if "review" in ev.columns else None
    ev = ev.drop("review", strict=False)  # nothing reads review text after weak queries
    queries = build_item_queries(items, train_reviews, cfg.queries)
    real = search_pairs(ev, "train")
    real = real.with_columns(normalize_series(real["query"]).alias("query"))
    queries = split_queries(queries, cfg.queries, seeds["query_split"], real)
    step("joint sessions")
    sessions = make_joint_sessions(ev, queries, cfg.search_share, seeds["sessions"],
                                   scan.chunk_rows(cfg.memory_budget_gib), consume=True)
    del ev, train_reviews, real
    ev = sessions.events
    queries = remap_evidence(queries, sessions.position_map)
    sessions = dataclasses.replace(sessions, events=None, position_map=None)
    evq, eval_stats = eval_queries(ev, queries, seeds["eval_queries"])
    _warn_thin_search(evq, queries, cfg)
    final = _final_events(ev, text=False)  # leakage checks read the one-byte Enum columns
    del ev

    manifest: dict[str, Any] = {
        "name": cfg.name,
        "created_at": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "onefeed_version": onefeed.__version__,
        "git_commit": git_commit(),
        "source": _source_record(raw.source),
        "has_timestamps": report.has_timestamps,
        "protocol": cfg.protocol,
        "max_history": cfg.max_history,
        "seed": cfg.seed,
        "seeds": seeds,
        "validation": report.as_dict(),
        "filters": {"dedup": cfg.dedup, "k_core": cfg.k_core, "k_core_rounds": rounds,
                    "steps": steps},
        "split": split_info,
        "items_without_metadata": remapped.items_without_metadata,
        "metadata_items_without_events": remapped.metadata_items_without_events,
        "counts": {"users": remapped.users.height, "items": items.height,
                   "events": final.height, "item_events": final.filter(IS_ITEM_EVENT).height,
                   "events_by_split_behaviour": _event_stats(final),
                   "items_by_first_split": dict(items.group_by("first_split").len().iter_rows())},
        "queries": query_stats(queries, items.height),
        "eval_queries": eval_stats,
        "sessions": sessions.stats,
        "item_table_sha256": leakage.item_table_hash(items),
        "config": config_mod.to_dict(cfg),
    }
    ds = Dataset(events=final, items=items, users=remapped.users,
                 queries=queries, eval_queries=evq.select(
                     [pl.col(c).cast(t) for c, t in EVAL_QUERY_SCHEMA.items()]),
                 manifest=manifest)
    step("leakage checks")
    results = leakage.check_all(ds)
    manifest["leakage"] = leakage.summary(results)
    failures = [f for f in results.values() if f is not None]
    if failures:
        raise LeakageError(failures)
    del final
    return dataclasses.replace(ds, events=_final_events(ds.events))  # behaviour, split as text


def _warn_thin_search(evq: pl.DataFrame, queries: pl.DataFrame, cfg: PrepareConfig) -> None:
    """Warn (not fail) when search cannot be evaluated: the dataset is still usable for rec."""
    n_test = evq.filter(pl.col("split") == "test").height
    if n_test == 0:
        log.warning("%s: 0 test search queries (%d weak queries from sources %s); search "
                    "metrics will be empty. Add item text (description, categories, tags, "
                    "reviews) or lower queries.min_chars / queries.keyword_min_count",
                    cfg.name, queries.height, cfg.queries.sources)


def default_out(cfg: PrepareConfig) -> Path:
    return runs_root() / cfg.name / "data"


def prepare_to_dir(cfg: PrepareConfig, out: str | Path | None = None,
                   raw: RawData | None = None,
                   on_step: Callable[[str], None] | None = None, replace: bool = True,
                   inputs: list[str | Path] | None = None) -> tuple[Dataset, Path]:
    """``prepare`` then ``Dataset.save`` (atomic: temp dir, then rename).

    The output is checked before any work: it may not overlap the raw input (``cfg.path``) or
    ``inputs`` (e.g. the config's folder), be a file or a directory that is not an onefeed
    dataset, and with ``replace=False`` may not already hold a dataset (the CLI's ``--force``).
    """
    out = Path(out) if out is not None else default_out(cfg)
    protected = [cfg.path, *(inputs or []), *_option_paths(cfg.options)]
    check_not_input(out, protected, "--out")
    check_target(out, "dataset", replace)
    ds = prepare(cfg, raw, on_step)
    check_not_input(out, [*protected, *_source_paths(ds.manifest["source"])], "--out")
    if on_step:
        on_step("save")
    path = ds.save(out, replace=replace)
    saved = json.loads((path / "manifest.json").read_text())  # + kind and file hashes
    return dataclasses.replace(ds, manifest=saved), path


def _option_paths(options: dict[str, Any]) -> list[str]:
    """Loader options naming existing files or folders (e.g. a generic loader's mapping)."""
    return [v for v in options.values() if isinstance(v, str) and v and Path(v).exists()]


def _source_paths(source: dict[str, Any]) -> list[str]:
    """The raw folder a loader says it read (its default when ``cfg.path`` is unset)."""
    return [str(source[k]) for k in ("root", "path") if isinstance(source.get(k), (str, Path))
            and source[k]]
