"""RQ-KMeans: greedy residual k-means (faiss) — the tokenizer the Spotify paper found best (§5).

Level ``l`` runs k-means on the residuals left by levels ``< l``; an item's code at each level
is its nearest centroid (exact, ties to the lowest index), and the residual it passes on is
``r - centroid``. ``fit`` runs on training items only; ``encode`` assigns any embedding (cold
items included) to those fixed centroids, so codes are a pure function of (centroids, vector).

``balanced=True`` (OneRec-style balanced RQ-KMeans) caps every code at ceil(n / k) training
items: greedy residual k-means in high dimensions sends most deep-level residuals to a few
near-zero centroids (hubness), which shows up as 15-25% collisions. Training items then get
their codes from ``encode_balanced`` (capacity-constrained, a deterministic function of the
training matrix and the centroids); cold items from plain ``encode``.

Large catalogues: ``sample`` > 0 fits the codebooks on a seeded sample of at most ``sample``
training rows (``fit_rows``); training rows outside it are then encoded like cold items
(nearest centroid). ``encode`` runs in batches of rows, so memory stays at one batch's
residuals whatever the catalogue size.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import ClassVar
from pathlib import Path

import numpy as np


@dataclass
class RQKMeansConfig:
    RANGES: ClassVar[dict[str, str]] = {"levels": ">= 1", "codebook_size": ">= 2", "niter": ">= 1",
                                        "sample": ">= 0"}
    levels: int = 3
    codebook_size: int = 256
    niter: int = 25  # k-means iterations per level
    seed: int = 0
    balanced: bool = False  # capacity-constrained assignment (see module doc)
    sample: int = 0  # fit on at most this many training rows (seeded sample); 0 = all


# level, residual (n, d), centroids (k, d), codes of earlier levels (n, level), code (n,)
Refine = Callable[[int, np.ndarray, np.ndarray, np.ndarray, np.ndarray],
                  tuple[np.ndarray, np.ndarray]]

ENCODE_BATCH = 65536  # rows per ``encode`` batch (~100 MB of float32 residuals at d = 384)


def fit_rows(n: int, sample: int, seed: int) -> np.ndarray:
    """(m,) ascending indices of the rows ``RQKMeans.fit`` uses out of ``n``: all of them, or
    a seeded sample of ``sample`` when ``0 < sample < n``."""
    if not sample or n <= sample:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, sample, replace=False))


def nearest(x: np.ndarray, centroids: np.ndarray, chunk: int = 8192) -> np.ndarray:
    """Index of the nearest centroid for each row (squared L2, float64, ties -> lowest index).

    x: (n, d); centroids: (k, d). Returns (n,) int64.
    """
    c = centroids.astype(np.float64)
    c_sq = (c * c).sum(1)
    out = np.empty(x.shape[0], dtype=np.int64)
    for start in range(0, x.shape[0], chunk):
        xb = x[start:start + chunk].astype(np.float64)
        dist = c_sq[None, :] - 2.0 * xb @ c.T  # ||x||^2 is constant per row
        out[start:start + chunk] = dist.argmin(1)
    return out


def kmeans_plus_plus(x: np.ndarray, k: int, seed: int, sample: int = 16) -> np.ndarray:
    """k-means++ seeding (Arthur & Vassilvitskii 2007) on a seeded subsample of at most
    ``sample * k`` rows (keeps seeding cheap next to Lloyd's iterations). (k, d) rows of x."""
    rng = np.random.default_rng(seed)
    pool = np.sort(rng.permutation(x.shape[0])[:sample * k]) if x.shape[0] > sample * k else \
        np.arange(x.shape[0])
    xs = x[pool].astype(np.float32)
    sq = (xs * xs).sum(1)
    chosen = [int(rng.integers(xs.shape[0]))]
    dist = np.maximum(sq - 2.0 * xs @ xs[chosen[0]] + sq[chosen[0]], 0.0).astype(np.float64)
    for _ in range(1, k):
        total = dist.sum()
        nxt = int(rng.choice(xs.shape[0], p=dist / total)) if total > 0 else int(
            rng.integers(xs.shape[0]))
        chosen.append(nxt)
        dist = np.minimum(dist, np.maximum(sq - 2.0 * xs @ xs[nxt] + sq[nxt], 0.0))
    return x[pool[chosen]].astype(np.float32)


def kmeans(x: np.ndarray, k: int, niter: int, seed: int) -> np.ndarray:
    """faiss k-means (k-means++ init) centroids (k', d) float32, k' = min(k, distinct rows);
    single-threaded so the result depends only on (x, k, niter, seed)."""
    import faiss

    x = np.ascontiguousarray(x, dtype=np.float32)
    distinct = np.unique(x, axis=0).shape[0]
    k = max(1, min(k, distinct))
    if k == 1:
        return x.mean(0, keepdims=True).astype(np.float32)
    if k == distinct:  # every distinct point is its own centroid
        return np.unique(x, axis=0).astype(np.float32)
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        km = faiss.Kmeans(x.shape[1], k, niter=niter, seed=seed, verbose=False,
                          max_points_per_centroid=1_000_000)
        km.train(x, init_centroids=kmeans_plus_plus(x, k, seed))
    finally:
        faiss.omp_set_num_threads(threads)
    return np.asarray(km.centroids, dtype=np.float32).copy()


def distances(x: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """(n, k) squared L2 distances up to a per-row constant, float64."""
    c = centroids.astype(np.float64)
    return (c * c).sum(1)[None, :] - 2.0 * x.astype(np.float64) @ c.T


def balanced_assign(dist: np.ndarray, capacity: int) -> np.ndarray:
    """Assign rows to columns, at most ``capacity`` rows per column, greedily by distance.

    Each round every unassigned row proposes its nearest non-full column; a column accepts its
    closest proposals up to its free capacity (ties: lower row index). dist: (n, k) with
    n <= k * capacity. Returns (n,) int64.
    """
    n, k = dist.shape
    if n > k * capacity:
        raise ValueError(f"balanced_assign: {n} rows do not fit {k} x {capacity}")
    assign = np.full(n, -1, dtype=np.int64)
    load = np.zeros(k, dtype=np.int64)
    while (todo := np.flatnonzero(assign < 0)).size:
        d = dist[todo].copy()
        d[:, load >= capacity] = np.inf
        choice = d.argmin(1)
        order = np.lexsort((todo, d[np.arange(todo.size), choice], choice))
        chosen = choice[order]
        starts = np.r_[0, np.flatnonzero(np.diff(chosen)) + 1]
        rank = np.arange(chosen.size) - np.repeat(starts, np.diff(np.r_[starts, chosen.size]))
        ok = rank < (capacity - load)[chosen]
        assign[todo[order[ok]]] = chosen[ok]
        load += np.bincount(chosen[ok], minlength=k)
    return assign


def balanced_kmeans(x: np.ndarray, k: int, niter: int, seed: int) -> np.ndarray:
    """Lloyd iterations with capacity-constrained assignment; k-means++ init. (k', d)."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    distinct = np.unique(x, axis=0)
    k = max(1, min(k, distinct.shape[0]))
    if k == distinct.shape[0]:
        return distinct.astype(np.float32)
    capacity = -(-x.shape[0] // k)
    c = kmeans_plus_plus(x, k, seed).astype(np.float64)
    for _ in range(niter):
        assign = balanced_assign(distances(x, c), capacity)
        sums = np.zeros_like(c)
        np.add.at(sums, assign, x.astype(np.float64))
        counts = np.bincount(assign, minlength=k)[:, None]
        c = np.where(counts > 0, sums / np.maximum(counts, 1), c)
    return c.astype(np.float32)


class RQKMeans:
    """Fitted residual codebooks: ``centroids[l]`` is (k_l, d) float32."""

    def __init__(self, centroids: list[np.ndarray], config: RQKMeansConfig | None = None,
                 assigned: np.ndarray | None = None):
        if not centroids:
            raise ValueError("RQKMeans needs at least one level")
        self.centroids = [np.asarray(c, dtype=np.float32) for c in centroids]
        self.config = config or RQKMeansConfig(levels=len(centroids))
        # codes of the fit rows when ``fit`` refined them (behaviour calibration): they are not
        # a function of (centroids, vectors) any more, so they are kept with the codebooks
        self.assigned = None if assigned is None else np.asarray(assigned, dtype=np.int64)

    @property
    def codebook_sizes(self) -> tuple[int, ...]:
        return tuple(int(c.shape[0]) for c in self.centroids)

    @property
    def dim(self) -> int:
        return int(self.centroids[0].shape[1])

    @classmethod
    def fit(cls, x: np.ndarray, cfg: RQKMeansConfig, refine: Refine | None = None) -> "RQKMeans":
        """Fit ``cfg.levels`` codebooks on (n, d) training vectors (on ``fit_rows`` of them).

        ``refine(level, residual, centroids, earlier_codes, code) -> (code, centroids)`` may
        change each level's assignment (and centroids) before the residual is passed on
        (``onefeed.sid.calibrate``); the fit rows' final codes are then kept as ``assigned``.
        """
        if x.ndim != 2 or x.shape[0] == 0:
            raise ValueError(f"RQKMeans.fit: expected a non-empty (n, d) array, got {x.shape}")
        rows = fit_rows(x.shape[0], cfg.sample, cfg.seed)
        residual = (x[rows] if len(rows) < x.shape[0] else x).astype(np.float32, copy=True)
        centroids, codes = [], []
        for level in range(cfg.levels):
            if cfg.balanced:
                c = balanced_kmeans(residual, cfg.codebook_size, cfg.niter, cfg.seed + level)
                code = balanced_assign(distances(residual, c), -(-residual.shape[0] // len(c)))
            else:
                c = kmeans(residual, cfg.codebook_size, cfg.niter, cfg.seed + level)
                code = nearest(residual, c)
            if refine is not None:
                earlier = np.stack(codes, 1) if codes else np.zeros((len(code), 0), np.int64)
                code, c = refine(level, residual, c, earlier, code)
            residual -= c[code]
            centroids.append(c)
            codes.append(code)
        return cls(centroids, cfg, np.stack(codes, 1) if refine is not None else None)

    def encode_split(self, x: np.ndarray, train: np.ndarray,
                     progress: Callable[[int], None] | None = None) -> np.ndarray:
        """Codes for all rows: the rows ``fit`` used as it assigned them (balanced when the
        config says so), other rows (cold items, training rows outside the fit sample) by
        nearest centroid. x: (n, d); train: (n,) bool; ``progress(rows)`` after each batch."""
        codes = np.empty((x.shape[0], len(self.centroids)), dtype=np.int64)
        train_idx = np.flatnonzero(train)
        fitted = train_idx[fit_rows(len(train_idx), self.config.sample, self.config.seed)]
        if self.assigned is not None:
            if self.assigned.shape[0] != len(fitted):
                raise ValueError(f"RQKMeans.encode_split: the codebooks keep codes for "
                                 f"{self.assigned.shape[0]} fit rows but this train mask gives "
                                 f"{len(fitted)}")
            codes[fitted] = self.assigned
        elif len(fitted) and self.config.balanced:
            codes[fitted] = self.encode_balanced(x[fitted])
            if progress:
                progress(len(fitted))
        rest = np.ones(x.shape[0], dtype=bool)
        if self.config.balanced or self.assigned is not None:
            rest[fitted] = False
        rest_idx = np.flatnonzero(rest)
        for start in range(0, len(rest_idx), ENCODE_BATCH):
            rows = rest_idx[start:start + ENCODE_BATCH]
            codes[rows] = self.encode(x[rows])
            if progress:
                progress(len(rows))
        return codes

    def encode_balanced(self, x: np.ndarray) -> np.ndarray:
        """Capacity-constrained codes of a whole training matrix (the codes ``fit`` used when
        ``balanced``): per level, at most ceil(n / k) rows per code. (n, d) -> (n, levels)."""
        residual = x.astype(np.float32).copy()
        codes = np.empty((x.shape[0], len(self.centroids)), dtype=np.int64)
        for level, c in enumerate(self.centroids):
            codes[:, level] = balanced_assign(distances(residual, c),
                                              -(-residual.shape[0] // len(c)))
            residual -= c[codes[:, level]]
        return codes

    def encode(self, x: np.ndarray) -> np.ndarray:
        """(n, d) -> codes (n, levels) int64 (in batches of ``ENCODE_BATCH`` rows)."""
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"RQKMeans.encode: expected (n, {self.dim}), got {x.shape}")
        codes = np.empty((x.shape[0], len(self.centroids)), dtype=np.int64)
        for start in range(0, x.shape[0], ENCODE_BATCH):
            residual = x[start:start + ENCODE_BATCH].astype(np.float32, copy=True)
            for level, c in enumerate(self.centroids):
                code = nearest(residual, c)
                codes[start:start + len(code), level] = code
                residual -= c[code]
        return codes

    def decode(self, codes: np.ndarray, levels: int | None = None) -> np.ndarray:
        """Sum of the first ``levels`` (default all) code vectors -> (n, d) float32."""
        levels = codes.shape[1] if levels is None else levels
        out = np.zeros((codes.shape[0], self.dim), dtype=np.float32)
        for level in range(levels):
            out += self.centroids[level][codes[:, level]]
        return out

    def residual_errors(self, x: np.ndarray, codes: np.ndarray | None = None) -> list[float]:
        """Mean squared reconstruction error after 1, 2, ..., L levels (codes default: nearest)."""
        codes = self.encode(x) if codes is None else codes
        return [float(((x - self.decode(codes, level)) ** 2).sum(1).mean())
                for level in range(1, len(self.centroids) + 1)]

    def save(self, path: str | Path) -> None:
        """Write centroids to a safetensors file (config in its metadata)."""
        from safetensors.numpy import save_file

        tensors = {f"level{i}": np.ascontiguousarray(c) for i, c in enumerate(self.centroids)}
        if self.assigned is not None:
            tensors["assigned"] = np.ascontiguousarray(self.assigned)
        save_file(tensors, str(path),
                  metadata={"config": json.dumps(asdict(self.config)), "kind": "rq_kmeans"})

    @classmethod
    def load(cls, path: str | Path) -> "RQKMeans":
        from safetensors import safe_open

        with safe_open(str(path), framework="numpy") as fh:
            meta = fh.metadata() or {}
            n = len([k for k in fh.keys() if k.startswith("level")])
            centroids = [fh.get_tensor(f"level{i}") for i in range(n)]
            assigned = fh.get_tensor("assigned") if "assigned" in fh.keys() else None
        cfg = RQKMeansConfig(**json.loads(meta["config"])) if "config" in meta else None
        return cls(centroids, cfg, assigned)
