"""A prepared dataset -> a saved OneBar artifact, as one line of library calls (issue 15):

    plant_unsafe -> item embeddings -> EvidenceIndex.build -> build_examples -> save

The artifact dir (``onefeed onebar build``)::

    manifest.json      kind "onebar": config, seed, data dir + fingerprint, embedding source,
                       planted ids, example counts, commit, versions, file hashes
    items.parquet      the planted dataset's items (titles with the planted block-list terms)
    embeddings.npy     (n_items, d) float32 item embeddings the anchors were retrieved with
    evidence/          the EvidenceIndex (``EvidenceIndex.save``)
    examples/<split>.parquet   user, trigger, target, reject, split, history, query

``load(dir)`` gives a :class:`OneBarRun`; its ``dataset()`` is the prepared dataset with the
planted items swapped in (what the baselines are fitted on), checked against the fingerprint.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from onefeed import config as config_mod
from onefeed.data.schemas import Dataset, dataset_fingerprint
from onefeed.onebar.config import OneBarConfig
from onefeed.onebar.evidence import EvidenceIndex, serialise
from onefeed.onebar.labels import Example, build_examples, example_evidence, plant_unsafe

KIND = "onebar"
SPLITS: tuple[str, ...] = ("train", "valid", "test")
EXAMPLE_SCHEMA: dict[str, pl.DataType] = {
    "user": pl.Int64, "trigger": pl.Int64, "target": pl.Utf8, "reject": pl.Boolean,
    "split": pl.Utf8, "history": pl.List(pl.Utf8), "query": pl.Utf8}


@dataclass
class OneBarRun:
    """A loaded OneBar artifact; the dataset is read on first use."""

    directory: Path
    cfg: OneBarConfig
    index: EvidenceIndex
    planted: np.ndarray  # (n_planted,) sorted item ids given a block-list term
    manifest: dict[str, Any]
    _ds: Dataset | None = None

    def dataset(self) -> Dataset:
        """The prepared dataset of ``manifest["data"]`` with the planted items swapped in."""
        if self._ds is None:
            self._ds = planted_dataset(self.directory, self.manifest)
        return self._ds

    def examples(self, split: str) -> list[Example]:
        return load_examples(self.directory / "examples" / f"{split}.parquet")

    def example_texts(self, split: str, fmt: str | None = None) -> list[tuple[str, str]]:
        """(serialised evidence, target) per example of ``split``: a model's training or
        evaluation pairs (``labels.example_evidence``: leave-one-out RAG on train,
        decontaminated eval inputs when configured). ``fmt`` overrides ``cfg.format``."""
        return [(serialise(example_evidence(self.index, ex, self.cfg), fmt or self.cfg.format),
                 ex.target) for ex in self.examples(split)]

    def model_dir(self) -> Path:
        """Where a trained ``onebar.model.QuerySuggester`` checkpoint of this run lives."""
        return self.directory / "model"


# ---- embeddings -----------------------------------------------------------------------------

def read_embeddings(path: str | Path, n_items: int) -> tuple[np.ndarray, dict[str, Any]]:
    """Item embeddings from an ``.npy`` file or a SID build dir (its embeddings.safetensors,
    part ``content`` when present, else the first part). Returns (emb, source info)."""
    from onefeed.artifacts import ArtifactError, file_sha256

    path = Path(path)
    if path.is_dir():
        from safetensors.numpy import load_file

        file = path / "embeddings.safetensors"
        if not file.is_file():
            raise ArtifactError(f"--embeddings {path}: no embeddings.safetensors (a SID build "
                                "dir or an .npy file)")
        parts = {k: v for k, v in load_file(str(file)).items() if k != "train_mask"}
        if not parts:
            raise ArtifactError(f"{file}: holds no embedding part")
        part = "content" if "content" in parts else sorted(parts)[0]
        emb, info = parts[part], {"source": str(path), "part": part}
    else:
        emb, info = np.load(path, allow_pickle=False), {"source": str(path)}
        file = path
    if emb.ndim != 2 or emb.shape[0] != n_items:
        raise ArtifactError(f"{path}: embeddings of shape {emb.shape}, expected ({n_items}, d)")
    return np.asarray(emb, dtype=np.float32), dict(info, sha256=file_sha256(file))


def content_item_embeddings(ds: Dataset, cache_dir: str | Path | None = None,
                            progress: bool = False) -> tuple[np.ndarray, dict[str, Any]]:
    """MiniLM embeddings of the items' text (``embeddings.content``, disk-cached); items without
    text get the collaborative embedding mapped into text space (``fill_missing``)."""
    from onefeed.data.views import train_sequences
    from onefeed.embeddings.collaborative import CollabConfig, collaborative_embeddings
    from onefeed.embeddings.content import content_embeddings, fill_missing
    from onefeed.embeddings.text import item_texts
    from onefeed.paths import runs_root

    texts = item_texts(ds.items)
    cache = Path(cache_dir) if cache_dir else runs_root() / "cache" / "embeddings"
    emb, info = content_embeddings(texts, cache, progress=progress)
    has_text = np.array([bool(t) for t in texts], dtype=bool)
    if not has_text.all():
        collab = collaborative_embeddings(train_sequences(ds), ds.n_items, CollabConfig())
        emb = fill_missing(emb, has_text, collab)
    return emb, dict(info, source="content (all-MiniLM-L6-v2)",
                     items_without_text=int((~has_text).sum()))


# ---- build / load ---------------------------------------------------------------------------

def build(data_dir: str | Path, cfg: OneBarConfig, out_dir: str | Path,
          embeddings: str | Path | None = None, cache_dir: str | Path | None = None,
          progress: bool = False) -> OneBarRun:
    """Prepared dataset at ``data_dir`` -> OneBar artifact at ``out_dir`` (module docstring).
    ``embeddings``: reuse an .npy / SID build's item embeddings instead of encoding the text."""
    from onefeed.artifacts import atomic_dir, git_commit, hash_files, library_versions, write_json

    cfg.check()
    started, timings = time.perf_counter(), {}
    data_dir = Path(data_dir)
    raw = Dataset.load(data_dir)
    ds, planted = plant_unsafe(raw, cfg.block_list, cfg.plant_share, cfg.seed)
    t0 = time.perf_counter()
    emb, emb_info = (read_embeddings(embeddings, ds.n_items) if embeddings is not None
                     else content_item_embeddings(ds, cache_dir, progress))
    timings["embeddings"] = round(time.perf_counter() - t0, 3)
    t0 = time.perf_counter()
    index = EvidenceIndex.build(ds, emb, cfg)
    index.data_sha256 = dataset_fingerprint(raw)
    timings["evidence"] = round(time.perf_counter() - t0, 3)
    t0 = time.perf_counter()
    examples = build_examples(ds, index, cfg)
    timings["examples"] = round(time.perf_counter() - t0, 3)
    counts = {s: {"examples": sum(e.split == s for e in examples),
                  "reject": sum(e.split == s and e.reject for e in examples)} for s in SPLITS}
    with atomic_dir(Path(out_dir), kind=KIND) as tmp:
        ds.items.write_parquet(tmp / "items.parquet")
        np.save(tmp / "embeddings.npy", index.embeddings)
        index.save(tmp / "evidence")
        (tmp / "examples").mkdir()
        for split in SPLITS:
            save_examples([e for e in examples if e.split == split],
                          tmp / "examples" / f"{split}.parquet")
        timings["total"] = round(time.perf_counter() - started, 3)
        write_json(tmp / "manifest.json", {
            "kind": KIND, "seed": cfg.seed, "config": config_mod.to_dict(cfg),
            "data": str(data_dir.resolve()), "data_sha256": index.data_sha256,
            "dataset": {"name": raw.name, "n_users": raw.n_users, "n_items": raw.n_items},
            "planted": planted.tolist(), "embeddings": emb_info, "examples": counts,
            "timings_s": timings, "git_commit": git_commit(), "versions": library_versions(),
            "files": hash_files(tmp)})
    return load(out_dir)


def load(out_dir: str | Path) -> OneBarRun:
    """A saved OneBar artifact, every file checked against the manifest's sha256."""
    from onefeed.artifacts import read_manifest

    directory = Path(out_dir)
    manifest = read_manifest(directory, KIND, "OneBar artifact", "onefeed onebar build")
    cfg = config_mod.from_dict(OneBarConfig, manifest["config"])
    index = EvidenceIndex.load(directory / "evidence")
    return OneBarRun(directory, cfg, index, np.asarray(manifest["planted"], dtype=np.int64),
                     manifest)


def planted_dataset(directory: Path, manifest: dict[str, Any]) -> Dataset:
    """The artifact's source dataset (refused if re-prepared since) with its planted items."""
    from onefeed.artifacts import ArtifactError

    raw = Dataset.load(manifest["data"])
    if dataset_fingerprint(raw) != manifest["data_sha256"]:
        raise ArtifactError(f"{manifest['data']}: the dataset changed since the OneBar artifact "
                            f"{directory} was built from it; rebuild it (onefeed onebar build)")
    items = pl.read_parquet(directory / "items.parquet")
    kept = {k: v for k, v in raw.manifest.items() if k != "files"}
    return dataclasses.replace(raw, items=items, manifest=dict(kept, onebar_planted=len(
        manifest["planted"])))


def save_examples(examples: list[Example], path: Path) -> None:
    rows = {name: [getattr(e, name) for e in examples] for name in EXAMPLE_SCHEMA}
    rows["history"] = [list(h) for h in rows["history"]]
    pl.DataFrame(rows, schema=EXAMPLE_SCHEMA).write_parquet(path)


def load_examples(path: Path) -> list[Example]:
    frame = pl.read_parquet(path)
    return [Example(u, t, tg, r, s, tuple(h), q) for u, t, tg, r, s, h, q in frame.select(
        list(EXAMPLE_SCHEMA)).iter_rows()]
