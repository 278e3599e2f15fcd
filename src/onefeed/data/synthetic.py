"""The built-in synthetic feed + search world: default data that needs no download.

A seeded generative story, vectorised with numpy so 1M events take seconds:

1. A category tree (``n_topics`` x ``n_subtopics`` leaves). Each topic and each leaf owns a
   vocabulary of pseudo-words; a few common words belong to no topic.
2. Items sit in one leaf each; title, description and tags are drawn mostly from their leaf's
   and topic's words, the brand from the topic's brands. Popularity is Zipf(``popularity_alpha``)
   over a random ranking, so a few items get most clicks.
3. Users hold ``interests_per_user`` leaves with Dirichlet weights. Their timeline is cut into
   ``n_phases``; at each phase change every interest is replaced with probability ``drift``.
4. Events come in sessions; a session picks one interest and draws clicks from that leaf by
   popularity (``explore`` share: from the whole catalogue). A ``search_rate`` share of clicks
   is reached through a search: a ``search_query`` whose words come from the clicked item's
   title and leaf vocabulary (``query_noise`` share: any word), then a ``search_click`` on that
   item (content-induced search, as in the semi-synthetic data of Ai et al. 2017 / GenSAR §4.1).
5. Timestamps strictly increase within a user; ``strength`` is a 1-5 rating, higher on-interest.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from onefeed.config import ConfigError, from_dict
from onefeed.data.schemas import (BEHAVIOURS, EVAL_QUERY_SCHEMA, EVENT_SCHEMA, ITEM_SCHEMA,
                                  QUERY_SCHEMA, RAW_EVENT_SCHEMA, Dataset, RawData, conform)

TOPIC_NAMES: dict[str, list[str]] = {
    "sports": ["running", "cycling", "swimming", "climbing"],
    "cooking": ["baking", "grilling", "vegan", "desserts"],
    "music": ["jazz", "rock", "classical", "electronic"],
    "travel": ["beaches", "mountains", "cities", "camping"],
    "tech": ["phones", "laptops", "gaming", "audio"],
    "fashion": ["shoes", "jackets", "watches", "bags"],
}
_SYLLABLES = [c + v for c in "bdfgklmnprstvz" for v in "aeiou"]  # 70 syllables
TITLE_SLOTS, DESC_SLOTS, TAG_SLOTS, QUERY_SLOTS = 5, 12, 2, 3
BLOCK_USERS = 50_000  # users simulated together from one random stream (see ``simulate``)


@dataclass
class SyntheticConfig:
    n_users: int = 1000
    n_items: int = 2000
    events_per_user: float = 40.0  # mean item events (clicks) per user
    min_events: int = 5  # every user gets at least this many clicks
    n_topics: int = 6
    n_subtopics: int = 4  # leaves per topic
    words_per_topic: int = 30
    words_per_subtopic: int = 20
    n_common_words: int = 40
    brands_per_topic: int = 6
    interests_per_user: int = 3
    n_phases: int = 3  # interest drift: the timeline is cut into this many phases
    drift: float = 0.3  # chance each interest is replaced at a phase change
    session_length: float = 8.0  # mean clicks per session
    explore: float = 0.05  # share of clicks drawn from the whole catalogue by popularity
    popularity_alpha: float = 1.0  # Zipf exponent of item popularity
    search_rate: float = 0.15  # share of clicks reached through a search
    query_noise: float = 0.1  # share of query words drawn from the whole vocabulary
    with_strength: bool = True  # 1-5 rating on clicks (else null)
    start_time: int = 1_700_000_000  # unix seconds of the earliest user's first event
    seed: int = 0


@dataclass(frozen=True)
class SyntheticWorld:
    """The generated world's ground truth (for tests and closed-loop simulation)."""

    config: SyntheticConfig
    vocab: np.ndarray  # (V,) str
    word_topic: np.ndarray  # (V,) int topic owning the word, -1 for common words
    word_leaf: np.ndarray  # (V,) int leaf owning the word, -1 for topic-level/common words
    item_leaf: np.ndarray  # (n_items,) int leaf = topic * n_subtopics + subtopic
    item_title_words: np.ndarray  # (n_items, TITLE_SLOTS) word ids, -1 padded
    item_popularity: np.ndarray  # (n_items,) float Zipf weight (unnormalised)
    user_interests: np.ndarray  # (n_users, n_phases, interests_per_user) leaf ids
    user_weights: np.ndarray  # (n_users, interests_per_user) Dirichlet weights
    items: pl.DataFrame  # ITEM_SCHEMA

    @property
    def item_topic(self) -> np.ndarray:
        return self.item_leaf // self.config.n_subtopics


def _names(cfg: SyntheticConfig) -> tuple[list[str], list[str]]:
    """Topic names (n_topics,) and leaf names (n_topics * n_subtopics,)."""
    known = list(TOPIC_NAMES.items())
    topics, leaves = [], []
    for t in range(cfg.n_topics):
        name, subs = known[t] if t < len(known) else (f"topic{t}", [])
        topics.append(name)
        leaves += [subs[s] if s < len(subs) else f"{name}-{s}" for s in range(cfg.n_subtopics)]
    return topics, leaves


def _pseudo_words(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` distinct pronounceable pseudo-words of 2-3 syllables."""
    k = len(_SYLLABLES)
    codes = rng.choice(k**2 + k**3, size=n, replace=False)
    words = []
    for c in codes.tolist():
        parts = [c % k, (c // k) % k] if c < k**2 else [c % k, (c // k) % k, (c // k**2) % k]
        words.append("".join(_SYLLABLES[p] for p in parts))
    return np.array(words, dtype=object)


def _join(idx: np.ndarray, words: np.ndarray) -> pl.Series:
    """Rows of word ids (-1 = none) -> space-joined strings, vectorised through polars."""
    vs = pl.Series(words.astype(str))
    cols = range(idx.shape[1])
    frame = pl.DataFrame({f"w{j}": vs.gather(np.maximum(idx[:, j], 0)) for j in cols})
    frame = frame.with_columns(pl.Series(f"m{j}", idx[:, j] >= 0) for j in cols)
    parts = [pl.when(pl.col(f"m{j}")).then(pl.col(f"w{j}")) for j in cols]
    return frame.select(pl.concat_str(parts, separator=" ", ignore_nulls=True)).to_series()


def _draw_words(rng: np.random.Generator, leaf: np.ndarray, slots: int,
                shares: tuple[float, float], cfg: SyntheticConfig, layout: dict) -> np.ndarray:
    """(n, slots) word ids: leaf words w.p. shares[0], topic words w.p. shares[1], else common."""
    n = len(leaf)
    u = rng.random((n, slots))
    leaf_w = (layout["leaf_start"][leaf][:, None]
              + rng.integers(cfg.words_per_subtopic, size=(n, slots)))
    topic_w = (layout["topic_start"][leaf // cfg.n_subtopics][:, None]
               + rng.integers(cfg.words_per_topic, size=(n, slots)))
    common_w = rng.integers(cfg.n_common_words, size=(n, slots))
    return np.where(u < shares[0], leaf_w, np.where(u < shares[0] + shares[1], topic_w, common_w))


def _vocabulary(rng: np.random.Generator, cfg: SyntheticConfig) -> tuple[np.ndarray, dict]:
    """Vocab laid out as [common | topic 0 .. T-1 | leaf 0 .. L-1], plus brands per topic."""
    n_leaves = cfg.n_topics * cfg.n_subtopics
    n_vocab = (cfg.n_common_words + cfg.n_topics * cfg.words_per_topic
               + n_leaves * cfg.words_per_subtopic)
    n_brands = cfg.n_topics * cfg.brands_per_topic
    words = _pseudo_words(rng, n_vocab + n_brands)
    topic_start = cfg.n_common_words + np.arange(cfg.n_topics) * cfg.words_per_topic
    leaf_start = (cfg.n_common_words + cfg.n_topics * cfg.words_per_topic
                  + np.arange(n_leaves) * cfg.words_per_subtopic)
    word_topic = np.full(n_vocab, -1)
    word_leaf = np.full(n_vocab, -1)
    for t in range(cfg.n_topics):
        word_topic[topic_start[t]:topic_start[t] + cfg.words_per_topic] = t
    for leaf in range(n_leaves):
        block = slice(leaf_start[leaf], leaf_start[leaf] + cfg.words_per_subtopic)
        word_topic[block] = leaf // cfg.n_subtopics
        word_leaf[block] = leaf
    brands = np.array([w.capitalize() for w in words[n_vocab:]], dtype=object)
    layout = {"topic_start": topic_start, "leaf_start": leaf_start, "word_topic": word_topic,
              "word_leaf": word_leaf, "brands": brands}
    return words[:n_vocab], layout


def _item_table(rng: np.random.Generator, cfg: SyntheticConfig, vocab: np.ndarray,
                layout: dict, item_leaf: np.ndarray, title_w: np.ndarray) -> pl.DataFrame:
    """ITEM_SCHEMA rows: brand + title words, description, tags, [topic, leaf] categories."""
    desc_w = _draw_words(rng, item_leaf, DESC_SLOTS, (0.5, 0.3), cfg, layout)
    tag_w = _draw_words(rng, item_leaf, TAG_SLOTS, (1.0, 0.0), cfg, layout)
    topic = item_leaf // cfg.n_subtopics
    brand = layout["brands"][topic * cfg.brands_per_topic
                             + rng.integers(cfg.brands_per_topic, size=cfg.n_items)].astype(str)
    topic_names, leaf_names = _names(cfg)
    categories = pl.select(pl.concat_list(pl.lit(pl.Series(topic_names).gather(topic)),
                                          pl.lit(pl.Series(leaf_names).gather(item_leaf))))
    title_words = _join(title_w, vocab).str.split(" ").list.unique(maintain_order=True)
    items = pl.DataFrame({
        "item_id": "i" + pl.Series(np.arange(cfg.n_items)).cast(pl.Utf8),
        "title": pl.Series(brand) + " " + title_words.list.join(" "),
        "description": _join(desc_w, vocab) + ".",
        "brand": brand,
        "categories": categories.to_series(),
        "tags": _join(tag_w, vocab).str.split(" ").list.unique(maintain_order=True),
    })
    return conform(items, ITEM_SCHEMA, "synthetic items")


def _check(cfg: SyntheticConfig) -> None:
    n_leaves = cfg.n_topics * cfg.n_subtopics
    problems = [
        (cfg.n_users >= 1, "n_users must be >= 1"),
        (cfg.n_items >= n_leaves, f"n_items must be >= n_topics * n_subtopics = {n_leaves}"),
        (cfg.events_per_user > 0 and cfg.session_length >= 1,
         "events_per_user must be > 0 and session_length >= 1"),
        (all(0 <= x <= 1 for x in (cfg.search_rate, cfg.query_noise, cfg.explore, cfg.drift)),
         "search_rate, query_noise, explore and drift must lie in [0, 1]"),
        (min(cfg.n_phases, cfg.interests_per_user, cfg.words_per_topic, cfg.words_per_subtopic,
             cfg.n_common_words, cfg.brands_per_topic) >= 1, "counts must be >= 1"),
    ]
    for ok, message in problems:
        if not ok:
            raise ConfigError(f"SyntheticConfig: {message}")


def make_world(cfg: SyntheticConfig) -> SyntheticWorld:
    """Category tree, vocabularies, items with text and popularity, users with interests."""
    _check(cfg)
    rng = np.random.default_rng([cfg.seed, 0])
    vocab, layout = _vocabulary(rng, cfg)
    n_leaves = cfg.n_topics * cfg.n_subtopics
    item_leaf = rng.permutation(np.arange(cfg.n_items) % n_leaves)  # every leaf gets items
    popularity = (rng.permutation(cfg.n_items) + 1.0) ** -cfg.popularity_alpha
    title_w = _draw_words(rng, item_leaf, TITLE_SLOTS, (0.55, 0.35), cfg, layout)
    title_len = rng.integers(3, TITLE_SLOTS + 1, cfg.n_items)
    title_w[np.arange(TITLE_SLOTS)[None, :] >= title_len[:, None]] = -1
    items = _item_table(rng, cfg, vocab, layout, item_leaf, title_w)
    k = cfg.interests_per_user
    interests = np.empty((cfg.n_users, cfg.n_phases, k), dtype=np.int64)
    interests[:, 0] = rng.integers(n_leaves, size=(cfg.n_users, k))
    for p in range(1, cfg.n_phases):  # drift: each interest may be replaced at a phase change
        swap = rng.random((cfg.n_users, k)) < cfg.drift
        interests[:, p] = np.where(swap, rng.integers(n_leaves, size=(cfg.n_users, k)),
                                   interests[:, p - 1])
    weights = rng.dirichlet(np.ones(k), size=cfg.n_users)
    return SyntheticWorld(cfg, vocab, layout["word_topic"], layout["word_leaf"], item_leaf,
                          title_w, popularity, interests, weights, items)


def _sample_items(rng: np.random.Generator, world: SyntheticWorld, leaf: np.ndarray) -> np.ndarray:
    """One item per entry of ``leaf``, by popularity within the leaf (one global searchsorted)."""
    order = np.argsort(world.item_leaf, kind="stable")
    sorted_leaf = world.item_leaf[order]
    pop = world.item_popularity[order]
    cum = np.cumsum(pop)
    leaf_first = np.searchsorted(sorted_leaf, np.arange(sorted_leaf.max() + 1))
    leaf_end = np.append(leaf_first[1:], len(order))
    before = np.where(leaf_first > 0, cum[np.maximum(leaf_first - 1, 0)], 0.0)
    total = cum[leaf_end - 1] - before
    key = sorted_leaf + (cum - before[sorted_leaf]) / total[sorted_leaf]  # in (leaf, leaf + 1]
    idx = np.searchsorted(key, leaf + rng.random(len(leaf)), side="right")
    idx = np.minimum(idx, leaf_end[leaf] - 1)
    return order[idx]


def _clicks(rng: np.random.Generator, world: SyntheticWorld) -> dict[str, np.ndarray]:
    """Click streams grouped by user in time order: user, item, on_interest, new_session, first
    (index of the user's first click)."""
    cfg = world.config
    lam = rng.gamma(2.0, cfg.events_per_user / 2.0, size=cfg.n_users)
    counts = np.maximum(rng.poisson(lam), cfg.min_events)
    user = np.repeat(np.arange(cfg.n_users), counts)
    first = np.repeat(np.cumsum(counts) - counts, counts)
    pos = np.arange(len(user)) - first
    phase = np.minimum(pos * cfg.n_phases // counts[user], cfg.n_phases - 1)
    new_session = (pos == 0) | (rng.random(len(user)) < 1.0 / cfg.session_length)
    session = np.cumsum(new_session) - 1
    starts = np.flatnonzero(new_session)
    cw = np.cumsum(world.user_weights[user[starts]], axis=1)
    slot = np.minimum((rng.random(len(starts))[:, None] > cw).sum(1), cw.shape[1] - 1)
    leaf = world.user_interests[user[starts], phase[starts], slot][session]
    item = _sample_items(rng, world, leaf)
    explore = rng.random(len(user)) < cfg.explore
    p = world.item_popularity / world.item_popularity.sum()
    item[explore] = rng.choice(len(p), size=int(explore.sum()), p=p)
    return {"user": user, "item": item, "on_interest": ~explore, "new_session": new_session,
            "first": first}


def _timestamps(rng: np.random.Generator, clicks: dict[str, np.ndarray],
                cfg: SyntheticConfig) -> np.ndarray:
    """Strictly increasing seconds per user: ~1 day between sessions, ~90 s within one."""
    n = len(clicks["user"])
    gap = np.where(clicks["new_session"], 3600 + rng.exponential(86400, n),
                   10 + rng.exponential(90, n)).astype(np.int64)
    gap[clicks["first"] == np.arange(n)] = 0
    cum = np.cumsum(gap)
    start = cfg.start_time + rng.integers(0, 30 * 86400, cfg.n_users)
    return start[clicks["user"]] + cum - cum[clicks["first"]]


def _queries(rng: np.random.Generator, world: SyntheticWorld, items: np.ndarray) -> pl.Series:
    """Content-induced queries for the clicked ``items``: title/leaf words, some noise."""
    cfg, n = world.config, len(items)
    title = world.item_title_words[items]
    n_title = (title >= 0).sum(1)
    from_title = title[np.arange(n)[:, None], rng.integers(0, n_title[:, None], (n, QUERY_SLOTS))]
    leaf_base = int(np.flatnonzero(world.word_leaf >= 0)[0])  # leaf word blocks are contiguous
    from_leaf = (leaf_base + world.item_leaf[items][:, None] * cfg.words_per_subtopic
                 + rng.integers(cfg.words_per_subtopic, size=(n, QUERY_SLOTS)))
    noise = rng.integers(len(world.vocab), size=(n, QUERY_SLOTS))
    u = rng.random((n, QUERY_SLOTS))
    words = np.where(u < cfg.query_noise, noise,
                     np.where(u < cfg.query_noise + 0.5, from_title, from_leaf))
    length = rng.choice([1, 2, 3], size=n, p=[0.3, 0.45, 0.25])
    words[np.arange(QUERY_SLOTS)[None, :] >= length[:, None]] = -1
    return _join(words, world.vocab).str.split(" ").list.unique(maintain_order=True).list.join(" ")


def _strength(rng: np.random.Generator, on_interest: np.ndarray,
              is_query: np.ndarray) -> np.ndarray:
    """1-5 rating on clicks (higher when on-interest), NaN on queries."""
    p = np.where(on_interest, 0.75, 0.35)
    return np.where(is_query, np.nan, 1 + rng.binomial(4, p)).astype(np.float32)


def simulate(world: SyntheticWorld, block: int | None = None) -> pl.DataFrame:
    """Events (RAW_EVENT_SCHEMA) of all users, grouped by user, in time order.

    ``block=b``: only users ``[b * BLOCK_USERS, (b + 1) * BLOCK_USERS)``, from that block's own
    random stream. A world of more than ``BLOCK_USERS`` users is always simulated block by
    block (``write_parquet`` writes one block at a time), so its events do not depend on how
    they are written; a world of one block is drawn exactly as before blocks existed.
    """
    cfg = world.config
    n_blocks = -(-cfg.n_users // BLOCK_USERS)
    if block is None and n_blocks > 1:
        return pl.concat([simulate(world, b) for b in range(n_blocks)])
    block = block or 0
    lo, hi = block * BLOCK_USERS, min(cfg.n_users, (block + 1) * BLOCK_USERS)
    if not 0 <= lo < hi:
        raise ValueError(f"block {block} is outside 0..{n_blocks - 1}")
    rng = np.random.default_rng([cfg.seed, 1] if block == 0 else [cfg.seed, 1, block])
    world = dataclasses.replace(world, config=dataclasses.replace(cfg, n_users=hi - lo),
                                user_interests=world.user_interests[lo:hi],
                                user_weights=world.user_weights[lo:hi])
    cfg = world.config
    clicks = _clicks(rng, world)
    ts = _timestamps(rng, clicks, cfg)
    search = rng.random(len(ts)) < cfg.search_rate
    src = np.repeat(np.arange(len(ts)), 1 + search)  # output row -> click row
    is_query = np.r_[src[1:] == src[:-1], False]  # first of the two rows of a searched click
    code = np.where(is_query, 1, np.where(search[src], 2, 0))  # index into BEHAVIOURS
    user = clicks["user"][src]
    runs = np.flatnonzero(np.r_[True, user[1:] != user[:-1]])
    order = np.arange(len(src)) - np.repeat(runs, np.diff(np.r_[runs, len(src)]))
    query = pl.repeat(None, len(src), dtype=pl.Utf8, eager=True).scatter(
        np.flatnonzero(is_query), _queries(rng, world, clicks["item"][search]))
    events = pl.DataFrame({
        "user_id": "u" + pl.Series(user + lo).cast(pl.Utf8),
        "item_id": "i" + pl.Series(clicks["item"][src]).cast(pl.Utf8),
        "timestamp": ts[src] - is_query * rng.integers(1, 6, len(src)),
        "order": order,
        "behaviour": pl.Series(BEHAVIOURS).gather(code),
        "query": query,
        "strength": (_strength(rng, clicks["on_interest"][src], is_query)
                     if cfg.with_strength else None),
    })
    events = events.with_columns(
        pl.when(pl.col("query").is_null()).then(pl.col("item_id")).alias("item_id"),
        pl.col("strength").fill_nan(None) if cfg.with_strength else pl.lit(None, pl.Float32))
    return conform(events, RAW_EVENT_SCHEMA, "synthetic events")


def generate(cfg: SyntheticConfig, progress: bool | None = None) -> tuple[SyntheticWorld, RawData]:
    """The world and its logged events as ``RawData``.

    ``progress``: show a rich progress line (default: only for >= 2M expected clicks).
    """
    expected = int(cfg.n_users * cfg.events_per_user)
    show = progress if progress is not None else expected >= 2_000_000
    columns = (SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn())
    with Progress(*columns, transient=True, disable=not show) as bar:
        task = bar.add_task(f"synthetic world: {cfg.n_items:,} items", total=2)
        world = make_world(cfg)
        bar.update(task, advance=1, description=f"synthetic events: ~{expected:,} clicks")
        events = simulate(world)
        bar.advance(task)
    return world, RawData(events, world.items, _source(cfg))


def write_parquet(cfg: SyntheticConfig, folder: str | Path, row_group_rows: int = 250_000
                  ) -> dict:
    """Generate the world into ``folder`` one user block at a time (memory: one block):
    ``events/part-NNNNN.parquet`` (RAW_EVENT_SCHEMA, the same events as ``generate``),
    ``items.parquet`` and ``source.json``; ``load_raw("raw-files", folder)`` scans it lazily.
    Returns the source record (with the number of events written)."""
    import json

    folder = Path(folder)
    (folder / "events").mkdir(parents=True, exist_ok=True)
    world = make_world(cfg)
    world.items.write_parquet(folder / "items.parquet")
    n_events = 0
    for b in range(-(-cfg.n_users // BLOCK_USERS)):
        events = simulate(world, b)
        n_events += events.height
        events.write_parquet(folder / "events" / f"part-{b:05d}.parquet",
                             row_group_size=row_group_rows)
        del events
    source = dict(_source(cfg), events_written=n_events)
    (folder / "source.json").write_text(json.dumps(source, indent=1) + "\n")
    return source


def _source(cfg: SyntheticConfig) -> dict:
    return {"name": "synthetic", "files": {}, "has_timestamps": True,
            "config": dataclasses.asdict(cfg),
            "notes": ["Built-in synthetic world (onefeed.data.synthetic); no download. Queries "
                      "are content-induced from the clicked item's title and leaf words."]}


def load_synthetic(**options) -> RawData:
    """``load_raw("synthetic", **options)``: options are ``SyntheticConfig`` fields (checked)."""
    cfg = from_dict(SyntheticConfig, dict(options))
    return generate(cfg)[1]


# ---- tiny prepared datasets for tests and CI smoke runs ----------------------------------------
def prepared_items(titles: list[str], brands: list[str], categories: list[list[str]]
                   ) -> pl.DataFrame:
    """A prepared items frame (``Dataset.items``): every item first seen in train, item ids
    ``i<n>``, no description or tags."""
    n = len(titles)
    return pl.DataFrame({
        "item": pl.Series(range(n), dtype=pl.Int32), "first_split": ["train"] * n,
        "item_id": [f"i{i}" for i in range(n)], "title": titles,
        "description": [None] * n, "brand": brands, "categories": categories,
        "tags": [[] for _ in range(n)]},
        schema_overrides={"categories": pl.List(pl.Utf8), "tags": pl.List(pl.Utf8),
                          "description": pl.Utf8})


def prepared_users(n_users: int) -> pl.DataFrame:
    return pl.DataFrame({"user": pl.Series(range(n_users), dtype=pl.Int32),
                         "user_id": [f"u{u}" for u in range(n_users)]})


def tiny_dataset(n_users: int, n_items: int, seed: int = 0) -> Dataset:
    """A tiny prepared leave-one-out dataset with learnable structure (each user walks the
    catalogue in item order from a random start), text, weak queries and eval queries: the
    smoke-test world of the bench harness (``[dataset] synthetic = true``). Unlike
    ``generate``, it skips ``prepare`` and is built in milliseconds."""
    rng = np.random.default_rng(seed)
    words = ["red", "blue", "green", "soft", "matte", "gloss", "mini", "pro"]
    kinds = ["lipstick", "polish", "cream", "shampoo", "serum"]
    rows, qrows, erows = [], [], []
    for u in range(n_users):
        start, length = int(rng.integers(n_items)), int(rng.integers(5, 10))
        seq = [(start + j) % n_items for j in range(length)]
        for p, item in enumerate(seq):
            split = "test" if p == length - 1 else "valid" if p == length - 2 else "train"
            rows.append((u, item, p, None, "rec_click", None, None, split))
    titles = [f"{words[i % 8]} {words[(i // 8) % 8]} {kinds[i % 5]} {i}" for i in range(n_items)]
    for i, t in enumerate(titles):
        w = t.split()
        qrows += [(i, f"{w[0]} {w[2]}", "title", "train"), (i, f"{w[1]} {w[2]}", "keyword", "test")]
    held = {i: f"{t.split()[1]} {t.split()[2]}" for i, t in enumerate(titles)}
    events = pl.DataFrame(rows, schema=EVENT_SCHEMA, orient="row")
    for r in events.filter(pl.col("split") != "train").iter_rows(named=True):
        erows.append((r["user"], r["split"], r["item"], held[r["item"]]))
    items = prepared_items(titles, [f"brand{i % 4}" for i in range(n_items)],
                           [["beauty", kinds[i % 5]] for i in range(n_items)])
    return Dataset(events, items, prepared_users(n_users),
                   pl.DataFrame(qrows, schema=QUERY_SCHEMA, orient="row"),
                   pl.DataFrame(erows, schema=EVAL_QUERY_SCHEMA, orient="row"),
                   {"name": "synthetic", "protocol": "leave_one_out", "seed": seed})
