"""The built-in synthetic world: determinism and the invariants of its generative story."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from onefeed.data.datasets import load_raw
from onefeed.data.schemas import BEHAVIOURS, ITEM_SCHEMA, RAW_EVENT_SCHEMA
from onefeed.data.synthetic import SyntheticConfig, generate

SMALL = SyntheticConfig(n_users=300, n_items=600, events_per_user=30, seed=7)


@pytest.fixture(scope="module")
def world_raw():
    return generate(SMALL)


def test_same_seed_same_output_different_seed_differs():
    a = load_raw("synthetic", n_users=50, n_items=100, seed=3)
    b = load_raw("synthetic", n_users=50, n_items=100, seed=3)
    c = load_raw("synthetic", n_users=50, n_items=100, seed=4)
    assert a.events.equals(b.events) and a.items.equals(b.items)
    assert not a.events.equals(c.events)
    assert not a.items.equals(c.items)


def test_schema_and_behaviours(world_raw):
    _, raw = world_raw
    ev = raw.events
    assert ev.schema == pl.Schema(RAW_EVENT_SCHEMA)
    assert raw.items.schema == pl.Schema(ITEM_SCHEMA)
    assert set(ev["behaviour"].unique()) == set(BEHAVIOURS)
    queries = ev.filter(pl.col("behaviour") == "search_query")
    assert queries["item_id"].null_count() == queries.height
    assert (queries["query"].str.len_chars() > 0).all()
    clicks = ev.filter(pl.col("behaviour") != "search_query")
    assert clicks["item_id"].null_count() == 0 and clicks["query"].null_count() == clicks.height
    assert set(clicks["item_id"].unique()) <= set(raw.items["item_id"])
    share = queries.height / clicks.height
    assert 0.10 < share < 0.20  # search_rate = 0.15
    assert clicks["strength"].is_between(1, 5).all()
    assert raw.source["name"] == "synthetic" and raw.source["has_timestamps"]


def test_time_and_order_increase_within_user(world_raw):
    ev = world_raw[1].events
    steps = ev.select(
        (pl.col("timestamp").diff().over("user_id") > 0).fill_null(True).alias("t"),
        (pl.col("order").diff().over("user_id") == 1).fill_null(True).alias("o"),
        (pl.col("user_id") != pl.col("user_id").shift(1)).fill_null(True).alias("new"))
    assert steps["t"].all() and steps["o"].all()
    assert steps["new"].sum() == ev["user_id"].n_unique()  # rows grouped by user


def test_every_search_click_follows_its_query(world_raw):
    ev = world_raw[1].events
    prev = ev.select(pl.col("behaviour"), pl.col("behaviour").shift(1).alias("prev"),
                     pl.col("user_id") == pl.col("user_id").shift(1))
    sc = prev.filter(pl.col("behaviour") == "search_click")
    assert (sc["prev"] == "search_query").all() and sc["user_id"].all()
    sq = prev.filter(pl.col("prev") == "search_query")
    assert (sq["behaviour"] == "search_click").all()


def test_query_words_come_from_clicked_items_topic(world_raw):
    world, raw = world_raw
    ev = raw.events
    word_topic = dict(zip(world.vocab.tolist(), world.word_topic.tolist()))
    is_q = ev["behaviour"] == "search_query"
    q_rows = np.flatnonzero(is_q.to_numpy())
    clicked = ev["item_id"].gather(q_rows + 1).str.slice(1).cast(pl.Int64).to_numpy()
    topics = world.item_topic[clicked]
    hits = total = 0
    for query, topic in zip(ev["query"].gather(q_rows).to_list(), topics.tolist()):
        for w in query.split():
            hits += word_topic[w] == topic
            total += 1
    assert hits / total > 0.75
    # ... and a noise-free world puts nearly all query words in the topic
    w2, r2 = generate(SyntheticConfig(n_users=50, n_items=200, query_noise=0.0, seed=1))
    q = r2.events.filter(pl.col("behaviour") == "search_query")["query"].to_list()
    assert all(w in set(w2.vocab.tolist()) for s in q for w in s.split())


def test_popularity_is_skewed(world_raw):
    world, raw = world_raw
    clicks = raw.events.filter(pl.col("behaviour") != "search_query")
    counts = np.sort(clicks.group_by("item_id").len()["len"].to_numpy())[::-1]
    counts = np.concatenate([counts, np.zeros(world.config.n_items - len(counts))])
    top = counts[: world.config.n_items // 10].sum() / counts.sum()
    assert top > 0.30


def test_item_text_comes_from_its_topic(world_raw):
    world, raw = world_raw
    word_topic = dict(zip(world.vocab.tolist(), world.word_topic.tolist()))
    topics = world.item_topic
    in_topic = total = 0
    for i, title in enumerate(raw.items["title"].to_list()):
        for w in title.split()[1:]:  # first word is the brand
            in_topic += word_topic[w] == topics[i]
            total += 1
    assert in_topic / total > 0.8
    cats = raw.items["categories"].to_list()
    assert all(len(c) == 2 for c in cats)
    assert len({c[0] for c in cats}) == SMALL.n_topics
    assert len({tuple(c) for c in cats}) == SMALL.n_topics * SMALL.n_subtopics


def test_interests_drift(world_raw):
    world = world_raw[0]
    changed = (world.user_interests[:, 0] != world.user_interests[:, -1]).any(1).mean()
    assert 0.2 < changed < 1.0


def test_bad_config_is_rejected():
    from onefeed.config import ConfigError

    with pytest.raises(ConfigError, match="n_items must be >= n_topics"):
        load_raw("synthetic", n_items=10)
    with pytest.raises(ConfigError, match="search_rate"):
        load_raw("synthetic", search_rate=1.5)
    with pytest.raises(ConfigError, match="n_users"):
        load_raw("synthetic", n_users="many")


def test_tiny_dataset_is_a_valid_leave_one_out_world():
    from onefeed.data.synthetic import tiny_dataset

    ds = tiny_dataset(30, 12, seed=3)
    ev = ds.events
    last = ev.group_by("user").agg(pl.col("split").sort_by("position").tail(2))
    assert all(s.to_list() == ["valid", "test"] for s in last["split"])
    # users walk the catalogue in item order
    seq = ev.filter(pl.col("user") == 0).sort("position")["item"].to_list()
    assert all((b - a) % 12 == 1 for a, b in zip(seq, seq[1:]))
    assert ds.items.height == 12 and ds.items["item_id"][5] == "i5"
    assert ds.eval_queries.height == 2 * 30  # one valid + one test query per user
    assert tiny_dataset(30, 12, seed=3).events.equals(ev)  # seeded
