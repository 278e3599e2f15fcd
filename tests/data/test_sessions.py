import polars as pl

from onefeed.data.sessions import make_joint_sessions


def setup():
    n_users, per_user = 20, 6
    rows = []
    for u in range(n_users):
        for p in range(per_user):
            split = "test" if p == per_user - 1 else "valid" if p == per_user - 2 else "train"
            rows.append((u, (u + p) % 7, p, 100 + p, "rec_click", None, 1.0, split))
    ev = pl.DataFrame(rows, schema={"user": pl.Int32, "item": pl.Int32, "position": pl.Int32,
                                    "timestamp": pl.Int64, "behaviour": pl.Utf8, "query": pl.Utf8,
                                    "strength": pl.Float32, "split": pl.Utf8}, orient="row")
    # item 6 has no train query -> never converted
    q = pl.DataFrame({"item": [i for i in range(6) for _ in range(2)] + [6],
                      "query": [f"q{i}{k}" for i in range(6) for k in "ab"] + ["held6"],
                      "split": ["train", "test"] * 6 + ["test"]},
                     schema_overrides={"item": pl.Int32})
    return ev, q


def test_sessions_convert_train_clicks_only():
    ev, q = setup()
    res = make_joint_sessions(ev, q, share=0.5, seed=0)
    out = res.events
    eligible = ev.filter((pl.col("split") == "train") & (pl.col("item") != 6)).height
    assert res.stats["converted"] == round(0.5 * eligible) == out.filter(
        pl.col("behaviour") == "search_query").height
    clicks = out.filter(pl.col("behaviour") == "search_click")
    assert set(clicks["split"]) == {"train"} and 6 not in clicks["item"].to_list()
    train_q = {(i, s) for i, s, sp in q.iter_rows() if sp == "train"}
    assert all((i, s) in train_q for i, s in clicks.select("item", "query").iter_rows())
    # each search_query is immediately followed by its click with the same query and timestamp
    nxt = out.with_columns(pl.col("behaviour").shift(-1).over("user").alias("nb"),
                           pl.col("query").shift(-1).over("user").alias("nq"),
                           pl.col("timestamp").shift(-1).over("user").alias("nt"))
    sq = nxt.filter(pl.col("behaviour") == "search_query")
    assert (sq["nb"] == "search_click").all() and (sq["nq"] == sq["query"]).all()
    assert (sq["nt"] == sq["timestamp"]).all() and sq["item"].null_count() == sq.height
    # valid/test rows unchanged; positions contiguous
    held = lambda f: f.filter(pl.col("split") != "train").drop("position")  # noqa: E731
    assert held(out).equals(held(ev))
    per_user = out.group_by("user").agg(pl.col("position"))
    assert all(p.to_list() == list(range(len(p))) for p in per_user["position"])
    # position_map sends every old event to its new row
    joined = res.position_map.join(out, on=["user", "position"])
    back = ev.join(joined.select("user", pl.col("old_position").alias("position"),
                                 pl.col("item").alias("item2")), on=["user", "position"])
    assert back.height == ev.height and (back["item"] == back["item2"]).all()


def test_sessions_share_zero_and_seed():
    ev, q = setup()
    assert make_joint_sessions(ev, q, 0.0, 0).events.equals(ev)
    a = make_joint_sessions(ev, q, 0.3, 7).events
    assert a.equals(make_joint_sessions(ev, q, 0.3, 7).events)
    assert not a.equals(make_joint_sessions(ev, q, 0.3, 8).events)
