"""The evidence of one trigger (OneBar §3.2-3.3) and its offline, per-item cache.

``Evidence`` holds the four OneBar fields: trigger text (title, categories, brand), collaborative
anchors, RAG history (queries issued after this trigger in training sessions) and the user's
history filtered by similarity to the trigger. ``serialise`` writes the compact
``[SEP]``-delimited schema of OneBar Eq. 4 (every field keeps its slot, ``<none>`` when empty,
so missing fields never change the input's shape) or the verbose instruction-style prompt
OneBar Table 4 compares it with.

``EvidenceIndex`` precomputes everything but the user history per item (OneBar §4: cached,
keyed by item, so serving is a lookup plus a filter of a few history queries).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from onefeed import config as config_mod
from onefeed.data.schemas import Dataset, dataset_fingerprint
from onefeed.data.weak_queries import search_pairs
from onefeed.evaluation.query_metrics import blocked, normalise_query, query_tokens
from onefeed.onebar.anchors import neighbours, rank_anchors, unit_rows
from onefeed.onebar.config import OneBarConfig
from onefeed.onebar.pairs import session_pairs

SEP = "[SEP]"
NONE = "<none>"
FIELDS: tuple[str, ...] = ("title", "categories", "brand", "anchors", "rag", "history")
_LIST_SEP, _CAT_SEP = " ; ", " > "
MAX_QUERY_ITEMS = 16  # items kept per query for its history-filter centroid
KIND = "onebar-evidence"
FILES: tuple[str, ...] = ("evidence.parquet", "query_items.parquet", "embeddings.npy")


@dataclass
class Evidence:
    trigger_title: str = ""
    trigger_categories: list[str] = field(default_factory=list)  # coarse to fine
    trigger_brand: str = ""
    anchors: list[str] = field(default_factory=list)  # best first
    rag: list[str] = field(default_factory=list)  # most frequent first
    history: list[str] = field(default_factory=list)  # most recent first


def _clean(text: str | None, forbid: str = "") -> str:
    """One line, no [SEP] and none of the ``forbid`` separators: a value cannot break the
    schema."""
    text = (text or "").replace(SEP, " ")
    for ch in forbid:
        text = text.replace(ch, " ")
    return " ".join(text.split())


def _values(ev: Evidence) -> list[str]:
    lists = [ev.anchors, ev.rag, ev.history]
    cats = [c for c in (_clean(c, ">;") for c in ev.trigger_categories) if c]
    return ([_clean(ev.trigger_title), _CAT_SEP.join(cats), _clean(ev.trigger_brand)]
            + [_LIST_SEP.join(q for q in (_clean(x, ";") for x in xs) if q) for xs in lists])


def serialise(ev: Evidence, fmt: str = "schema") -> str:
    """One input string: ``"schema"`` (OneBar Eq. 4) or ``"verbose"`` (Table 4's prompt)."""
    if fmt == "schema":
        return f" {SEP} ".join(f"{name}: {value or NONE}"
                               for name, value in zip(FIELDS, _values(ev)))
    if fmt == "verbose":
        return _verbose(_values(ev))
    raise ValueError(f"evidence format must be 'schema' or 'verbose', got {fmt!r}")


def _verbose(v: list[str]) -> str:
    title, cats, brand, anchors, rag, history = (x or "nothing" for x in v)
    return ("You are the search assistant of a video feed. Suggest the search queries the user "
            "is most likely to issue next about the item they are watching, best first, or "
            f"answer [REJECT] if no safe and relevant query exists. The item is titled "
            f'"{title}", belongs to the category {cats} and is made by {brand}. Users who '
            f"watched similar items searched for: {anchors}. After watching this item, users "
            f"searched for: {rag}. This user recently searched for: {history}.")


def parse(text: str) -> Evidence:
    """The inverse of ``serialise(ev, "schema")`` (for schema-editing tools and tests)."""
    parts = text.split(f" {SEP} ")
    names = [p.split(": ", 1)[0] for p in parts]
    if tuple(names) != FIELDS:
        raise ValueError(f"not an evidence schema: fields {names}, expected {list(FIELDS)}")
    vals = ["" if v == NONE else v for v in (p.split(": ", 1)[1] for p in parts)]

    def split(v: str, sep: str) -> list[str]:
        return v.split(sep) if v else []

    return Evidence(vals[0], split(vals[1], _CAT_SEP), vals[2], split(vals[3], _LIST_SEP),
                    split(vals[4], _LIST_SEP), split(vals[5], _LIST_SEP))


# ---- the per-item cache ---------------------------------------------------------------------

def _ranked(frame: pl.DataFrame, key: str, n_items: int) -> list[list[tuple[str, int]]]:
    """Per item (index), its (query, count) pairs, most frequent first, ties alphabetical."""
    counts = (frame.group_by(key, "query").len()
              .sort([key, "len", "query"], descending=[False, True, False]))
    out: list[list[tuple[str, int]]] = [[] for _ in range(n_items)]
    for item, qs, ns in counts.group_by(key, maintain_order=True).agg("query", "len").iter_rows():
        out[int(item)] = list(zip(qs, ns))
    return out


def _click_pairs(ds: Dataset) -> pl.DataFrame:
    pairs = search_pairs(ds.events, "train")
    return pairs.select(pl.col("item").cast(pl.Int64),
                        pl.col("query").map_elements(normalise_query, return_dtype=pl.Utf8))


def _anchor_pools(ds: Dataset, after: pl.DataFrame, sources: list[str]) -> list[dict[str, int]]:
    frames = [pl.DataFrame(schema={"item": pl.Int64, "query": pl.Utf8})]
    if "after" in sources:
        frames.append(after.select(pl.col("trigger").alias("item"), "query"))
    if "click" in sources:
        frames.append(_click_pairs(ds))
    return [dict(r) for r in _ranked(pl.concat(frames), "item", ds.n_items)]


def _query_items(ds: Dataset) -> dict[str, list[int]]:
    """Training query text -> the items it names (train weak queries and train search clicks),
    most frequent first: the query's place in the item embedding space."""
    weak = ds.queries.filter(pl.col("split") == "train").select(
        pl.col("item").cast(pl.Int64),
        pl.col("query").map_elements(normalise_query, return_dtype=pl.Utf8))
    both = pl.concat([weak, _click_pairs(ds)])
    counts = both.group_by("query", "item").len().sort(["query", "len", "item"],
                                                       descending=[False, True, False])
    grouped = counts.group_by("query", maintain_order=True).agg(pl.col("item").head(
        MAX_QUERY_ITEMS))
    return {q: list(items) for q, items in grouped.iter_rows()}


@dataclass
class EvidenceIndex:
    titles: list[str]
    categories: list[list[str]]
    brands: list[str]
    anchors: list[list[str]]
    rag: list[list[tuple[str, int]]]  # top max_rag + 1 with counts (leave-one-out: ``own``)
    embeddings: np.ndarray  # (n_items, d) float32 unit rows
    query_items: dict[str, list[int]]
    cfg: OneBarConfig
    data_sha256: str | None = None

    @classmethod
    def build(cls, ds: Dataset, item_embeddings: np.ndarray, cfg: OneBarConfig
              ) -> "EvidenceIndex":
        """Precompute every item's trigger text, anchors and RAG history from training data."""
        unit = unit_rows(item_embeddings)
        if len(unit) != ds.n_items:
            raise ValueError(f"{len(unit)} item embeddings for {ds.n_items} items")
        items = ds.items.sort("item")
        after = session_pairs(ds, "train")
        pools = _anchor_pools(ds, after, cfg.anchor_sources)
        nbrs, sims = neighbours(unit, cfg.anchor_k)
        anchors = [rank_anchors(pools, nbrs[i], sims[i], cfg.anchor_threshold, cfg.max_anchors)
                   for i in range(ds.n_items)]
        rag = [r[:cfg.max_rag + 1] for r in _ranked(after, "trigger", ds.n_items)]
        return cls([_clean(t) for t in items["title"].to_list()],
                   [list(c or []) for c in items["categories"].to_list()],
                   [_clean(b) for b in items["brand"].to_list()], anchors, rag, unit,
                   _query_items(ds), cfg, dataset_fingerprint(ds))

    @property
    def n_items(self) -> int:
        return len(self.titles)

    def n_evidence(self, item: int) -> int:
        """Anchors + RAG queries cached for ``item`` (OneBar: weak evidence -> abstain)."""
        return len(self.anchors[item]) + min(len(self.rag[item]), self.cfg.max_rag)

    def rag_queries(self, item: int, own: str | None = None) -> list[str]:
        """The item's RAG history; ``own`` (a training example's target) counted once less."""
        ranked = self.rag[item]
        if own is not None:
            own = normalise_query(own)
            ranked = sorted(((q, c - (q == own)) for q, c in ranked if c - (q == own) > 0),
                            key=lambda qc: (-qc[1], qc[0]))
        return [q for q, _ in ranked[:self.cfg.max_rag]]

    def history_similarity(self, query: str, item: int) -> float:
        """Cosine of the query's item centroid to ``item``; a query never seen in training
        scores 1.0 if it shares a word with the trigger's text, else 0.0."""
        items = self.query_items.get(query)
        if not items:
            text = set(query_tokens(" ".join([self.titles[item], self.brands[item],
                                              *self.categories[item]])))
            return float(bool(text & set(query_tokens(query))))
        centroid = self.embeddings[items].mean(axis=0)
        norm = float(np.linalg.norm(centroid))
        return float(centroid @ self.embeddings[item]) / norm if norm > 0 else 0.0

    def filter_history(self, item: int, history: list[str]) -> list[str]:
        """Up to ``max_history`` distinct queries of ``history`` (most recent last) similar to
        the trigger (>= ``history_threshold``), most recent first (OneBar §3.2, E_p)."""
        kept: list[str] = []
        for q in map(normalise_query, reversed(history)):
            if len(kept) == self.cfg.max_history:
                break
            if q and q not in kept and (self.history_similarity(q, item)
                                        >= self.cfg.history_threshold):
                kept.append(q)
        return kept

    def evidence(self, item: int, history: list[str] | None = None, own: str | None = None,
                 exclude: str | None = None) -> Evidence:
        """The cached evidence of ``item`` plus its filtered ``history``. ``own``: a training
        example's own target, left out of the RAG counts once; ``exclude``: drop every entry
        containing this query (OneBar §5.1 decontamination of evaluation inputs)."""
        if not 0 <= item < self.n_items:
            raise IndexError(f"item {item} outside the evidence index of {self.n_items} items")
        fields = [list(self.anchors[item]), self.rag_queries(item, own),
                  self.filter_history(item, history or [])]
        if exclude:
            fields = [[q for q in f if not blocked(q, [exclude])] for f in fields]
        return Evidence(self.titles[item], list(self.categories[item]), self.brands[item],
                        *fields)

    # ---- artifact --------------------------------------------------------------------------
    def save(self, directory: str | Path) -> Path:
        """evidence.parquet + query_items.parquet + embeddings.npy + manifest.json (config,
        file hashes), written atomically."""
        from onefeed.artifacts import atomic_dir, hash_files, write_json

        directory = Path(directory)
        with atomic_dir(directory, kind=KIND) as tmp:
            pl.DataFrame({
                "item": pl.Series(range(self.n_items), dtype=pl.Int32), "title": self.titles,
                "categories": self.categories, "brand": self.brands, "anchors": self.anchors,
                "rag": [[q for q, _ in r] for r in self.rag],
                "rag_counts": [[c for _, c in r] for r in self.rag]},
                schema_overrides={"categories": pl.List(pl.Utf8), "anchors": pl.List(pl.Utf8),
                                  "rag": pl.List(pl.Utf8), "rag_counts": pl.List(pl.Int64)},
            ).write_parquet(tmp / FILES[0])
            pl.DataFrame({"query": list(self.query_items), "items": list(
                self.query_items.values())}, schema={"query": pl.Utf8,
                                                     "items": pl.List(pl.Int64)},
            ).write_parquet(tmp / FILES[1])
            np.save(tmp / FILES[2], self.embeddings)
            write_json(tmp / "manifest.json", {
                "kind": KIND, "n_items": self.n_items, "config": config_mod.to_dict(self.cfg),
                "data_sha256": self.data_sha256, "files": hash_files(tmp, list(FILES))})
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> "EvidenceIndex":
        """Read a saved index, its files checked against the manifest's sha256."""
        from onefeed.artifacts import read_manifest

        directory = Path(directory)
        manifest = read_manifest(directory, KIND, "OneBar evidence index")
        ev = pl.read_parquet(directory / FILES[0]).sort("item")
        qi = pl.read_parquet(directory / FILES[1])
        rag = [list(zip(q, c)) for q, c in zip(ev["rag"].to_list(), ev["rag_counts"].to_list())]
        return cls(ev["title"].to_list(), ev["categories"].to_list(), ev["brand"].to_list(),
                   ev["anchors"].to_list(), rag,
                   np.load(directory / FILES[2], allow_pickle=False),
                   dict(zip(qi["query"].to_list(), qi["items"].to_list())),
                   config_mod.from_dict(OneBarConfig, manifest["config"]),
                   manifest.get("data_sha256"))
