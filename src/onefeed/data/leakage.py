"""Leakage diagnostics for a prepared ``Dataset`` (OneFeed §4.10 and Appendix B).

Each check is a function ``Dataset -> Finding | None``; a ``Finding`` names the check, says
what is wrong and carries the offending rows. ``check(ds)`` runs them all and returns the
failures; ``prepare`` refuses to write a dataset with any, and ``onefeed data check DIR``
runs them on a saved one.

Checks (Appendix B names in brackets):
* ``temporal_boundary`` [temporal boundary] — temporal protocol: train events are before the
  valid boundary, valid events between the boundaries, test events after. Every protocol: per
  user, train positions < valid positions < test positions; leave-one-out has at most one valid
  and one test item event per user.
* ``history_target_separation`` [history-target] — no valid/test item event also appears in
  train (same user, item and timestamp, whatever the behaviour; same user and item when the
  source has no time), and every evaluation query targets its user's held-out event.
* ``pseudo_query_sources`` [pseudo-query source] — no (query, item) pair of ``eval_queries``
  is a train weak query or a train-split search event (after normalisation); each eval query is
  one of the item's held-out queries; review-derived queries cite only TRAIN-split events of
  that item as evidence. (The review text itself is not stored; the check trusts the evidence
  list that ``prepare`` recorded when it read the reviews.)
* ``retrieval_corpus`` [retrieval corpus] — item ids are 0..n-1, every referenced item is in
  the table, and the item table hash equals the one recorded at prepare time.
* ``seeds_recorded`` [seed reproducibility] — the manifest records the seeds.
* ``semantic_id_sources`` [semantic-ID construction] — not run here (no IDs exist at prepare
  time): ``check_semantic_id_sources(ds, events_used)`` is the hook the SID builder calls with
  the events it used.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass

import polars as pl

from onefeed.data.preprocess import IS_ITEM_EVENT
from onefeed.data.schemas import Dataset
from onefeed.data.weak_queries import normalize_series, search_pairs


@dataclass
class Finding:
    check: str
    message: str
    rows: pl.DataFrame  # the offending rows (possibly truncated to ``max_rows`` in __str__)

    def __str__(self) -> str:
        shown = f" (first 10 of {self.rows.height})" if self.rows.height > 10 else ""
        with pl.Config(tbl_rows=10, tbl_cols=10, fmt_str_lengths=40):
            return f"[{self.check}] {self.message}\noffending rows{shown}:\n{self.rows.head(10)}"


def item_table_hash(items: pl.DataFrame) -> str:
    """sha256 of the item table's NDJSON text (sorted by ``item``): fixes the retrieval corpus."""
    text = items.sort("item").write_ndjson()
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _fail(check: str, message: str, rows: pl.DataFrame) -> Finding | None:
    return Finding(check, f"{message} ({rows.height} rows)", rows) if rows.height else None


def _first(*findings: Finding | None) -> Finding | None:
    """Merge several sub-checks' findings into one per check (messages joined)."""
    found = [f for f in findings if f is not None]
    if not found:
        return None
    rows = found[0].rows
    return Finding(found[0].check, "; ".join(f.message for f in found), rows)


# The event columns the checks read (findings list these columns of offending rows)
NARROW = ("user", "item", "position", "timestamp", "behaviour", "split")


def temporal_boundary(ds: Dataset) -> Finding | None:
    name = "temporal_boundary"
    ev = ds.events
    findings = []
    if ds.manifest.get("protocol") == "temporal":
        b = ds.manifest.get("split", {}).get("boundaries")
        if not b:
            return Finding(name, "temporal protocol but no split.boundaries in the manifest",
                           pl.DataFrame())
        vs, ts = b["valid_start"], b["test_start"]
        t = pl.col("timestamp")
        bad = ev.filter(((pl.col("split") == "train") & (t >= vs))
                        | ((pl.col("split") == "valid") & ((t < vs) | (t >= ts)))
                        | ((pl.col("split") == "test") & (t < ts)) | t.is_null())
        findings.append(_fail(name, f"events on the wrong side of the time boundaries "
                                    f"valid_start={vs}, test_start={ts}", bad))
    span = ev.group_by(["user", "split"]).agg(pl.col("position").min().alias("lo"),
                                               pl.col("position").max().alias("hi"))
    wide = span.pivot(on="split", index="user", values=["lo", "hi"])
    for early, late in (("train", "valid"), ("train", "test"), ("valid", "test")):
        hi, lo = f"hi_{early}", f"lo_{late}"
        if hi in wide.columns and lo in wide.columns:
            bad_users = wide.filter(pl.col(hi) >= pl.col(lo)).select("user")
            bad = ev.join(bad_users, on="user", how="semi").filter(
                pl.col("split").is_in([early, late]))
            findings.append(_fail(name, f"{early} events at or after {late} events in a "
                                        f"user's sequence", bad))
    if ds.manifest.get("protocol") == "leave_one_out":
        many = (ev.filter(IS_ITEM_EVENT & (pl.col("split") != "train"))
                .filter(pl.len().over(["user", "split"]) > 1))
        findings.append(_fail(name, "leave-one-out user with more than one valid or test item "
                                    "event", many))
    return _first(*findings)


def history_target_separation(ds: Dataset) -> Finding | None:
    name = "history_target_separation"
    # narrow before filtering: a filter copies every column it keeps
    items = ds.events.select(*NARROW).filter(IS_ITEM_EVENT)
    timed = items["timestamp"].null_count() < items.height
    # one interaction logged under two behaviours at one time (prepare collapses those) would put
    # the target in the history: any behaviour counts
    key = ["user", "item", "timestamp"] if timed else ["user", "item"]
    held = items.filter(pl.col("split") != "train")
    # probe the (large) train side against the (small) held-out keys, not the other way round
    hits = (items.filter(pl.col("split") == "train").select(key)
            .join(held.select(key).unique(), on=key, how="semi", nulls_equal=True).unique())
    del items
    bad = held.join(hits, on=key, how="semi", nulls_equal=True)
    found = _fail(name, f"held-out target events also present in train (same {', '.join(key)})",
                  bad)
    targets = (held.sort(["user", "position"]).group_by(["user", "split"], maintain_order=True)
               .agg(pl.col("item").first()))
    eq = ds.eval_queries.select(pl.col("user").cast(pl.Int32), "split",
                                pl.col("item").cast(pl.Int32), "query")
    wrong = eq.join(targets.with_columns(pl.col("user").cast(pl.Int32),
                                         pl.col("item").cast(pl.Int32),
                                         pl.col("split").cast(pl.Utf8)),  # text or Enum
                    on=["user", "split", "item"], how="anti")
    return _first(found, _fail(name, "eval queries whose (user, split, item) is not that user's "
                                     "held-out target", wrong))


def train_pairs(ds: Dataset) -> pl.DataFrame:
    """(item, normalised query) pairs seen in training: train weak queries + train searches."""
    q = ds.queries.filter(pl.col("split") == "train").select("item", "query")
    # distinct raw pairs first: normalising is a function of the text, so the set is the same
    clicks = search_pairs(ds.events.select(*NARROW, "query"), "train").unique()
    pairs = pl.concat([q.with_columns(pl.col("item").cast(pl.Int32)),
                       clicks.with_columns(pl.col("item").cast(pl.Int32))])
    return pairs.with_columns(normalize_series(pairs["query"]).alias("query")).unique()


def pseudo_query_sources(ds: Dataset) -> Finding | None:
    name = "pseudo_query_sources"
    eq = ds.eval_queries.with_columns(pl.col("item").cast(pl.Int32))
    eq_norm = eq.with_columns(normalize_series(eq["query"]).alias("_norm"))
    seen = eq_norm.join(train_pairs(ds).rename({"query": "_norm"}), on=["item", "_norm"],
                        how="semi").drop("_norm")
    held = ds.queries.filter(pl.col("split") == "test").select(
        pl.col("item").cast(pl.Int32), "query")
    not_held = eq.join(held, on=["item", "query"], how="anti")
    findings = [
        _fail(name, "eval (query, item) pairs that occur in training (train weak queries or "
                    "train search events)", seen),
        _fail(name, "eval queries that are not held-out queries of their item", not_held),
    ]
    rev = ds.queries.filter(pl.col("source") == "review")
    if rev.height:
        if "evidence" not in rev.columns:
            return _first(*findings, Finding(name, "review-derived queries without an evidence "
                                                   "column (provenance unknown)", rev))
        no_ev = rev.filter(pl.col("evidence").is_null() | (pl.col("evidence").list.len() == 0))
        ex = (rev.with_row_index("_q").filter(pl.col("evidence").is_not_null())
              .explode("evidence").unnest("evidence"))
        ok = ds.events.select(*NARROW).filter((pl.col("split") == "train") & IS_ITEM_EVENT
                                              ).select("user", "position",
                                                       pl.col("item").alias("_ev_item"))
        checked = ex.join(ok, on=["user", "position"], how="left")
        bad = checked.filter(pl.col("_ev_item").is_null()
                             | (pl.col("_ev_item") != pl.col("item"))).drop("_ev_item")
        findings += [_fail(name, "review-derived queries without evidence events", no_ev),
                     _fail(name, "review-derived queries citing events that are not TRAIN-split "
                                 "events of that item", bad)]
    return _first(*findings)


def retrieval_corpus(ds: Dataset) -> Finding | None:
    name = "retrieval_corpus"
    n = ds.items.height
    findings = []
    ids = ds.items["item"]
    if ids.n_unique() != n or (n and (ids.min() != 0 or ids.max() != n - 1)):
        findings.append(Finding(name, f"item ids are not exactly 0..{n - 1}",
                                ds.items.filter(pl.col("item").is_duplicated()
                                                | (pl.col("item") < 0) | (pl.col("item") >= n))))
    out = ~pl.col("item").is_between(0, n - 1)
    for table in ("events", "eval_queries", "queries"):
        frame = getattr(ds, table)
        findings.append(_fail(name, f"{table} rows naming items outside the item table",
                              frame.filter(pl.col("item").is_not_null() & out)))
    recorded = ds.manifest.get("item_table_sha256")
    if recorded is None:
        findings.append(Finding(name, "manifest has no item_table_sha256 (corpus not fixed)",
                                pl.DataFrame()))
    elif recorded != item_table_hash(ds.items):
        findings.append(Finding(name, "item table changed after prepare (sha256 mismatch)",
                                pl.DataFrame({"recorded": [recorded],
                                              "actual": [item_table_hash(ds.items)]})))
    return _first(*findings)


def seeds_recorded(ds: Dataset) -> Finding | None:
    m = ds.manifest
    missing = [] if isinstance(m.get("seed"), int) else ["seed"]
    seeds = m.get("seeds")
    if not isinstance(seeds, dict) or not seeds:
        missing.append("seeds")
    else:
        missing += [f"seeds.{k}" for k, v in seeds.items() if not isinstance(v, int)]
    if missing:
        return Finding("seeds_recorded", f"manifest lacks integer seed(s): {missing}",
                       pl.DataFrame({"missing": missing}))
    return None


CHECKS: dict[str, Callable[[Dataset], Finding | None]] = {
    "temporal_boundary": temporal_boundary,
    "history_target_separation": history_target_separation,
    "pseudo_query_sources": pseudo_query_sources,
    "retrieval_corpus": retrieval_corpus,
    "seeds_recorded": seeds_recorded,
}


def check_all(ds: Dataset) -> dict[str, Finding | None]:
    """Every check's result (None = passed)."""
    return {name: fn(ds) for name, fn in CHECKS.items()}


def check(ds: Dataset) -> list[Finding]:
    """The failed checks (empty list = clean)."""
    return [f for f in check_all(ds).values() if f is not None]


def summary(results: dict[str, Finding | None]) -> dict[str, str]:
    """For the manifest: ``{check: "pass" | "FAIL: message"}``."""
    return {k: "pass" if v is None else f"FAIL: {v.message}" for k, v in results.items()}


def check_semantic_id_sources(ds: Dataset, events_used: pl.DataFrame) -> Finding | None:
    """Hook for the semantic-ID builder (Appendix B, semantic-ID construction check).

    ``events_used``: the events that fed clustering or co-click calibration, with ``user`` and
    ``position`` columns (rows of ``ds.events``). Fails if any of them is not a TRAIN-split
    event, or is not an event of ``ds`` at all. Item *metadata* of cold items may be used
    (OneFeed §4.3); their interactions may not.
    """
    name = "semantic_id_sources"
    missing = [c for c in ("user", "position") if c not in events_used.columns]
    if missing:
        raise ValueError(f"events_used needs columns user, position; missing {missing}")
    used = events_used.select(pl.col("user").cast(pl.Int32), pl.col("position").cast(pl.Int32))
    joined = used.join(ds.events.select("user", "position", "split", "item"),
                       on=["user", "position"], how="left")
    bad = joined.filter(pl.col("split").is_null() | (pl.col("split") != "train"))
    return _fail(name, "events used to build semantic IDs that are not train-split events", bad)
