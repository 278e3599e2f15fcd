"""Where things live on disk. Raw data is never copied into the repo."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def raw_root(override: str | Path | None = None) -> Path:
    """Root folder of raw datasets: ``override``, else $ONEFEED_DATA_ROOT, else ../shared/datasets."""
    if override is not None:
        return Path(override)
    env = os.environ.get("ONEFEED_DATA_ROOT")
    if env:
        return Path(env)
    return REPO.parent / "shared" / "datasets"


def runs_root() -> Path:
    """Root of generated artifacts (prepared data, SIDs, checkpoints): $ONEFEED_RUNS or ./runs."""
    return Path(os.environ.get("ONEFEED_RUNS", "runs"))


def results_root() -> Path:
    return Path(os.environ.get("ONEFEED_RESULTS", REPO / "bench" / "results"))
