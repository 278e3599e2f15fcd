import polars as pl

from onefeed.data.schemas import ITEM_SCHEMA
from onefeed.data.weak_queries import (WeakQueryConfig, build_item_queries, eval_queries,
                                       normalize, normalize_series, split_queries)


def item_table(rows):
    frame = pl.DataFrame(rows, schema={"item": pl.Int32, **ITEM_SCHEMA}, orient="row")
    return frame.with_columns(pl.lit("train").alias("first_split"))


def test_normalize_reference_and_parity():
    assert normalize("L&#39;Oreal Paris &amp; The BEST Mascara!!") == "loreal paris best mascara"
    assert normalize("Clean &amp;amp; Clear") == "clean clear"
    texts = ["OPI Red Shatter Crackle Nail Polish E55 New", "Am\u00e9lie (2001)", "  ", None,
             "Toy Story (1995)", "Burt's Bees, 0.15-Ounce", "a the of", "Caf\u00e9 &#9733; star"]
    fast = normalize_series(pl.Series("t", texts, dtype=pl.Utf8)).to_list()
    assert fast == [normalize(t) for t in texts]


def test_queries_from_metadata():
    items = item_table([(0, "i0", "OPI Red Shatter Crackle Nail Polish E55 New", None, "OPI",
                         ["Makeup", "Nails", "Nail Polish"], ["glossy"]),
                        (1, "i1", "Toy Story (1995)", None, None, [], ["Animation", "Comedy"])])
    q = build_item_queries(items, None, WeakQueryConfig())
    got = {(r["item"], r["query"], r["source"]) for r in q.iter_rows(named=True)}
    assert got == {
        (0, "opi red shatter crackle nail polish", "title"),
        (0, "opi red shatter", "title"), (0, "crackle nail polish", "title"),
        (0, "nail polish", "category"), (0, "nails nail polish", "category"),
        (0, "opi", "brand"), (0, "opi nail polish", "brand"),
        (0, "glossy", "tag"),
        (1, "toy story", "title"), (1, "animation", "tag"), (1, "comedy", "tag"),
    }
    assert q.select(["item", "query"]).is_duplicated().sum() == 0
    flat = build_item_queries(items, None, WeakQueryConfig(flat_categories=True))
    cats = set(flat.filter(pl.col("source") == "category")["query"])
    assert cats == {"makeup", "nails", "nail polish"}
    years = build_item_queries(items.with_columns(pl.lit(["1995"]).alias("tags")), None,
                               WeakQueryConfig())
    assert "1995" not in years["query"].to_list()  # numbers alone are not queries
    short = build_item_queries(items, None, WeakQueryConfig(min_tokens=2, max_tokens=3))
    assert all(2 <= len(s.split()) <= 3 for s in short["query"])


def test_review_keywords_only_from_given_events_with_evidence():
    items = item_table([(i, f"i{i}", f"thing {i}", None, None, ["Skin"], []) for i in range(30)])
    reviews = pl.DataFrame({"user": [0, 1, 2, 3], "position": [0, 0, 1, 0], "item": [0, 0, 0, 1],
                            "review": ["silky silky glow", "so silky", "nice glow", "gritty"]},
                           schema_overrides={"user": pl.Int32, "position": pl.Int32,
                                             "item": pl.Int32})
    q = build_item_queries(items, reviews, WeakQueryConfig())
    rev = q.filter(pl.col("source") == "review")
    assert rev["query"].to_list() == ["silky skin", "glow skin"]  # "gritty" occurs once only
    ev = rev.filter(pl.col("query") == "silky skin")["evidence"].to_list()[0]
    assert ev == [{"user": 0, "position": 0}, {"user": 1, "position": 0}]


def test_split_queries_holds_out_and_respects_seen_pairs():
    q = pl.DataFrame({"item": [0, 0, 0, 0, 0, 1, 2, 2],
                      "query": ["a1", "a2", "a3", "a4", "a5", "b1", "c1", "c2"],
                      "source": ["title"] * 8}).with_columns(
        pl.col("item").cast(pl.Int32), pl.lit(None).alias("evidence"))
    cfg = WeakQueryConfig(holdout_frac=0.4)
    s = split_queries(q, cfg, seed=0)
    held = s.filter(pl.col("split") == "test")
    assert held.filter(pl.col("item") == 0).height == 2  # floor(0.4 * 5)
    assert held.filter(pl.col("item") == 1).height == 0  # a lone query trains
    assert held.filter(pl.col("item") == 2).height == 1  # at least one, never all
    assert s.equals(split_queries(q, cfg, seed=0))
    seen = pl.DataFrame({"item": [2], "query": ["c1"]})
    s2 = split_queries(q, cfg, seed=0, train_pairs=seen)
    held2 = s2.filter((pl.col("item") == 2) & (pl.col("split") == "test"))
    assert held2["query"].to_list() == ["c2"]
    seen_all = pl.DataFrame({"item": [2, 2], "query": ["c1", "c2"]})
    s3 = split_queries(q, cfg, seed=0, train_pairs=seen_all)
    assert s3.filter((pl.col("item") == 2) & (pl.col("split") == "test")).height == 0


def test_eval_queries_draw_from_heldout_and_count_skips():
    events = pl.DataFrame({
        "user": [0, 0, 0, 1, 1, 1], "item": [5, 6, 7, 5, 8, 9], "position": [0, 1, 2, 0, 1, 2],
        "behaviour": ["rec_click"] * 6,
        "split": ["train", "valid", "test", "train", "valid", "test"]})
    queries = pl.DataFrame({"item": [6, 6, 7, 8, 9], "query": ["x", "y", "z", "w", "v"],
                            "split": ["test", "test", "test", "train", "test"]})
    out, stats = eval_queries(events, queries, seed=1)
    assert stats["valid"] == {"targets": 2, "with_query": 1, "skipped_no_heldout_query": 1}
    assert stats["test"]["with_query"] == 2
    rows = {(u, s): (i, q) for u, s, i, q in out.iter_rows()}
    assert rows[(0, "valid")][1] in {"x", "y"} and rows[(1, "test")] == (9, "v")
    assert (1, "valid") not in rows


def test_html_entities_in_every_field():
    items = item_table([(0, "i0", "L&#39;Oreal Paris Mascara", None, "Clean &amp; Clear",
                         ["Skin Care", "Creams &amp; Moisturizers"], ["Fresh&#9733;"])])
    q = set(build_item_queries(items, None, WeakQueryConfig())["query"])
    assert {"loreal paris mascara", "clean clear", "creams moisturizers",
            "skin care creams moisturizers", "clean clear creams moisturizers"} <= q
    assert not any("&" in x or "amp" in x.split() for x in q)
