"""Plant each kind of leak in a clean prepared dataset and see the right check catch it."""

import dataclasses

import polars as pl
import pytest

from onefeed.data import leakage
from onefeed.data.prepare import PrepareConfig, prepare


def _prepare(raw, **kw):
    return prepare(PrepareConfig(name="toy", k_core=2, **kw), raw)


@pytest.fixture
def loo(toy_raw):
    return _prepare(toy_raw)


@pytest.fixture
def tmp_ds(toy_raw):
    return _prepare(toy_raw, protocol="temporal")


def failed(ds):
    return {f.check for f in leakage.check(ds)}


def replace(ds, **frames):
    return dataclasses.replace(ds, **frames)


def test_clean_datasets_pass(loo, tmp_ds):
    assert leakage.check(loo) == [] and leakage.check(tmp_ds) == []
    assert set(loo.manifest["leakage"].values()) == {"pass"}
    assert loo.queries.filter(pl.col("source") == "review").height > 0  # the review path ran


def test_temporal_boundary_leaks(loo, tmp_ds):
    # leave-one-out: a user's test event relabelled train sits after their valid event
    ev = loo.events.with_columns(
        pl.when((pl.col("user") == 0) & (pl.col("split") == "test")).then(pl.lit("train"))
        .otherwise(pl.col("split")).alias("split"))
    found = leakage.check(replace(loo, events=ev))
    assert "temporal_boundary" in {f.check for f in found}
    rows = [f for f in found if f.check == "temporal_boundary"][0].rows
    assert set(rows["user"]) == {0}
    # temporal: a train event moved past the test boundary
    b = tmp_ds.manifest["split"]["boundaries"]["test_start"]
    first_train = pl.int_range(pl.len()) == tmp_ds.events.with_row_index().filter(
        pl.col("split") == "train")["index"][0]
    ev = tmp_ds.events.with_columns(pl.when(first_train).then(b + 1).otherwise(pl.col("timestamp"))
                                    .alias("timestamp"))
    assert "temporal_boundary" in failed(replace(tmp_ds, events=ev))


def test_history_target_leak(loo):
    target = loo.events.filter((pl.col("user") == 1) & (pl.col("split") == "test"))
    copy = target.with_columns(pl.lit("train").alias("split"), pl.lit(0, dtype=pl.Int32)
                               .alias("position"))
    ev = pl.concat([copy, loo.events.with_columns(
        pl.when(pl.col("user") == 1).then(pl.col("position") + 1).otherwise(pl.col("position"))
        .alias("position"))]).sort(["user", "position"])
    found = {f.check: f for f in leakage.check(replace(loo, events=ev))}
    assert "history_target_separation" in found
    assert found["history_target_separation"].rows["user"].to_list() == [1]
    # an eval query that is not the user's held-out target
    evq = loo.eval_queries.with_columns(
        pl.when(pl.int_range(pl.len()) == 0).then((pl.col("item") + 1) % loo.n_items)
        .otherwise(pl.col("item")).alias("item"))
    assert "history_target_separation" in failed(replace(loo, eval_queries=evq))


def test_pseudo_query_leaks(loo):
    eq = loo.eval_queries.head(1)
    # 1) the eval pair shows up as a train weak query
    q = pl.concat([loo.queries, loo.queries.head(1).with_columns(
        pl.lit(eq["item"][0], dtype=pl.Int32).alias("item"), pl.lit(eq["query"][0]).alias("query"),
        pl.lit("train").alias("split"))])
    assert "pseudo_query_sources" in failed(replace(loo, queries=q))
    # 2) the eval pair shows up as a train search click (upper-cased: normalised before compare)
    ev = loo.events.with_columns(
        pl.when((pl.col("split") == "train") & (pl.col("user") == 0) & (pl.col("position") == 0))
        .then(pl.lit("search_click")).otherwise(pl.col("behaviour")).alias("behaviour"),
        pl.when((pl.col("split") == "train") & (pl.col("user") == 0) & (pl.col("position") == 0))
        .then(pl.lit(eq["query"][0].upper())).otherwise(pl.col("query")).alias("query"),
        pl.when((pl.col("split") == "train") & (pl.col("user") == 0) & (pl.col("position") == 0))
        .then(pl.lit(eq["item"][0], dtype=pl.Int32)).otherwise(pl.col("item")).alias("item"))
    found = {f.check: f for f in leakage.check(replace(loo, events=ev))}
    assert "pseudo_query_sources" in found
    # 3) an eval query that is not a held-out query of its item
    evq = loo.eval_queries.with_columns(pl.lit("made up words").alias("query"))
    assert "pseudo_query_sources" in failed(replace(loo, eval_queries=evq))
    # 4) a review-derived query citing a test event
    test_ev = loo.events.filter(pl.col("split") == "test").row(0, named=True)
    rev = loo.queries.filter(pl.col("source") == "review").head(1).with_columns(
        pl.lit(test_ev["item"], dtype=pl.Int32).alias("item"),
        pl.lit([{"user": test_ev["user"], "position": test_ev["position"]}]).cast(
            loo.queries.schema["evidence"]).alias("evidence"))
    found = {f.check: f for f in leakage.check(replace(loo, queries=pl.concat([loo.queries, rev])))}
    assert "not TRAIN-split" in found["pseudo_query_sources"].message


def test_retrieval_corpus_and_seed_leaks(loo):
    evq = loo.eval_queries.with_columns(pl.lit(loo.n_items + 5, dtype=pl.Int32).alias("item"))
    assert "retrieval_corpus" in failed(replace(loo, eval_queries=evq))
    items = loo.items.with_columns(pl.lit("changed").alias("title"))
    found = {f.check: f for f in leakage.check(replace(loo, items=items))}
    assert "sha256 mismatch" in found["retrieval_corpus"].message
    manifest = {k: v for k, v in loo.manifest.items() if k != "seeds"}
    assert failed(replace(loo, manifest=manifest)) == {"seeds_recorded"}


def test_semantic_id_hook(loo):
    train = loo.events.filter(pl.col("split") == "train").select("user", "position")
    assert leakage.check_semantic_id_sources(loo, train) is None
    used = loo.events.filter(pl.col("split") != "rubbish").select("user", "position")
    finding = leakage.check_semantic_id_sources(loo, used)
    assert finding is not None and set(finding.rows["split"]) == {"valid", "test"}
