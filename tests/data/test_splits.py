import polars as pl
import pytest

from onefeed.data.schemas import DataError
from onefeed.data.splits import item_first_split, leave_one_out, temporal


def events(rows):
    """rows: (user, item|None, timestamp, behaviour) in chronological order per user."""
    frame = pl.DataFrame(rows, schema={"user": pl.Int32, "item": pl.Int32, "timestamp": pl.Int64,
                                       "behaviour": pl.Utf8}, orient="row")
    return frame.with_columns(pl.int_range(pl.len(), dtype=pl.Int32).over("user").alias("position"))


def test_leave_one_out_hand_case():
    ev = events([
        (0, 1, 1, "rec_click"), (0, 2, 2, "rec_click"), (0, None, 3, "search_query"),
        (0, 3, 4, "search_click"), (0, 4, 5, "rec_click"), (0, None, 6, "search_query"),
        (1, 5, 1, "rec_click"), (1, 6, 2, "rec_click"),  # too short
        (2, 7, 1, "rec_click"), (2, 8, 2, "rec_click"), (2, 9, 3, "rec_click"),
    ])
    out = leave_one_out(ev)
    assert out.events.filter(pl.col("user") == 0)["split"].to_list() == [
        "train", "train", "valid", "valid", "test", "test"]  # a query joins the click it leads to
    assert out.events.filter(pl.col("user") == 2)["split"].to_list() == ["train", "valid", "test"]
    assert 1 not in out.events["user"].to_list()
    assert out.info["short_users"] == 1 and out.info["short_users_policy"] == "dropped"

    with pytest.raises(ValueError, match="grouped by user"):
        leave_one_out(ev.sample(fraction=1.0, shuffle=True, seed=1))
    kept = leave_one_out(ev, drop_short_users=False)
    assert kept.events.filter(pl.col("user") == 1)["split"].to_list() == ["train", "train"]
    assert kept.info["short_users_policy"] == "kept train-only"


def test_temporal_boundaries_and_cold_items():
    ev = events([(0, 1, 10, "rec_click"), (0, 2, 20, "rec_click"), (0, 3, 30, "rec_click"),
                 (1, 1, 15, "rec_click"), (1, 4, 25, "rec_click"), (1, 5, 35, "rec_click"),
                 (2, 6, 31, "rec_click")])
    out = temporal(ev, boundaries=[20, 30])
    assert out.events["split"].to_list() == ["train", "valid", "test", "train", "valid", "test",
                                             "test"]
    assert out.info["boundaries"]["valid_start"] == 20
    first = dict(item_first_split(out.events).iter_rows())
    assert first == {1: "train", 2: "valid", 3: "test", 4: "valid", 5: "test", 6: "test"}
    assert out.info["cold_items"] == {"valid": 2, "test": 3}
    assert out.info["users_without_train_history"] == 1

    q = temporal(ev, valid_frac=0.2, test_frac=0.2)
    b = q.info["boundaries"]
    assert b["valid_start"] <= b["test_start"]
    n_test = q.events.filter(pl.col("split") == "test").height
    assert 1 <= n_test <= 3


def test_temporal_needs_timestamps():
    ev = events([(0, 1, None, "rec_click"), (0, 2, None, "rec_click")])
    with pytest.raises(DataError, match="needs timestamps.*leave_one_out"):
        temporal(ev)
    with pytest.raises(ValueError, match="valid_frac"):
        temporal(events([(0, 1, 1, "rec_click")]), valid_frac=0.6, test_frac=0.5)
