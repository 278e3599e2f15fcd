"""Paired significance tests on per-case metric arrays (same cases, two systems)."""

from __future__ import annotations

import numpy as np
from scipy import stats


def _check(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"paired arrays must be 1-D and the same length, got {a.shape}, {b.shape}")
    return a, b


def paired_ttest(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sided paired t-test p-value; 1.0 when the two systems agree on every case."""
    a, b = _check(a, b)
    if len(a) < 2 or np.allclose(a - b, (a - b)[0]):
        return 1.0 if len(a) < 2 or np.allclose(a, b) else 0.0
    return float(stats.ttest_rel(a, b).pvalue)


def paired_bootstrap(a: np.ndarray, b: np.ndarray, n_boot: int = 2000, seed: int = 0) -> float:
    """Two-sided paired bootstrap p-value of mean(a) - mean(b) = 0.

    Resamples cases with replacement and counts how often the centred resampled difference is
    at least as extreme as the observed one (Efron & Tibshirani 1993, §16.4).
    """
    a, b = _check(a, b)
    d = a - b
    if len(d) == 0:
        return 1.0
    observed = d.mean()
    rng = np.random.default_rng(seed)
    means = np.empty(n_boot)
    for start in range(0, n_boot, 200):
        idx = rng.integers(0, len(d), size=(min(200, n_boot - start), len(d)))
        means[start:start + len(idx)] = d[idx].mean(axis=1)
    extreme = np.abs(means - observed) >= abs(observed) - 1e-12
    return float((extreme.sum() + 1) / (n_boot + 1))
