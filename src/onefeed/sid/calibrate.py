"""Behaviour-aware SID calibration (OneFeed §3.4): move items that users co-click or co-search
toward shared prefixes, after content quantisation.

Stage 1 is content RQ-KMeans. Stage 2, at each of the first ``levels`` code levels, refines
the training items' assignment against a behaviour graph built from training events only:

* co-click: two items within ``window`` positions of each other in a user's train-split item
  sequence (rec and search clicks), weight 1 / distance;
* co-search: two items clicked for the same train-split query text, weight 1 / (m - 1) for a
  query whose clicks cover m items (queries covering more than ``max_query_items`` are too
  generic and are skipped).

Level ``l`` (prefixes of levels < l fixed) scores a move of item i from its code to code k as

    gain(i, k) = weight * (V[i, k] - V[i, code_i]) - (D[i, k] - D[i, code_i]) / s

where ``V[i, k]`` is the graph weight of i's neighbours *with the same prefix* that hold code k,
divided by (that neighbours' total weight + ``smoothing``) — so one co-click is weak evidence
and many are strong — ``D`` the squared distance of i's residual to the level's centroids and
``s`` the median margin between the nearest and second-nearest centroid over training items
(makes ``weight`` scale-free: at weight 1, an item all of whose neighbours agree moves when
its content cost is below about one typical margin). Candidate codes are those its neighbours
hold. Each of ``rounds`` rounds moves a seeded random half of the items with a positive gain
(synchronous moves of all of them would swap mutually linked pairs forever). The level's
centroids are then re-estimated as the means of their members' residuals, so the residual each
item passes on, and the nearest-centroid code a cold item gets, follow the calibrated clusters.

Cold items have no training interactions; they keep content-only codes (nearest centroid).
``weight = 0`` leaves the content IDs untouched.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import polars as pl
from scipy import sparse

from onefeed.sid.rq_kmeans import distances


@dataclass
class CalibrationConfig:
    RANGES: ClassVar[dict[str, str]] = {"weight": ">= 0", "levels": ">= 0", "window": ">= 1",
        "max_query_items": ">= 2", "rounds": ">= 1", "smoothing": ">= 0"}
    weight: float = 0.0  # 0 = off: plain content IDs
    levels: int = 2  # calibrate code levels 0 .. levels-1 (the prefixes the decoder shares)
    window: int = 3  # co-click pairs: items at most this many positions apart
    co_search: bool = True  # also link items clicked for the same training query
    max_query_items: int = 50  # skip queries whose clicks cover more items than this
    rounds: int = 4
    smoothing: float = 1.0  # V = neighbour weight at k / (neighbour weight + smoothing)


def behaviour_graph(events: pl.DataFrame, n_items: int, cfg: CalibrationConfig) -> sparse.csr_matrix:
    """Symmetric (n_items, n_items) co-click + co-search weights, zero diagonal.

    ``events``: item events (columns user, item, position, behaviour, query), every row of which
    the caller has checked is a training event.
    """
    ev = events.sort(["user", "position"])
    users = ev["user"].to_numpy().astype(np.int64)
    items = ev["item"].to_numpy().astype(np.int64)
    rows, cols, vals = [], [], []
    for d in range(1, cfg.window + 1):
        same = users[:-d] == users[d:]
        a, b = items[:-d][same], items[d:][same]
        rows += [a, b]
        cols += [b, a]
        vals.append(np.full(2 * a.size, 1.0 / d))
    graph = sparse.coo_matrix((np.concatenate(vals) if vals else np.empty(0),
                               (np.concatenate(rows) if rows else np.empty(0, np.int64),
                                np.concatenate(cols) if cols else np.empty(0, np.int64))),
                              shape=(n_items, n_items)).tocsr()
    if cfg.co_search and "query" in ev.columns:
        graph = graph + co_search_graph(ev, n_items, cfg.max_query_items)
    graph.setdiag(0.0)
    graph.eliminate_zeros()
    return graph


def co_search_graph(events: pl.DataFrame, n_items: int, max_items: int) -> sparse.csr_matrix:
    """Items clicked for the same (lower-cased, stripped) query: weight 1 / (m - 1) per query
    covering m items, 2 <= m <= ``max_items``."""
    clicks = (events.filter((pl.col("behaviour") == "search_click") & pl.col("query").is_not_null())
              .select(pl.col("query").str.to_lowercase().str.strip_chars(), "item").unique())
    sizes = clicks.group_by("query").agg(pl.len().alias("m"))
    clicks = (clicks.join(sizes, on="query").filter((pl.col("m") >= 2) & (pl.col("m") <= max_items))
              .with_columns(pl.col("query").rank("dense").cast(pl.Int64).alias("q") - 1))
    if clicks.height == 0:
        return sparse.csr_matrix((n_items, n_items))
    m = clicks["m"].to_numpy().astype(np.float64)
    incidence = sparse.csr_matrix((np.sqrt(1.0 / (m - 1)), (clicks["item"].to_numpy(),
                                   clicks["q"].to_numpy())), shape=(n_items, int(clicks["q"].max()) + 1))
    return (incidence @ incidence.T).tocsr()


def prefix_agreement(codes: np.ndarray, graph: sparse.csr_matrix, depth: int) -> float:
    """Share of the graph's weight on pairs whose codes agree on the first ``depth`` levels."""
    coo = graph.tocoo()
    if coo.nnz == 0 or depth == 0:
        return float("nan") if coo.nnz == 0 else 1.0
    same = (codes[coo.row, :depth] == codes[coo.col, :depth]).all(1)
    return float(coo.data[same].sum() / coo.data.sum())


def _pair_distances(residual: np.ndarray, centroids: np.ndarray, rows: np.ndarray,
                    codes: np.ndarray, chunk: int = 8192) -> np.ndarray:
    """D[rows[p], codes[p]] (up to a per-row constant), in row chunks; rows ascending."""
    out = np.empty(rows.size)
    starts = np.searchsorted(rows, np.arange(0, residual.shape[0] + chunk, chunk))
    for c0, (lo, hi) in enumerate(zip(starts[:-1], starts[1:])):
        if lo == hi:
            continue
        base = c0 * chunk
        dist = distances(residual[base:base + chunk], centroids)
        out[lo:hi] = dist[rows[lo:hi] - base, codes[lo:hi]]
    return out


def margin(residual: np.ndarray, centroids: np.ndarray, chunk: int = 8192) -> float:
    """Median gap between the nearest and second-nearest centroid's squared distance."""
    if centroids.shape[0] < 2:
        return 1.0
    gaps = []
    for start in range(0, residual.shape[0], chunk):
        part = np.partition(distances(residual[start:start + chunk], centroids), 1, axis=1)
        gaps.append(part[:, 1] - part[:, 0])
    s = float(np.median(np.concatenate(gaps)))
    return s if s > 0 else 1.0


def calibrate_level(residual: np.ndarray, centroids: np.ndarray, code: np.ndarray,
                    prefix: np.ndarray, graph: sparse.csr_matrix, cfg: CalibrationConfig,
                    seed: int) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """One level of the refinement in the module docstring.

    residual: (n, d) entering the level; centroids: (k, d); code: (n,) content assignment;
    prefix: (n,) int64 key of the codes at earlier levels; graph: (n, n) over the same rows.
    Returns (codes, re-estimated centroids, {"moved", "rounds_run"}).
    """
    n, k = residual.shape[0], centroids.shape[0]
    coo = graph.tocoo()
    keep = prefix[coo.row] == prefix[coo.col]
    src, dst, w = coo.row[keep].astype(np.int64), coo.col[keep].astype(np.int64), coo.data[keep]
    degree = np.maximum(np.bincount(src, weights=w, minlength=n) + cfg.smoothing, 1e-12)
    scale = margin(residual, centroids)
    rng = np.random.default_rng(seed)
    code = code.astype(np.int64).copy()
    start = code.copy()
    rounds_run = 0
    for _ in range(cfg.rounds):
        votes = sparse.coo_matrix((w, (src, code[dst])), shape=(n, k)).tocsr()
        votes.sum_duplicates()
        vc = votes.tocoo()
        if vc.nnz == 0:
            break
        rows, cand, v = vc.row.astype(np.int64), vc.col.astype(np.int64), vc.data / degree[vc.row]
        v_cur = np.asarray(votes[np.arange(n), code]).ravel() / degree
        order = np.argsort(rows, kind="stable")
        rows, cand, v = rows[order], cand[order], v[order]
        d_cand = _pair_distances(residual, centroids, rows, cand)
        d_cur = _pair_distances(residual, centroids, rows, code[rows])
        gain = cfg.weight * (v - v_cur[rows]) - (d_cand - d_cur) / scale
        best = np.lexsort((-gain, rows))  # per row, the best candidate first
        first = best[np.r_[True, rows[best][1:] != rows[best][:-1]]]
        movers = first[gain[first] > 0]
        if movers.size == 0:
            break
        movers = movers[rng.random(movers.size) < 0.5] if movers.size > 1 else movers
        code[rows[movers]] = cand[movers]
        rounds_run += 1
    members = sparse.csr_matrix((np.ones(n), (code, np.arange(n))), shape=(k, n))
    sums = np.asarray(members @ residual.astype(np.float64))
    counts = np.bincount(code, minlength=k)[:, None]
    new = np.where(counts > 0, sums / np.maximum(counts, 1), centroids).astype(np.float32)
    return code, new, {"moved": int((code != start).sum()), "rounds_run": rounds_run,
                       "margin": scale}


class Calibrator:
    """The ``refine`` hook ``RQKMeans.fit`` calls after assigning each level (fit rows only)."""

    def __init__(self, graph: sparse.csr_matrix, cfg: CalibrationConfig, seed: int):
        self.graph, self.cfg, self.seed = graph, cfg, seed
        self.log: list[dict[str, Any]] = []

    def __call__(self, level: int, residual: np.ndarray, centroids: np.ndarray,
                 earlier: np.ndarray, code: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if level >= self.cfg.levels or self.cfg.weight == 0:
            return code, centroids
        prefix = prefix_keys(earlier)
        new_code, new_centroids, info = calibrate_level(
            residual, centroids, code, prefix, self.graph, self.cfg, self.seed + 7919 * level)
        self.log.append({"level": level, **info})
        return new_code, new_centroids


def prefix_keys(codes: np.ndarray) -> np.ndarray:
    """(n,) int64 id of each row's code prefix (rows of ``codes`` (n, l); l = 0 -> all 0)."""
    if codes.shape[1] == 0:
        return np.zeros(codes.shape[0], dtype=np.int64)
    return np.unique(codes, axis=0, return_inverse=True)[1].reshape(-1).astype(np.int64)
