"""Diagnostics a person reads to judge whether IDs are semantic (``onefeed sid inspect``).

* collision rate (GenSAR §4.4.2) of the codes before the disambiguation level;
* codebook utilisation and perplexity per level; a PNG of code usage per level;
* items sharing a first-level / first-two-level prefix (titles);
* semantic coherence: P(share category | share first-level code) / P(share category | random
  pair), exact for "same leaf category", sampled (seeded) for "share any category label";
* behaviour agreement (``behaviour_agreement``): the share of the training co-click/co-search
  graph's weight, and of validation next-item transitions (last history item -> valid
  target), whose two items share a 1- and 2-level prefix — what behaviour-aware calibration
  (``onefeed.sid.calibrate``) raises.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import polars as pl

from onefeed.sid.collisions import collision_rate, group_ids, perplexity, utilisation
from onefeed.sid.table import SidTable


def semantic_codes(table: SidTable) -> np.ndarray:
    """Codes without the disambiguation level (when the table has one)."""
    if table.meta.get("disambiguation_level"):
        return table.codes[:, :-1]
    return table.codes


def _pairs_within(groups: np.ndarray) -> float:
    counts = np.bincount(groups).astype(np.float64)
    return float((counts * (counts - 1) / 2).sum())


def leaf_coherence(first: np.ndarray, leaf: np.ndarray) -> dict[str, float]:
    """Exact P(same leaf | same code) / P(same leaf | random pair); leaf -1 = unknown."""
    known = leaf >= 0
    first, leaf = first[known], leaf[known]
    n = first.size
    if n < 2:
        return {"p_same_code": float("nan"), "p_random": float("nan"), "ratio": float("nan")}
    both = group_ids(np.stack([first, leaf], 1))
    same_code = _pairs_within(first)
    p_code = _pairs_within(both) / same_code if same_code else float("nan")
    p_rand = _pairs_within(leaf) / (n * (n - 1) / 2)
    return {"p_same_code": p_code, "p_random": p_rand,
            "ratio": p_code / p_rand if p_rand else float("nan")}


def any_category_coherence(first: np.ndarray, cats: list[set[str]], n_pairs: int = 20000,
                           seed: int = 0) -> dict[str, float]:
    """Sampled P(share any category label | same first code) / P(... | random pair)."""
    rng = np.random.default_rng(seed)
    n = len(cats)
    members: dict[int, np.ndarray] = {}
    for code in np.unique(first):
        idx = np.flatnonzero(first == code)
        if idx.size > 1:
            members[int(code)] = idx
    if not members or n < 2:
        return {"p_same_code": float("nan"), "p_random": float("nan"), "ratio": float("nan")}
    keys = np.array(sorted(members))
    weight = np.array([members[k].size * (members[k].size - 1) / 2 for k in keys])
    picks = rng.choice(keys, size=n_pairs, p=weight / weight.sum())
    hits = 0
    for code in picks:
        a, b = rng.choice(members[int(code)], size=2, replace=False)
        hits += bool(cats[a] & cats[b])
    rand_hits = 0
    for _ in range(n_pairs):
        a, b = rng.choice(n, size=2, replace=False)
        rand_hits += bool(cats[a] & cats[b])
    p_code, p_rand = hits / n_pairs, rand_hits / n_pairs
    return {"p_same_code": p_code, "p_random": p_rand,
            "ratio": p_code / p_rand if p_rand else float("nan")}


def prefix_examples(codes: np.ndarray, titles: list[str], depth: int, n_groups: int = 3,
                    per_group: int = 5) -> list[dict[str, Any]]:
    """The ``n_groups`` largest groups of items sharing the first ``depth`` codes."""
    prefix = codes[:, :depth]
    groups = group_ids(prefix)
    counts = np.bincount(groups)
    out = []
    for g in np.argsort(-counts, kind="stable")[:n_groups]:
        idx = np.flatnonzero(groups == g)
        out.append({"prefix": prefix[idx[0]].tolist(), "n_items": int(idx.size),
                    "titles": [titles[i] for i in idx[:per_group]]})
    return out


class BehaviourPairs(NamedTuple):
    """What ``behaviour_agreement`` scores codes against (one dataset, any number of tables)."""

    graph: Any  # scipy.sparse (n_items, n_items): training co-click + co-search weights
    last: np.ndarray  # (m,) last history item of each validation case with a history
    target: np.ndarray  # (m,) its validation target


def behaviour_pairs(ds, max_history: int = 20) -> BehaviourPairs:
    """The training behaviour graph (default ``CalibrationConfig``) and the validation
    next-item pairs of ``ds``; build once, score many tables."""
    from onefeed.data.views import rec_cases
    from onefeed.sid.build import graph_events
    from onefeed.sid.calibrate import CalibrationConfig, behaviour_graph

    cases = rec_cases(ds, "valid", max_history)
    ok = cases.history[:, -1] >= 0
    return BehaviourPairs(behaviour_graph(graph_events(ds), ds.n_items, CalibrationConfig()),
                          cases.history[ok, -1], cases.targets[ok])


def behaviour_agreement(codes: np.ndarray, pairs: BehaviourPairs) -> dict[str, list[float]]:
    """{"train_graph": [depth 1, depth 2], "valid_next": [depth 1, depth 2]} (see module doc);
    codes: (n_items, levels) without the disambiguation level."""
    from onefeed.sid.calibrate import prefix_agreement

    depths = [d for d in (1, 2) if d <= codes.shape[1]]
    nxt = [float((codes[pairs.last, :d] == codes[pairs.target, :d]).all(1).mean())
           if pairs.last.size else float("nan") for d in depths]
    return {"train_graph": [round(prefix_agreement(codes, pairs.graph, d), 4) for d in depths],
            "valid_next": [round(v, 4) for v in nxt]}


def diagnose(table: SidTable, items: pl.DataFrame | None = None, seed: int = 0) -> dict[str, Any]:
    """All diagnostics as plain data (items: a Dataset.items frame, for titles and categories)."""
    codes = semantic_codes(table)
    sizes = table.codebook_sizes
    report: dict[str, Any] = {
        "n_items": table.n_items, "n_levels": table.n_levels,
        "codebook_sizes": list(sizes), "unique": table.is_unique(),
        "collision_rate": collision_rate(codes),
        "utilisation": utilisation(table.codes, sizes),
        "perplexity": perplexity(table.codes, sizes)}
    if items is None:
        return report
    items = items.sort("item")
    titles = [t or f"item {i}" for i, t in enumerate(items["title"].to_list())] \
        if "title" in items.columns else [f"item {i}" for i in range(items.height)]
    report["examples"] = {f"prefix_{d}": prefix_examples(codes, titles, d)
                          for d in (1, 2) if codes.shape[1] >= d}
    cats = items["categories"].to_list() if "categories" in items.columns else [None] * items.height
    cats = [list(c) if c else [] for c in cats]
    if any(cats):
        leaf_names = [" > ".join(c) if c else None for c in cats]
        vocab = {name: i for i, name in enumerate(sorted({x for x in leaf_names if x}))}
        leaf = np.array([vocab[x] if x else -1 for x in leaf_names])
        report["coherence"] = {
            "same_category_path": leaf_coherence(codes[:, 0], leaf),
            "share_any_category": any_category_coherence(codes[:, 0], [set(c) for c in cats],
                                                         seed=seed)}
    return report


def plot_usage(table: SidTable, path: str | Path) -> Path:
    """PNG: per level, items per code sorted by frequency (log scale)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = table.n_levels
    fig, axes = plt.subplots(1, n, figsize=(3.2 * n, 2.8), squeeze=False)
    for j, ax in enumerate(axes[0]):
        counts = np.sort(np.bincount(table.codes[:, j], minlength=table.codebook_sizes[j]))[::-1]
        ax.bar(np.arange(counts.size), counts, width=1.0)
        ax.set_yscale("symlog")
        ax.set_title(f"level {j} ({int((counts > 0).sum())}/{counts.size} used)", fontsize=9)
        ax.set_xlabel("code (by frequency)", fontsize=8)
    axes[0][0].set_ylabel("items")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
