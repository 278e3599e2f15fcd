"""RQ-KMeans: greedy residual k-means (faiss) — the tokenizer the Spotify paper found best (§5).

Level ``l`` runs k-means on the residuals left by levels ``< l``; an item's code at each level
is its nearest centroid (exact, ties to the lowest index), and the residual it passes on is
``r - centroid``. ``fit`` runs on training items only; ``encode`` assigns any embedding (cold
items included) to those fixed centroids, so codes are a pure function of (centroids, vector).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np


@dataclass
class RQKMeansConfig:
    levels: int = 3
    codebook_size: int = 256
    niter: int = 25  # k-means iterations per level
    seed: int = 0


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


def kmeans_plus_plus(x: np.ndarray, k: int, seed: int) -> np.ndarray:
    """k-means++ seeding (Arthur & Vassilvitskii 2007): (k, d) rows of x, seeded."""
    rng = np.random.default_rng(seed)
    x64 = x.astype(np.float64)
    chosen = [int(rng.integers(x.shape[0]))]
    dist = ((x64 - x64[chosen[0]]) ** 2).sum(1)
    for _ in range(1, k):
        total = dist.sum()
        nxt = int(rng.choice(x.shape[0], p=dist / total)) if total > 0 else int(
            rng.integers(x.shape[0]))
        chosen.append(nxt)
        dist = np.minimum(dist, ((x64 - x64[nxt]) ** 2).sum(1))
    return x[chosen].astype(np.float32)


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


class RQKMeans:
    """Fitted residual codebooks: ``centroids[l]`` is (k_l, d) float32."""

    def __init__(self, centroids: list[np.ndarray], config: RQKMeansConfig | None = None):
        if not centroids:
            raise ValueError("RQKMeans needs at least one level")
        self.centroids = [np.asarray(c, dtype=np.float32) for c in centroids]
        self.config = config or RQKMeansConfig(levels=len(centroids))

    @property
    def codebook_sizes(self) -> tuple[int, ...]:
        return tuple(int(c.shape[0]) for c in self.centroids)

    @property
    def dim(self) -> int:
        return int(self.centroids[0].shape[1])

    @classmethod
    def fit(cls, x: np.ndarray, cfg: RQKMeansConfig) -> "RQKMeans":
        """Fit ``cfg.levels`` codebooks on (n, d) training vectors."""
        if x.ndim != 2 or x.shape[0] == 0:
            raise ValueError(f"RQKMeans.fit: expected a non-empty (n, d) array, got {x.shape}")
        residual = x.astype(np.float32).copy()
        centroids = []
        for level in range(cfg.levels):
            c = kmeans(residual, cfg.codebook_size, cfg.niter, cfg.seed + level)
            residual -= c[nearest(residual, c)]
            centroids.append(c)
        return cls(centroids, cfg)

    def encode(self, x: np.ndarray) -> np.ndarray:
        """(n, d) -> codes (n, levels) int64."""
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"RQKMeans.encode: expected (n, {self.dim}), got {x.shape}")
        residual = x.astype(np.float32).copy()
        codes = np.empty((x.shape[0], len(self.centroids)), dtype=np.int64)
        for level, c in enumerate(self.centroids):
            codes[:, level] = nearest(residual, c)
            residual -= c[codes[:, level]]
        return codes

    def decode(self, codes: np.ndarray, levels: int | None = None) -> np.ndarray:
        """Sum of the first ``levels`` (default all) code vectors -> (n, d) float32."""
        levels = codes.shape[1] if levels is None else levels
        out = np.zeros((codes.shape[0], self.dim), dtype=np.float32)
        for level in range(levels):
            out += self.centroids[level][codes[:, level]]
        return out

    def residual_errors(self, x: np.ndarray) -> list[float]:
        """Mean squared reconstruction error after 1, 2, ..., L levels."""
        codes = self.encode(x)
        return [float(((x - self.decode(codes, level)) ** 2).sum(1).mean())
                for level in range(1, len(self.centroids) + 1)]

    def save(self, path: str | Path) -> None:
        """Write centroids to a safetensors file (config in its metadata)."""
        from safetensors.numpy import save_file

        save_file({f"level{i}": np.ascontiguousarray(c) for i, c in enumerate(self.centroids)}, str(path),
                  metadata={"config": json.dumps(asdict(self.config)), "kind": "rq_kmeans"})

    @classmethod
    def load(cls, path: str | Path) -> "RQKMeans":
        from safetensors import safe_open

        with safe_open(str(path), framework="numpy") as fh:
            meta = fh.metadata() or {}
            n = len([k for k in fh.keys() if k.startswith("level")])
            centroids = [fh.get_tensor(f"level{i}") for i in range(n)]
        cfg = RQKMeansConfig(**json.loads(meta["config"])) if "config" in meta else None
        return cls(centroids, cfg)
