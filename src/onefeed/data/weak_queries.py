"""Weak (pseudo) queries per item and the held-out search-evaluation queries (OneFeed §4.2).

Public recommendation logs have no search queries, so we build them from item text:

* ``title``    — the title without noise (numbers, sizes, model codes), and its n-gram chunks;
* ``category`` — the leaf of the category path, and parent + leaf;
* ``brand``    — the brand, and brand + leaf category;
* ``tag``      — each tag/genre;
* ``keyword``  — frequent descriptive words of the item description (+ leaf category);
* ``review``   — the same from review text of TRAIN-split events only (OneFeed §4.10 rule 2),
  with the contributing events kept as ``evidence`` so leakage.py can check them.

Every query is normalised (lowercase, HTML unescaped, punctuation stripped, stop words
removed), length-filtered and de-duplicated per item. Each item's queries are then split,
seeded, into ``train`` and held-out ``test`` queries, and every valid/test recommendation
target gets an evaluation query drawn from its item's held-out queries — so no (query, item)
pair used in evaluation is seen in training. The same query *text* may still be a train query
of another item (a brand query, say); the guarantee is about (query, item) pairs.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import polars as pl

from onefeed.data.preprocess import IS_ITEM_EVENT

STOP_WORDS: frozenset[str] = frozenset("""
a about above after again against all am an and any are as at be because been before being
below between both but by can could did do does doing down during each few for from further
had has have having he her here hers herself him himself his how i if in into is it its itself
just me more most my myself no nor not now of off on once only or other our ours ourselves out
over own same she should so some such than that the their theirs them themselves then there
these they this those through to too under until up very was we were what when where which
while who whom why will with would you your yours yourself yourselves s t d ll m re ve x w
also get got one use used using will well really much many even still yet however
""".split())

# Title tokens that describe the package rather than the item: removed from title queries.
TITLE_NOISE: frozenset[str] = frozenset("""
new oz ounce ounces fl ml l g kg mg lb lbs pound pounds count ct pack packs pk pcs pc piece
pieces set size inch inches cm mm value bonus gift travel item
""".split())

# Numbers, sizes and model codes ("1995", "14oz", "100ml", "e55"): removed from title queries.
NOISE_TOKEN = r"^(\d+|\d+[a-z]{1,3}|[a-z]\d+)$"

# Brand values that carry no information.
NO_BRAND: frozenset[str] = frozenset({"", "unknown", "generic", "none", "n a", "na"})

APOSTROPHES = "['\u2019]"  # dropped, not split on: "L'Oreal" -> "loreal", "Burt's" -> "burts"

SOURCES: tuple[str, ...] = ("title", "category", "brand", "tag", "keyword", "review")

EVIDENCE_DTYPE = pl.List(pl.Struct({"user": pl.Int32, "position": pl.Int32}))


@dataclass
class WeakQueryConfig:
    RANGES: ClassVar[dict[str, str]] = {"min_tokens": ">= 1", "max_tokens": ">= 1",
        "min_chars": ">= 0", "title_chunk": ">= 1", "max_title_chunks": ">= 0",
        "keywords_per_item": ">= 0", "keyword_min_count": ">= 1", "keyword_max_df": "(0, 1]",
        "holdout_frac": "[0, 1)"}
    sources: list[str] = field(default_factory=lambda: list(SOURCES))
    min_tokens: int = 1
    max_tokens: int = 8
    min_chars: int = 3
    flat_categories: bool = False  # categories are labels (movie genres), not a coarse->fine path
    title_chunk: int = 3  # n-gram chunk length for title chunks
    max_title_chunks: int = 3
    keywords_per_item: int = 3  # top descriptive words per item (description, reviews)
    keyword_min_count: int = 2  # a word must occur this often in the item's text
    keyword_max_df: float = 0.05  # ... and in at most this share of items (not generic)
    holdout_frac: float = 0.2  # share of an item's queries held out (>= 1 when it has >= 2)

    def __post_init__(self) -> None:
        unknown = sorted(set(self.sources) - set(SOURCES))
        if unknown:
            raise ValueError(f"weak query sources {unknown} unknown; known: {list(SOURCES)}")
        if not 0 <= self.holdout_frac < 1:
            raise ValueError(f"holdout_frac must be in [0, 1), got {self.holdout_frac}")

    def check(self) -> None:
        if self.min_tokens > self.max_tokens:
            raise ValueError(f"min_tokens = {self.min_tokens} > max_tokens = {self.max_tokens}")


# ---------------------------------------------------------------- normalisation


def normalize(text: str | None) -> str:
    """Reference normaliser: unescape, lowercase, keep letters/digits, drop stop words."""
    if text is None:
        return ""
    text = re.sub(APOSTROPHES, "", html.unescape(html.unescape(text)).lower())
    tokens = re.sub(r"[^\w]+|_", " ", text).split()
    return " ".join(t for t in tokens if t not in STOP_WORDS)


def _unescape(col: pl.Series) -> pl.Series:
    """html.unescape on the distinct values that contain '&' (entities are rare)."""
    values = col.filter(col.str.contains("&", literal=True)).unique().to_list()
    if not values:
        return col
    mapping = {v: html.unescape(html.unescape(v)) for v in values}
    return col.replace(mapping)


def _tokens(expr: pl.Expr) -> pl.Expr:
    """Lowercased word tokens of an (already unescaped) string column, stop words removed."""
    split = (expr.str.to_lowercase().str.replace_all(APOSTROPHES, "")
             .str.replace_all(r"[^\p{L}\p{N}]+", " ").str.strip_chars())
    return split.str.split(" ").list.eval(
        pl.element().filter((pl.element() != "") & ~pl.element().is_in(list(STOP_WORDS))))


def normalize_series(col: pl.Series) -> pl.Series:
    """Vectorised ``normalize`` (same result; tested for parity). Work is per distinct value."""
    name = col.name
    col = col.cast(pl.Utf8).fill_null("")
    uniq = col.unique()
    clean = _unescape(uniq)
    norm = pl.select(_tokens(pl.lit(clean)).list.join(" ").fill_null("")).to_series()
    return col.replace_strict(uniq, norm, return_dtype=pl.Utf8).rename(name)


# ---------------------------------------------------------------- candidate queries


def _text_frame(items: pl.DataFrame) -> pl.DataFrame:
    """item, title/brand/description unescaped; categories/tags lists unescaped."""
    out = items.select("item", "title", "brand", "description", "categories", "tags")
    for name in ("title", "brand", "description"):
        out = out.with_columns(_unescape(out[name].cast(pl.Utf8)).alias(name))
    for name in ("categories", "tags"):
        values = (out.select(pl.col(name).list.explode(keep_nulls=False, empty_as_null=False))
                  [name].drop_nulls().cast(pl.Utf8).unique())
        fixed = _unescape(values)
        changed = values != fixed
        if changed.any():
            mapping = dict(zip(values.filter(changed).to_list(), fixed.filter(changed).to_list()))
            out = out.with_columns(pl.col(name).list.eval(pl.element().replace(mapping)))
    return out


def _title_queries(t: pl.DataFrame, cfg: WeakQueryConfig) -> list[pl.DataFrame]:
    toks = _tokens(pl.col("title")).list.eval(
        pl.element().filter(~pl.element().str.contains(NOISE_TOKEN)
                            & ~pl.element().is_in(list(TITLE_NOISE))))
    base = t.select("item", toks.alias("tok"))
    head = pl.col("tok").list.head(cfg.max_tokens).list.join(" ")
    out = [base.select("item", head.alias("query"))]
    if cfg.title_chunk > 0:
        for j in range(cfg.max_title_chunks):
            chunk = pl.col("tok").list.slice(j * cfg.title_chunk, cfg.title_chunk)
            out.append(base.filter(pl.col("tok").list.len() > cfg.title_chunk)
                       .filter(chunk.list.len() >= 2)  # a lone trailing word is no query
                       .select("item", chunk.list.join(" ").alias("query")))
    return [f.with_columns(pl.lit("title").alias("source")) for f in out]


def _leaf_exprs() -> tuple[pl.Expr, pl.Expr]:
    cats = pl.col("categories").list.eval(_tokens(pl.element()).list.join(" "))
    cats = cats.list.eval(pl.element().filter(pl.element() != ""))
    leaf = cats.list.last()
    parent = cats.list.get(-2, null_on_oob=True)
    # "fluids lotions" + "lotions" would repeat the leaf: then parent + leaf is just the parent.
    parent_leaf = pl.when((cats.list.len() >= 2) & ~parent.str.ends_with(leaf)).then(
        pl.concat_str([parent, leaf], separator=" "))
    return leaf, parent_leaf


def _category_queries(t: pl.DataFrame, flat: bool) -> list[pl.DataFrame]:
    """Leaf and parent + leaf of the path; every label when the categories are ``flat``."""
    if flat:
        labels = pl.col("categories").list.eval(_tokens(pl.element()).list.join(" "))
        cats = t.select("item", labels)
        return [cats.explode("categories").select("item", pl.col("categories").alias("query"))]
    leaf, parent_leaf = _leaf_exprs()
    return [t.select("item", leaf.alias("query")), t.select("item", parent_leaf.alias("query"))]


def _brand_queries(t: pl.DataFrame) -> list[pl.DataFrame]:
    leaf, _ = _leaf_exprs()
    brand = _tokens(pl.col("brand")).list.join(" ")
    b = t.select("item", brand.alias("brand"), leaf.alias("leaf")).filter(
        pl.col("brand").is_not_null() & ~pl.col("brand").is_in(list(NO_BRAND)))
    return [b.select("item", pl.col("brand").alias("query")),
            b.select("item", pl.concat_str(["brand", "leaf"], separator=" ").alias("query"))]


def _tag_queries(t: pl.DataFrame) -> list[pl.DataFrame]:
    tags = t.select("item", pl.col("tags").list.eval(_tokens(pl.element()).list.join(" ")))
    return [tags.explode("tags").select("item", pl.col("tags").alias("query"))]


def _word_counts(texts: pl.DataFrame) -> pl.DataFrame:
    """texts(item, text, [user, position]) -> item, word, count, evidence (list of struct)."""
    words = _tokens(pl.col("text")).list.eval(
        pl.element().filter((pl.element().str.len_chars() >= 3)
                            & ~pl.element().str.contains(r"\d")))
    keep = [c for c in ("user", "position") if c in texts.columns]
    ex = (texts.select("item", *keep, words.alias("word"))
          .explode("word").drop_nulls("word"))
    aggs = [pl.len().alias("count")]
    if keep:
        aggs.append(pl.struct("user", "position").unique().sort().alias("evidence"))
    return ex.group_by("item", "word").agg(aggs)


def _keyword_queries(counts: pl.DataFrame, t: pl.DataFrame, n_items: int,
                     cfg: WeakQueryConfig) -> pl.DataFrame:
    """Top descriptive words per item (+ leaf category), skipping words common across items."""
    df = counts.group_by("word").agg(pl.col("item").n_unique().alias("df"))
    max_df = max(2, int(cfg.keyword_max_df * n_items))
    leaf, _ = _leaf_exprs()
    top = (counts.join(df, on="word").filter((pl.col("count") >= cfg.keyword_min_count)
                                              & (pl.col("df") <= max_df))
           .sort(["item", "count", "word"], descending=[False, True, False])
           .group_by("item", maintain_order=True).head(cfg.keywords_per_item)
           .join(t.select("item", leaf.alias("leaf")), on="item", how="left"))
    query = (pl.when(pl.col("leaf").is_null() | pl.col("leaf").str.contains(pl.col("word"), literal=True))
             .then(pl.col("word")).otherwise(pl.concat_str(["word", "leaf"], separator=" ")))
    cols = ["item", query.alias("query")]
    if "evidence" in top.columns:
        cols.append("evidence")
    return top.select(cols)


def build_item_queries(items: pl.DataFrame, train_reviews: pl.DataFrame | None,
                       cfg: WeakQueryConfig) -> pl.DataFrame:
    """All normalised, length-filtered, per-item de-duplicated weak queries (no split yet).

    items: prepared item table (``item`` + ITEM_SCHEMA). train_reviews: TRAIN-split item
    events with ``user``, ``position``, ``item``, ``review`` (None or empty when the source has
    no reviews). Returns item, query, source, evidence (null unless source == "review").
    """
    t = _text_frame(items)
    parts: list[pl.DataFrame] = []
    if "title" in cfg.sources:
        parts += _title_queries(t, cfg)
    if "category" in cfg.sources:
        parts += [p.with_columns(pl.lit("category").alias("source"))
                  for p in _category_queries(t, cfg.flat_categories)]
    if "brand" in cfg.sources:
        parts += [p.with_columns(pl.lit("brand").alias("source")) for p in _brand_queries(t)]
    if "tag" in cfg.sources:
        parts += [p.with_columns(pl.lit("tag").alias("source")) for p in _tag_queries(t)]
    if "keyword" in cfg.sources:
        desc = t.select("item", pl.col("description").alias("text")).drop_nulls("text")
        if desc.height:
            kw = _keyword_queries(_word_counts(desc), t, items.height, cfg)
            parts.append(kw.with_columns(pl.lit("keyword").alias("source")))
    if "review" in cfg.sources and train_reviews is not None and train_reviews.height:
        rev = (train_reviews.select("item", "user", "position", pl.col("review").alias("text"))
               .drop_nulls("text"))
        rev = rev.with_columns(_unescape(rev["text"]).alias("text"))
        if rev.height:
            kw = _keyword_queries(_word_counts(rev), t, items.height, cfg)
            parts.append(kw.with_columns(pl.lit("review").alias("source")))
    schema = {"item": pl.Int32, "query": pl.Utf8, "source": pl.Utf8, "evidence": EVIDENCE_DTYPE}
    frames = [pl.DataFrame(schema=schema)]
    for p in parts:
        if "evidence" not in p.columns:
            p = p.with_columns(pl.lit(None, dtype=EVIDENCE_DTYPE).alias("evidence"))
        frames.append(p.select(pl.col("item").cast(pl.Int32), pl.col("query").cast(pl.Utf8),
                               "source", pl.col("evidence").cast(EVIDENCE_DTYPE)))
    q = pl.concat(frames, how="vertical").drop_nulls("query")
    n_tok = pl.col("query").str.count_matches(" ") + 1
    q = q.filter((pl.col("query").str.len_chars() >= cfg.min_chars)
                 & pl.col("query").str.contains(r"\p{L}")  # "1995" alone is no query
                 & (n_tok >= cfg.min_tokens) & (n_tok <= cfg.max_tokens))
    # De-duplicate per item; metadata sources come first, so a phrase found in metadata never
    # needs review evidence.
    return q.unique(subset=["item", "query"], keep="first", maintain_order=True).sort(
        "item", maintain_order=True)


# ---------------------------------------------------------------- train / held-out split


def split_queries(queries: pl.DataFrame, cfg: WeakQueryConfig, seed: int,
                  train_pairs: pl.DataFrame | None = None) -> pl.DataFrame:
    """Add ``split``: per item hold out ``max(1, floor(frac * n))`` queries (never all).

    Items with one query keep it for training. ``train_pairs`` (item, query) are pairs seen in
    training search events (real logs); they are never held out.
    """
    rng = np.random.default_rng(seed)
    q = queries.sort(["item", "query"]).with_columns(
        pl.Series("_key", rng.random(queries.height)))
    if train_pairs is not None and train_pairs.height:
        seen = train_pairs.select(pl.col("item").cast(pl.Int32), "query").unique().with_columns(
            pl.lit(True).alias("_seen"))
        q = q.join(seen, on=["item", "query"], how="left", maintain_order="left")
        q = q.with_columns(pl.col("_seen").fill_null(False))
    else:
        q = q.with_columns(pl.lit(False).alias("_seen"))
    n = pl.len().over("item")
    free = (~pl.col("_seen")).cast(pl.Int32).sum().over("item")
    n_hold = (pl.when(n < 2).then(0).otherwise(
        pl.max_horizontal(pl.lit(1),
                          (n.cast(pl.Float64) * cfg.holdout_frac).floor().cast(pl.Int64))))
    n_hold = pl.min_horizontal(n_hold, n - 1, free) if cfg.holdout_frac > 0 else pl.lit(0)
    # Rank the free queries of each item by the random key; seen pairs rank last.
    rank = (pl.when(pl.col("_seen")).then(2.0).otherwise(pl.col("_key"))
            .rank("ordinal").over("item") - 1)
    q = q.with_columns(pl.when(rank < n_hold).then(pl.lit("test")).otherwise(pl.lit("train"))
                       .alias("split"))
    return q.drop("_key", "_seen").select("item", "query", "source", "split", "evidence")


def eval_queries(events: pl.DataFrame, queries: pl.DataFrame,
                 seed: int) -> tuple[pl.DataFrame, dict]:
    """One search-evaluation query per valid/test target, drawn from its item's held-out queries.

    Targets are the user's first item event in the split (as ``views.rec_cases``). Returns
    (user, split, item, query) and stats (targets, covered, skipped: no held-out query).
    """
    targets = (events.filter(IS_ITEM_EVENT & pl.col("split").is_in(["valid", "test"]))
               .sort(["user", "position"])
               .group_by(["user", "split"], maintain_order=True).agg(pl.col("item").first())
               .with_columns(pl.col("split").cast(pl.Utf8)))  # sorted below as text
    held = queries.filter(pl.col("split") == "test").select("item", "query")
    cand = targets.join(held, on="item", how="inner").sort(["user", "split", "query"])
    rng = np.random.default_rng(seed)
    cand = cand.with_columns(pl.Series("_key", rng.random(cand.height)))
    chosen = (cand.sort(["user", "split", "_key"])
              .group_by(["user", "split"], maintain_order=True).first()
              .select(pl.col("user").cast(pl.Int32), "split", pl.col("item").cast(pl.Int32),
                      "query")
              .sort(["user", "split"]))
    stats = {}
    for split in ("valid", "test"):
        n_t = targets.filter(pl.col("split") == split).height
        n_c = chosen.filter(pl.col("split") == split).height
        stats[split] = {"targets": n_t, "with_query": n_c, "skipped_no_heldout_query": n_t - n_c}
    return chosen, stats


def search_pairs(events: pl.DataFrame, split: str = "train") -> pl.DataFrame:
    """(item, query) of the ``split`` search clicks; a click without query text takes the
    latest preceding ``search_query`` of its user (real logs may store the text only there)."""
    search = (events.filter(pl.col("behaviour").is_in(["search_query", "search_click"]))
              .sort(["user", "position"])
              .with_columns(pl.col("query").forward_fill().over("user")))
    return search.filter((pl.col("behaviour") == "search_click") & (pl.col("split") == split)
                         & pl.col("query").is_not_null()).select("item", "query")


def query_stats(queries: pl.DataFrame, n_items: int) -> dict:
    """Counts for the manifest: per source, per split, items covered, mean per item."""
    by_source = queries.group_by("source").len().sort("source")
    by_split = queries.group_by("split").len().sort("split")
    per_item = queries.group_by("item").len()
    return {
        "total": queries.height,
        "by_source": dict(zip(by_source["source"].to_list(), by_source["len"].to_list())),
        "by_split": dict(zip(by_split["split"].to_list(), by_split["len"].to_list())),
        "items_with_queries": per_item.height,
        "items_without_queries": n_items - per_item.height,
        "items_with_heldout": queries.filter(pl.col("split") == "test")["item"].n_unique(),
        "mean_per_item": round(queries.height / max(1, per_item.height), 3),
    }


def remap_evidence(queries: pl.DataFrame, position_map: pl.DataFrame) -> pl.DataFrame:
    """Rewrite evidence positions after events were renumbered (sessions insert rows).

    position_map: user, old_position, position.
    """
    has = queries.filter(pl.col("evidence").is_not_null())
    if has.height == 0:
        return queries
    q = queries.with_row_index("_qrow")
    ex = (q.filter(pl.col("evidence").is_not_null()).select("_qrow", "evidence")
          .explode("evidence").unnest("evidence")
          .rename({"position": "old_position"})
          .join(position_map, on=["user", "old_position"], how="left", maintain_order="left")
          .group_by("_qrow", maintain_order=True)
          .agg(pl.struct(pl.col("user"), pl.col("position").cast(pl.Int32)).alias("evidence")))
    return (q.drop("evidence").join(ex, on="_qrow", how="left", maintain_order="left")
            .with_columns(pl.col("evidence").cast(EVIDENCE_DTYPE))
            .select(queries.columns))
