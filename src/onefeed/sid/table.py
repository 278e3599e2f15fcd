"""The item <-> semantic-ID table every generative model reads.

``codes[i]`` is item ``i``'s code tuple (one int per level, the last level possibly a
disambiguation code added to make every row unique). Saved as ``sid_table.parquet``
(item, c0..c{L-1}) + ``sid_table.json`` (codebook sizes and provenance).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl


@dataclass(frozen=True)
class SidTable:
    codes: np.ndarray  # (n_items, n_levels) int64, each row unique
    codebook_sizes: tuple[int, ...]  # (n_levels,) number of codes per level
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.codes.ndim != 2 or self.codes.shape[1] != len(self.codebook_sizes):
            raise ValueError(f"codes shape {self.codes.shape} does not match "
                             f"{len(self.codebook_sizes)} codebook sizes")
        if (self.codes < 0).any() or (self.codes >= np.asarray(self.codebook_sizes)).any():
            raise ValueError("a code lies outside its level's codebook")

    @property
    def n_items(self) -> int:
        return int(self.codes.shape[0])

    @property
    def n_levels(self) -> int:
        return int(self.codes.shape[1])

    def is_unique(self) -> bool:
        return np.unique(self.codes, axis=0).shape[0] == self.n_items

    def save(self, directory: str | Path) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        frame = pl.DataFrame({"item": np.arange(self.n_items, dtype=np.int32),
                              **{f"c{j}": self.codes[:, j] for j in range(self.n_levels)}})
        frame.write_parquet(directory / "sid_table.parquet")
        (directory / "sid_table.json").write_text(json.dumps(
            {"codebook_sizes": list(self.codebook_sizes), "meta": self.meta}, indent=2,
            default=str))

    @classmethod
    def load(cls, directory: str | Path) -> "SidTable":
        from onefeed.artifacts import ArtifactError

        directory = Path(directory)
        if not (directory / "sid_table.json").is_file():
            raise ArtifactError(f"{directory}: not a SID table dir (no sid_table.json); run "
                                "onefeed sid build")
        try:
            info = json.loads((directory / "sid_table.json").read_text())
            frame = pl.read_parquet(directory / "sid_table.parquet").sort("item")
            sizes = tuple(int(s) for s in info["codebook_sizes"])
            codes = np.stack([frame[f"c{j}"].to_numpy() for j in range(len(sizes))], axis=1)
            return cls(codes.astype(np.int64), sizes, info.get("meta", {}))
        except (OSError, ValueError, KeyError, TypeError, AttributeError,
                pl.exceptions.PolarsError) as exc:  # a corrupt or foreign file
            raise ArtifactError(f"{directory}: unreadable SID table ({type(exc).__name__}: "
                                f"{str(exc)[:200]})") from None
