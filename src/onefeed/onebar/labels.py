"""Examples for content-grounded query suggestion, with [REJECT] supervision (OneBar §3.4.1).

Targets come from our data, split by the existing protocol: train examples are the
trigger -> next-query pairs of training sessions (``pairs.session_pairs``); valid/test examples
pair the held-out eval query with the item watched before it (``pairs.eval_pairs``), so no
held-out (query, item) pair is ever a training target.

The unsafe set is planted: items whose text contains a block-list term (whole words, any
case) and items with too little cached evidence (< ``min_evidence`` anchors + RAG queries)
get the target ``[REJECT]``. Public data has no unsafe items, so ``plant_unsafe`` appends a
blocked term to the titles of a seeded share of items first. At serving time
``safe_suggestions`` drops every suggestion with a blocked term, so none is ever exposed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl

from onefeed.data.schemas import Dataset
from onefeed.embeddings.text import item_texts
from onefeed.evaluation.query_metrics import blocked, normalise_query
from onefeed.onebar.config import OneBarConfig
from onefeed.onebar.evidence import Evidence, EvidenceIndex
from onefeed.onebar.pairs import UserQueries, eval_pairs, session_pairs

REJECT = "[REJECT]"  # the vocabulary's abstention token (onefeed.tokens.SPECIALS)


@dataclass(frozen=True)
class Example:
    user: int
    trigger: int  # the item being watched
    target: str  # the next query, or REJECT
    reject: bool
    split: str  # train | valid | test
    history: tuple[str, ...] = ()  # the user's queries before the trigger, most recent last
    query: str = ""  # the observed next query (also kept when the target is REJECT)


def is_blocked(text: str, block_list: Sequence[str]) -> bool:
    """True when ``text`` contains a block-list word or phrase (word boundaries, any case)."""
    return blocked(text, block_list)


def filter_blocked(queries: Sequence[str], block_list: Sequence[str]) -> list[str]:
    """``queries`` without those containing a blocked term, order kept."""
    return [q for q in queries if not blocked(q, block_list)]


def safe_suggestions(queries: Sequence[str], block_list: Sequence[str], k: int) -> list[str]:
    """What may be exposed: the first ``k`` distinct unblocked queries, or ``[REJECT]`` when the
    generator abstained first or nothing safe is left (OneBar §3.3's final safety check)."""
    if not queries or queries[0] == REJECT:
        return [REJECT]
    out: list[str] = []
    seen: set[str] = set()
    for q in queries:
        key = normalise_query(q)
        if len(out) == k:
            break
        if key and q != REJECT and key not in seen and not blocked(q, block_list):
            out.append(q)
            seen.add(key)
    return out or [REJECT]


def blocked_items(ds: Dataset, block_list: Sequence[str]) -> np.ndarray:
    """(n_items,) bool: the item's text (title, brand, categories, tags, description) contains a
    blocked term."""
    return np.array([blocked(t, block_list) for t in item_texts(ds.items)], dtype=bool)


def plant_unsafe(ds: Dataset, block_list: Sequence[str], share: float, seed: int
                 ) -> tuple[Dataset, np.ndarray]:
    """A copy of ``ds`` where ``round(share * n_items)`` seeded items have a block-list term
    appended to their title; returns (dataset, sorted planted item ids). The copy's manifest
    drops the file hashes (its items differ from the saved files)."""
    if not block_list and share > 0:
        raise ValueError("plant_unsafe: an empty block list has no term to plant")
    rng = np.random.default_rng(seed)
    n = int(round(share * ds.n_items))
    planted = np.sort(rng.permutation(ds.n_items)[:n])
    terms = {int(i): block_list[int(rng.integers(len(block_list)))] for i in planted}
    items = ds.items.sort("item")
    titles = [f"{t or ''} {terms[i]}".strip() if i in terms else t
              for i, t in enumerate(items["title"].to_list())]
    items = items.with_columns(pl.Series("title", titles, dtype=pl.Utf8))
    manifest = {k: v for k, v in ds.manifest.items() if k != "files"}
    manifest["onebar_planted"] = {"share": share, "seed": seed, "n": n}
    return dataclasses.replace(ds, items=items, manifest=manifest), planted


def reject_items(ds: Dataset, index: EvidenceIndex, cfg: OneBarConfig) -> np.ndarray:
    """(n_items,) bool: the planted unsafe set (blocked text or too little evidence)."""
    weak = np.array([index.n_evidence(i) < cfg.min_evidence for i in range(ds.n_items)])
    return blocked_items(ds, cfg.block_list) | weak


def build_examples(ds: Dataset, index: EvidenceIndex, cfg: OneBarConfig,
                   splits: Sequence[str] = ("train", "valid", "test")) -> list[Example]:
    """Examples of ``splits`` in (split, user, position) order; see the module docstring."""
    users = UserQueries(ds)
    reject = reject_items(ds, index, cfg)
    out: list[Example] = []
    for split in splits:
        pairs = session_pairs(ds, "train") if split == "train" else eval_pairs(ds, split)
        for user, _, trigger, trigger_pos, query, _ in pairs.sort(["user", "position"]
                                                                  ).iter_rows():
            rej = bool(reject[trigger])
            history = users.before(user, trigger_pos, cfg.history_window)  # pairs.py docstring
            out.append(Example(user, trigger, REJECT if rej else query, rej, split,
                               tuple(history), query))
    return out


def example_evidence(index: EvidenceIndex, ex: Example, cfg: OneBarConfig) -> Evidence:
    """The evidence a model sees for ``ex``: a training example's own query is left out of its
    RAG counts once (leave-one-out, or every target would be in its own input); evaluation
    inputs are decontaminated of the target when ``cfg.decontaminate`` (OneBar §5.1)."""
    own = ex.query if ex.split == "train" else None
    exclude = ex.query if ex.split != "train" and cfg.decontaminate else None
    return index.evidence(ex.trigger, list(ex.history), own=own, exclude=exclude)
