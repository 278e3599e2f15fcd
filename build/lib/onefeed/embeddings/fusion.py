"""Embedding-combined IDs (Spotify "Semantic IDs for joint search and rec" §3.2).

* ``fused_concat``: L2-normalise each embedding, concatenate.
* ``fused_svd``: reduce each to the same width ``d`` with a truncated SVD, L2-normalise, add.
"""

from __future__ import annotations

import numpy as np


def l2_normalise(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit norm; all-zero rows stay zero. (n, d) -> (n, d) float32."""
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.maximum(norms, 1e-12)).astype(np.float32)


def svd_reduce(x: np.ndarray, dim: int) -> np.ndarray:
    """Project (n, d) onto its top-``dim`` right singular vectors (uncentred truncated SVD)."""
    if dim >= x.shape[1]:
        return x.astype(np.float32)
    x64 = x.astype(np.float64)
    _, _, vt = np.linalg.svd(x64, full_matrices=False)
    v = vt[:dim].T  # (d, <=dim): fewer rows than dim leaves fewer components
    # fixed sign per component: the largest-|.| loading is positive
    idx = np.abs(v).argmax(axis=0)
    v = v * np.where(v[idx, np.arange(v.shape[1])] < 0, -1.0, 1.0)
    out = x64 @ v
    if out.shape[1] < dim:
        out = np.pad(out, ((0, 0), (0, dim - out.shape[1])))
    return out.astype(np.float32)


def fused_concat(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Fused_concat: [a/|a|, b/|b|] -> (n, d_a + d_b)."""
    if a.shape[0] != b.shape[0]:
        raise ValueError(f"fused_concat: {a.shape[0]} rows vs {b.shape[0]} rows")
    return np.concatenate([l2_normalise(a), l2_normalise(b)], axis=1)


def fused_svd(a: np.ndarray, b: np.ndarray, dim: int | None = None) -> np.ndarray:
    """Fused_SVD: both reduced to ``dim`` (default min width), normalised, added -> (n, dim)."""
    if a.shape[0] != b.shape[0]:
        raise ValueError(f"fused_svd: {a.shape[0]} rows vs {b.shape[0]} rows")
    dim = dim or min(a.shape[1], b.shape[1])
    if dim > min(a.shape[1], b.shape[1]):
        raise ValueError(f"fused_svd: dim {dim} exceeds an input width {a.shape[1]}/{b.shape[1]}")
    return l2_normalise(svd_reduce(a, dim)) + l2_normalise(svd_reduce(b, dim))
