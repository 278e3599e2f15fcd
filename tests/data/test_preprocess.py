import numpy as np
import polars as pl
import pytest

from onefeed.data.preprocess import (chronological, conform_raw_events, drop_duplicates, k_core,
                                     keep_first_per_user_item, remap_ids, validate)
from onefeed.data.schemas import ITEM_SCHEMA, RAW_EVENT_SCHEMA, DataError, RawData


def raw_events(rows):
    cols = ["user_id", "item_id", "timestamp", "order", "behaviour", "query"]
    frame = pl.DataFrame([dict(zip(cols, r)) for r in rows],
                         schema={c: RAW_EVENT_SCHEMA[c] for c in cols})
    return conform_raw_events(frame, "test")


def items(ids):
    return pl.DataFrame({"item_id": ids, "title": [f"t {i}" for i in ids]}).pipe(
        lambda f: f.with_columns(*[pl.lit(None, dtype=t).alias(c) for c, t in ITEM_SCHEMA.items()
                                   if c not in f.columns]).select(list(ITEM_SCHEMA)))


def test_validate_reports_and_rejects():
    ev = raw_events([("a", "x", 1, 0, "rec_click", None), ("a", "y", 2, 1, "rec_click", None),
                     ("b", "x", 3, 0, "rec_click", None)])
    rep = validate(RawData(ev, items(["x", "y"])))
    assert rep.single_event_users == 1 and rep.single_event_examples == ["b"]
    assert rep.has_timestamps and rep.events_by_behaviour == {"rec_click": 3}

    bad = ev.with_columns(pl.when(pl.int_range(pl.len()) == 2).then(pl.lit("click"))
                          .otherwise(pl.col("behaviour")).alias("behaviour"))
    with pytest.raises(DataError, match=r"row 2, column 'behaviour'.*'click'"):
        validate(RawData(bad, items(["x", "y"])))
    no_item = ev.with_columns(pl.when(pl.int_range(pl.len()) == 1).then(None)
                              .otherwise(pl.col("item_id")).alias("item_id"))
    with pytest.raises(DataError, match=r"row 1, column 'item_id' is null"):
        validate(RawData(no_item, items(["x", "y"])))
    with pytest.raises(DataError, match=r"duplicate id 'x'"):
        validate(RawData(ev, items(["x", "y", "x"])))
    with pytest.raises(DataError, match="empty"):
        validate(RawData(ev.head(0), items(["x"])))
    q = raw_events([("a", None, 1, 0, "search_query", " ")])
    with pytest.raises(DataError, match=r"row 0, column 'query'"):
        validate(RawData(q, items(["x"])))


def test_drop_duplicates_needs_a_timestamp():
    ev = raw_events([("a", "x", 1, 0, "rec_click", None), ("a", "x", 1, 1, "rec_click", None),
                     ("a", "x", 2, 2, "rec_click", None), ("b", "x", None, 0, "rec_click", None),
                     ("b", "x", None, 1, "rec_click", None)])
    out = drop_duplicates(ev)
    assert out["order"].to_list() == [0, 2, 0, 1]


def test_one_interaction_under_two_behaviours_at_one_time_is_one_event():
    # a view and a search click of x at t=1 are one interaction: its first row stays; a view of
    # x at another time, a view of y at t=1, the search query and untimed rows all stay
    ev = raw_events([("a", "x", 1, 0, "rec_click", None), ("a", None, 1, 1, "search_query", "q"),
                     ("a", "x", 1, 2, "search_click", "q"), ("a", "y", 1, 3, "rec_click", None),
                     ("a", "x", 2, 4, "rec_click", None), ("a", "x", 2, 5, "rec_click", None),
                     ("b", "x", None, 0, "rec_click", None),
                     ("b", "x", None, 1, "search_click", "q")])
    out = drop_duplicates(ev)
    assert out["order"].to_list() == [0, 1, 3, 4, 0, 1]
    assert out["behaviour"].to_list()[:2] == ["rec_click", "search_query"]


def test_chronological_orders_by_time_then_order_and_keeps_user_order():
    ev = raw_events([("b", "x", 5, 0, "rec_click", None), ("a", "y", 9, 0, "rec_click", None),
                     ("b", "y", 1, 1, "rec_click", None), ("a", "z", 9, 1, "rec_click", None),
                     ("c", "x", None, 1, "rec_click", None),
                     ("c", "y", None, 0, "rec_click", None)])
    out = chronological(ev)
    assert out["user"].to_list() == ["b", "b", "a", "a", "c", "c"]
    assert out["item"].to_list() == ["y", "x", "y", "z", "y", "x"]
    assert out["position"].to_list() == [0, 1, 0, 1, 0, 1]


def test_keep_first_per_user_item():
    ev = chronological(raw_events([("a", "x", 1, 0, "rec_click", None),
                                   ("a", None, 2, 1, "search_query", "q"),
                                   ("a", "x", 3, 2, "search_click", "q"),
                                   ("a", "y", 4, 3, "rec_click", None)]))
    out = keep_first_per_user_item(ev)
    assert out["behaviour"].to_list() == ["rec_click", "rec_click"]  # the query went with its click
    assert out["position"].to_list() == [0, 1]


def k_core_reference(pairs, k):
    """Plain-Python iterative k-core on (user, item) interaction lists."""
    pairs = list(pairs)
    while True:
        uc, ic = {}, {}
        for u, i in pairs:
            uc[u] = uc.get(u, 0) + 1
            ic[i] = ic.get(i, 0) + 1
        kept = [(u, i) for u, i in pairs if uc[u] >= k and ic[i] >= k]
        if len(kept) == len(pairs):
            return kept
        pairs = kept


def test_k_core_cascades_like_the_reference():
    # u3 has 1 event -> dropped; then item z falls to 1 -> dropped; then u2 falls to 1.
    rows = [("u1", "x"), ("u1", "y"), ("u2", "x"), ("u2", "z"), ("u3", "z"),
            ("u4", "x"), ("u4", "y")]
    ev = chronological(raw_events([(u, i, t, t, "rec_click", None)
                                   for t, (u, i) in enumerate(rows)]))
    out, rounds = k_core(ev, 2)
    assert len(rounds) == 4
    got = list(zip(out["user"].to_list(), out["item"].to_list()))
    assert got == k_core_reference(rows, 2) == [("u1", "x"), ("u1", "y"), ("u4", "x"), ("u4", "y")]
    assert k_core(ev, 0)[0].equals(ev)

    rng = np.random.default_rng(3)
    rows = [(f"u{rng.integers(40)}", f"i{int(rng.zipf(1.6)) % 60}") for _ in range(600)]
    ev = chronological(raw_events([(u, i, t, t, "rec_click", None)
                                   for t, (u, i) in enumerate(rows)]))
    out, _ = k_core(ev, 4)
    got = sorted(zip(out["user"].to_list(), out["item"].to_list()))
    assert got == sorted(k_core_reference(rows, 4))
    per_user = out.group_by("user").agg(pl.col("position").sort())
    assert all(p.to_list() == list(range(len(p))) for p in per_user["position"])


def test_remap_ids_first_appearance_and_metadata():
    ev = chronological(raw_events([("b", "y", 1, 0, "rec_click", None),
                                   ("b", None, 2, 1, "search_query", "q"),
                                   ("b", "new", 3, 2, "search_click", "q"),
                                   ("a", "x", 1, 0, "rec_click", None),
                                   ("a", "y", 2, 1, "rec_click", None)]))
    r = remap_ids(ev, items(["x", "y", "unused"]))
    assert r.users.rows() == [(0, "b"), (1, "a")]
    assert r.items["item_id"].to_list() == ["y", "new", "x"]
    assert r.items["item"].to_list() == [0, 1, 2]
    assert r.events["item"].to_list() == [0, None, 1, 2, 0]
    assert r.items_without_metadata == 1 and r.metadata_items_without_events == 1
    assert r.items.filter(pl.col("item_id") == "new")["title"].to_list() == [None]


def test_k_core_drops_queries_whose_click_was_filtered():
    rows = [("a", "x", 1, 0, "rec_click", None), ("a", None, 2, 1, "search_query", "q1"),
            ("a", "rare", 3, 2, "search_click", "q1"), ("a", None, 4, 3, "search_query", "q2"),
            ("a", "y", 5, 4, "search_click", "q2"), ("a", None, 6, 5, "search_query", "lone"),
            ("b", "x", 1, 0, "rec_click", None), ("b", "y", 2, 1, "rec_click", None)]
    out, _ = k_core(chronological(raw_events(rows)), 2)
    assert out.filter(pl.col("user") == "a")["query"].to_list() == [None, "q2", "q2", "lone"]
    assert out["position"].to_list() == [0, 1, 2, 3, 0, 1]


def test_drop_duplicates_matches_the_struct_definition_on_random_repeats():
    """drop_duplicates (hash candidates, then an exact compare) == the plain definition."""
    rng = np.random.default_rng(5)
    n = 3000
    ev = pl.DataFrame({
        "user_id": [f"u{x}" for x in rng.integers(0, 20, n)],
        "item_id": [None if x == 0 else f"i{x}" for x in rng.integers(0, 6, n)],
        "behaviour": rng.choice(["rec_click", "search_query", "search_click"], n).tolist(),
        "query": [None if x else "q" for x in rng.integers(0, 2, n)],
        "timestamp": [None if x == 0 else int(x) for x in rng.integers(0, 8, n)]})
    key = pl.struct(["user_id", "item_id", "behaviour", "query", "timestamp"])
    want = ev.filter(pl.col("timestamp").is_null() | key.is_first_distinct())
    timed_item = pl.col("timestamp").is_not_null() & pl.col("item_id").is_not_null() & \
        pl.col("behaviour").is_in(["rec_click", "search_click"])
    want = want.filter(~timed_item
                       | pl.struct(["user_id", "item_id", "timestamp"]).is_first_distinct())
    got = drop_duplicates(ev)
    assert 0 < got.height < n and got.equals(want)


def test_take_rows_is_filter_and_empties_its_input():
    from onefeed.data.preprocess import take_rows

    df = pl.DataFrame({"a": [1, 2, 3, 4], "b": ["w", "x", "y", None]})
    want = df.filter(pl.Series([True, False, True, True]))
    frame = df.clone()
    got = take_rows(frame, pl.Series([True, False, True, True]))
    assert got.equals(want) and frame.width == 0
