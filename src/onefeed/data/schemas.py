"""The canonical records every loader produces and every later stage reads.

Two stages of the same data:

* ``RawData``   — what a loader returns: string ids as the source spells them, not yet
  filtered, de-duplicated or split.
* ``Dataset``   — what ``prepare`` writes: integer ids (``user`` 0..n_users-1, ``item``
  0..n_items-1), chronological ``position`` per user, a ``split`` per event, weak
  queries and the held-out search-evaluation queries, plus the manifest.

Behaviours follow GenSAR §3.1: ``rec_click`` (R_I), ``search_query`` (S_Q),
``search_click`` (S_I).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

BEHAVIOURS: tuple[str, ...] = ("rec_click", "search_query", "search_click")
SPLITS: tuple[str, ...] = ("train", "valid", "test")

# Raw events as loaders return them. ``timestamp`` is seconds since the epoch or null when the
# source only carries order (Amazon P5 sequences); ``order`` breaks ties and carries that order.
RAW_EVENT_SCHEMA: dict[str, pl.DataType] = {
    "user_id": pl.Utf8,
    "item_id": pl.Utf8,  # null for a search_query event
    "timestamp": pl.Int64,  # null when the source has no time
    "order": pl.Int64,  # source order within the user (line order, sequence position)
    "behaviour": pl.Utf8,  # one of BEHAVIOURS
    "query": pl.Utf8,  # search text, null for rec_click
    "strength": pl.Float32,  # optional feedback strength (rating, dwell, like=1/skip=0)
    "review": pl.Utf8,  # optional review text written with the interaction
}

ITEM_SCHEMA: dict[str, pl.DataType] = {
    "item_id": pl.Utf8,
    "title": pl.Utf8,
    "description": pl.Utf8,
    "brand": pl.Utf8,
    "categories": pl.List(pl.Utf8),  # hierarchical path(s), coarse to fine
    "tags": pl.List(pl.Utf8),  # any other short text labels
}

# Prepared (integer) events. Sorted by (user, position).
EVENT_SCHEMA: dict[str, pl.DataType] = {
    "user": pl.Int32,
    "item": pl.Int32,  # null for search_query
    "position": pl.Int32,  # 0-based chronological index of the event within its user
    "timestamp": pl.Int64,
    "behaviour": pl.Utf8,
    "query": pl.Utf8,
    "strength": pl.Float32,
    "split": pl.Utf8,  # one of SPLITS
}

# Weak queries per item (OneFeed §4.2). ``split`` is "train" or "test" (held out: never
# paired with its item in any training example).
QUERY_SCHEMA: dict[str, pl.DataType] = {
    "item": pl.Int32,
    "query": pl.Utf8,
    "source": pl.Utf8,  # title | category | brand | tag | keyword | review
    "split": pl.Utf8,
}

# Search evaluation cases: a valid/test target turned into a search click whose query is drawn
# from the item's held-out queries.
EVAL_QUERY_SCHEMA: dict[str, pl.DataType] = {
    "user": pl.Int32,
    "split": pl.Utf8,  # valid | test
    "item": pl.Int32,
    "query": pl.Utf8,
}


class DataError(ValueError):
    """Bad input, with the place it was found (file, line/row, column) in the message."""


def conform(frame: pl.DataFrame, schema: dict[str, pl.DataType], what: str) -> pl.DataFrame:
    """Select ``schema``'s columns in order, adding missing optional ones as nulls.

    Raises ``DataError`` naming ``what`` and the column when a present column has the wrong
    type and cannot be cast losslessly.
    """
    cols = []
    for name, dtype in schema.items():
        if name not in frame.columns:
            cols.append(pl.lit(None, dtype=dtype).alias(name))
            continue
        if frame.schema[name] == dtype:
            cols.append(pl.col(name))
            continue
        try:
            frame.select(pl.col(name).cast(dtype, strict=True))
        except Exception as exc:  # polars raises several error types for failed casts
            raise DataError(f"{what}: column '{name}' has type {frame.schema[name]}, "
                            f"expected {dtype} ({exc.__class__.__name__})") from None
        cols.append(pl.col(name).cast(dtype))
    return frame.select(cols)


@dataclass(frozen=True)
class RawData:
    """A loader's output: ``events`` (RAW_EVENT_SCHEMA) and ``items`` (ITEM_SCHEMA)."""

    events: pl.DataFrame
    items: pl.DataFrame
    source: dict[str, Any] = field(default_factory=dict)  # name, files with sha256, notes


@dataclass(frozen=True)
class Dataset:
    """A prepared, split dataset. See the module docstring for the columns."""

    events: pl.DataFrame  # EVENT_SCHEMA
    items: pl.DataFrame  # "item" (Int32) + "first_split" (train|valid|test) + ITEM_SCHEMA
    users: pl.DataFrame  # user (Int32), user_id (Utf8)
    queries: pl.DataFrame  # QUERY_SCHEMA
    eval_queries: pl.DataFrame  # EVAL_QUERY_SCHEMA
    manifest: dict[str, Any]

    @property
    def n_items(self) -> int:
        return self.items.height

    @property
    def n_users(self) -> int:
        return self.users.height

    @property
    def name(self) -> str:
        return str(self.manifest.get("name", "dataset"))

    def save(self, directory: str | Path, replace: bool = True) -> Path:
        """Write parquet files + manifest.json (kind "dataset", each file's sha256 and size)
        atomically. Refuses a file or a directory that is not an onefeed dataset, and with
        ``replace=False`` an existing dataset (``artifacts.check_target``)."""
        from onefeed.artifacts import atomic_dir, hash_files, write_json

        directory = Path(directory)
        with atomic_dir(directory, kind="dataset", replace=replace) as tmp:
            for name in FRAMES:
                getattr(self, name).write_parquet(tmp / f"{name}.parquet")
            files = hash_files(tmp, list(FILES))
            write_json(tmp / "manifest.json", dict(self.manifest, kind="dataset", files=files))
        return directory

    @classmethod
    def load(cls, directory: str | Path, verify: bool = True) -> "Dataset":
        """Read a saved dataset; with ``verify`` its files must match the manifest's sha256
        (``ArtifactError`` naming the file), once per process per unchanged file."""
        from onefeed.artifacts import recover

        directory = Path(directory)
        with contextlib.suppress(OSError):
            recover(directory)  # a crash between atomic_dir's renames left it beside its name
        manifest_path = directory / "manifest.json"
        if not manifest_path.exists():
            raise DataError(f"{directory}: no manifest.json; run `onefeed data prepare` first")
        manifest = read_manifest(directory)
        if verify:
            verify_dataset(directory, manifest)
        try:
            frames = {n: pl.read_parquet(directory / f"{n}.parquet") for n in FRAMES}
        except (OSError, ValueError, pl.exceptions.PolarsError) as exc:  # corrupt or foreign
            raise DataError(f"{directory}: unreadable prepared dataset ({type(exc).__name__}: "
                            f"{str(exc)[:200]})") from None
        return cls(manifest=manifest, **frames)


def read_manifest(directory: str | Path) -> dict[str, Any]:
    """A prepared dataset's manifest.json; ``DataError`` when it is unreadable or not an object."""
    from onefeed.artifacts import read_json_object

    return read_json_object(Path(directory) / "manifest.json",
                            f"{directory}: unreadable prepared dataset", DataError)


FRAMES: tuple[str, ...] = ("events", "items", "users", "queries", "eval_queries")
FILES: tuple[str, ...] = tuple(f"{n}.parquet" for n in FRAMES)


def verify_dataset(directory: str | Path, manifest: dict[str, Any] | None = None) -> bool:
    """Check the dataset's parquet files against its manifest (``ArtifactError`` naming the file);
    a dataset from before file hashes loads with a warning (returns False)."""
    from onefeed.artifacts import ArtifactError, verify_or_warn

    directory = Path(directory)
    manifest = manifest if manifest is not None else read_manifest(directory)
    files = manifest.get("files")
    if files and not set(FILES) <= set(files):
        raise ArtifactError(f"dataset {directory}: its manifest lists no hash for "
                            f"{sorted(set(FILES) - set(files))}")
    return verify_or_warn(directory, {n: files[n] for n in FILES} if files else None,
                          f"dataset {directory}")


def dataset_fingerprint(data: "Dataset | str | Path | dict[str, Any]") -> str | None:
    """sha256 over the dataset's file hashes (``artifacts.fingerprint``): what SID tables and
    models record as ``data_sha256``. From a directory without hashes in its manifest the files
    are hashed; an in-memory dataset that was never saved has none (None)."""
    from onefeed.artifacts import fingerprint, hash_files

    if isinstance(data, Dataset):
        manifest, directory = data.manifest, None
    elif isinstance(data, dict):
        manifest, directory = data, None
    else:
        directory = Path(data)
        manifest = read_manifest(directory)
    files = manifest.get("files")
    if files and set(FILES) <= set(files):
        return fingerprint({n: files[n] for n in FILES})
    return fingerprint(hash_files(directory, list(FILES))) if directory is not None else None
