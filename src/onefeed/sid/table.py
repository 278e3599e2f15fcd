"""The item <-> semantic-ID table every generative model reads.

``codes[i]`` is item ``i``'s code tuple (one int per level, the last level possibly a
disambiguation code added to make every row unique). Saved as ``sid_table.parquet``
(item, c0..c{L-1}) + ``sid_table.json`` (codebook sizes and provenance).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

if TYPE_CHECKING:
    from onefeed.data.schemas import Dataset


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

    def check_dataset(self, data: "Dataset | str | Path") -> None:
        """Refuse ``data`` unless this table was built from it (:func:`check_dataset`)."""
        check_dataset(self, data)

    def is_unique(self) -> bool:
        return np.unique(self.codes, axis=0).shape[0] == self.n_items

    def save(self, directory: str | Path) -> None:
        """sid_table.parquet + sid_table.json (sizes, meta, and the parquet's sha256 and size)."""
        from onefeed.artifacts import hash_files

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        frame = pl.DataFrame({"item": np.arange(self.n_items, dtype=np.int32),
                              **{f"c{j}": self.codes[:, j] for j in range(self.n_levels)}})
        frame.write_parquet(directory / "sid_table.parquet")
        (directory / "sid_table.json").write_text(json.dumps(
            {"codebook_sizes": list(self.codebook_sizes), "meta": self.meta,
             "files": hash_files(directory, ["sid_table.parquet"])}, indent=2, default=str))

    @classmethod
    def load(cls, directory: str | Path, verify: bool = True) -> "SidTable":
        """Read a saved table; with ``verify`` the parquet (and, in a build directory, every file
        its manifest.json lists: codebooks, weights, embeddings) must match the recorded sha256
        (``ArtifactError`` naming the file). Items must be exactly 0..n-1."""
        from onefeed.artifacts import ArtifactError, read_json_object, recover

        directory = Path(directory)
        with contextlib.suppress(OSError):
            recover(directory)
        if not (directory / "sid_table.json").is_file():
            raise ArtifactError(f"{directory}: not a SID table dir (no sid_table.json); run "
                                "onefeed sid build")
        info = read_json_object(directory / "sid_table.json", f"{directory}: unreadable SID table")
        if verify:
            verify_sid(directory, info)
        try:
            frame = pl.read_parquet(directory / "sid_table.parquet").sort("item")
            sizes = tuple(int(s) for s in info["codebook_sizes"])
            codes = np.stack([frame[f"c{j}"].to_numpy() for j in range(len(sizes))], axis=1)
        except (OSError, ValueError, KeyError, TypeError, AttributeError,
                pl.exceptions.PolarsError) as exc:  # a corrupt or foreign file
            raise ArtifactError(f"{directory}: unreadable SID table ({type(exc).__name__}: "
                                f"{str(exc)[:200]})") from None
        if not np.array_equal(frame["item"].to_numpy(), np.arange(frame.height)):
            raise ArtifactError(f"SID table {directory}: column 'item' is not 0..{frame.height - 1}"
                                " (rows were removed, duplicated or renumbered)")
        return cls(codes.astype(np.int64), sizes, info.get("meta", {}))


def verify_sid(directory: str | Path, info: dict[str, Any] | None = None) -> None:
    """Check a SID table's files against sid_table.json and, when ``directory`` is a build
    output, against its manifest.json; tables from before file hashes load with a warning."""
    from onefeed.artifacts import verify_or_warn

    directory = Path(directory)
    info = info if info is not None else json.loads((directory / "sid_table.json").read_text())
    manifest = _manifest(directory, parent=False)
    if manifest is not None and manifest.get("files"):
        verify_or_warn(directory, manifest["files"], f"SID build {directory}")
    verify_or_warn(directory, info.get("files"), f"SID table {directory}")


def _manifest(sid_dir: Path, parent: bool = True) -> dict[str, Any] | None:
    """The build manifest (kind "sid") of ``sid_dir`` or, for a joint sub-table, of its parent."""
    for d in (sid_dir, sid_dir.parent) if parent else (sid_dir,):
        path = d / "manifest.json"
        if path.is_file():
            manifest = json.loads(path.read_text())
            if manifest.get("kind") == "sid":
                return manifest
    return None


def sid_fingerprint(sid_dir: str | Path) -> str:
    """sha256 over the SID build's file hashes (its manifest's, else hashed now): one id for
    the codes a model was trained on, to record as ``sid_sha256``."""
    from onefeed.artifacts import fingerprint, hash_files

    sid_dir = Path(sid_dir)
    manifest = _manifest(sid_dir, parent=False)
    files = manifest.get("files") if manifest else None
    return fingerprint(files or hash_files(sid_dir))


def _manifest_hashes(manifest: dict[str, Any]) -> set[str]:
    """sha256 of a dataset manifest as saved and as it was in memory before saving (without the
    ``kind`` / ``files`` that ``Dataset.save`` adds): what older SID builds recorded."""
    bare = {k: v for k, v in manifest.items() if k not in ("kind", "files")}
    return {hashlib.sha256(json.dumps(m, sort_keys=True, default=str).encode()).hexdigest()
            for m in (manifest, bare)}


def check_dataset(sid: "SidTable | str | Path", data: "Dataset | str | Path") -> None:
    """Refuse a SID table paired with a dataset other than the one it was built from.

    Compares the ``data_sha256`` the build recorded with ``dataset_fingerprint(data)``; for builds
    from before fingerprints, the recorded dataset-manifest sha256; always the item count.
    Raises ``ArtifactError`` saying how to fix it; warns once when nothing was recorded.
    """
    from onefeed.artifacts import ArtifactError, warn_once
    from onefeed.data.schemas import Dataset, dataset_fingerprint

    if isinstance(data, Dataset):
        data_label, data_arg = f"'{data.name}'", "<its directory>"
        manifest, n_items = data.manifest, data.n_items
    else:
        data_label = data_arg = str(data)
        manifest = json.loads((Path(data) / "manifest.json").read_text())
        n_items = pl.scan_parquet(Path(data) / "items.parquet").select(pl.len()).collect().item()
    if isinstance(sid, SidTable):
        table, sid_label, recorded = sid, "in memory", {"data_sha256": sid.meta.get("data_sha256")}
    else:
        sid_label = str(sid)
        table = SidTable.load(sid, verify=False)
        built = _manifest(Path(sid)) or {}
        recorded = {"data_sha256": built.get("data_sha256") or table.meta.get("data_sha256"),
                    "manifest_sha256": built.get("dataset", {}).get("manifest_sha256")}

    def refuse(built: str, have: str) -> None:
        raise ArtifactError(f"SID table {sid_label} was built from dataset fingerprint {built}, "
                            f"but dataset {data_label} has {have}: rebuild the SIDs (onefeed sid "
                            f"build --data {data_arg} --force) or pass the matching data")

    have = dataset_fingerprint(data)
    if recorded.get("data_sha256") and have:
        if recorded["data_sha256"] != have:
            refuse(recorded["data_sha256"][:16], have[:16])
    elif recorded.get("manifest_sha256"):
        if recorded["manifest_sha256"] not in _manifest_hashes(manifest):
            refuse(f"(manifest) {recorded['manifest_sha256'][:16]}",
                   f"(manifest) {sorted(_manifest_hashes(manifest))[0][:16]}")
    else:
        warn_once(f"SID table {sid_label} records no dataset fingerprint: cannot check that it "
                  f"was built from dataset {data_label}")
    if table.n_items != n_items:
        refuse(f"? ({table.n_items} items)", f"{have[:16] if have else '?'} ({n_items} items)")
