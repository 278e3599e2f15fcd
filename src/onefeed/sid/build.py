"""``Dataset`` -> ``SidTable``: embeddings (by strategy) -> quantiser -> unique IDs -> artifact.

Only training data is fitted on (OneFeed §4.3 / App. B): collaborative vectors and co-occurrence
pairs come from split == "train" item events, fine-tuning from split == "train" queries, and the
quantisers are fitted on items whose ``first_split`` is "train". Cold items (first seen in
valid/test) are encoded from their embedding alone with the fitted codebooks.

Artifact directory (written atomically)::

    sid_table.parquet / sid_table.json   the SidTable (last level = disambiguation code)
    embeddings.safetensors               the vectors that were quantised, one tensor per part
    <quantiser>_<part>.safetensors       codebooks (rq_kmeans) or weights (rqvae)
    joint/                               joint quantiser (projections + codebooks)
    sid_semantic/, sid_collab/           joint only: the two identifiers (shared prefix); the
                                         primary table is sid_semantic, or for strategy
                                         prefix_share [shared, semantic, collab] (Spotify §3.2)
    biencoder_<kind>/                    fine-tuned sentence-transformers model (search/multitask)
    manifest.json                        config, inputs with hashes, events used, stats, versions
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import polars as pl

from onefeed.data.schemas import DataError, Dataset
from onefeed.data.views import item_events, train_sequences
from onefeed.embeddings.biencoder import (BiEncoderConfig, fine_tune, item_pairs, sample,
                                          search_pairs)
from onefeed.embeddings.collaborative import CollabConfig, collaborative_embeddings
from onefeed.embeddings.content import content_embeddings, fill_missing
from onefeed.embeddings.fusion import fused_concat, fused_svd, l2_normalise
from onefeed.embeddings.text import item_texts
from onefeed.sid.calibrate import CalibrationConfig, Calibrator, behaviour_graph, prefix_agreement
from onefeed.sid.collisions import collision_rate, disambiguate, max_group_size
from onefeed.sid.joint import JointConfig, fit_joint, load_joint
from onefeed.sid.rq_kmeans import RQKMeans, RQKMeansConfig, fit_rows
from onefeed.sid.rqvae import RQVAE, RQVAEConfig, train_rqvae
from onefeed.distributed import any_rank, barrier, dist_info
from onefeed.sid.table import SidTable
from onefeed.sid.variants import prefix_share, separate

Strategy = Literal["content", "collaborative", "search", "multitask", "fused_concat",
                   "fused_svd", "separate", "prefix_share"]
Quantiser = Literal["rq_kmeans", "rqvae", "joint"]
Semantic = Literal["content", "search", "multitask"]


@dataclass
class SidConfig:
    RANGES: ClassVar[dict[str, str]] = {"levels": ">= 1", "codebook_size": ">= 2", "niter": ">= 1",
        "batch_size": ">= 1", "fit_sample": ">= 0"}
    strategy: Strategy = "content"
    quantizer: Quantiser = "rq_kmeans"
    semantic: Semantic = "content"  # semantic side of fused_*/separate/prefix_share
    levels: int = 3  # rq_kmeans / rqvae levels (joint: joint.shared_levels + specific_levels)
    codebook_size: int = 256
    seed: int = 0
    niter: int = 20  # k-means iterations per level
    balanced: bool = True  # balanced RQ-KMeans (OneRec): <= ceil(n/k) train items per code
    # rq_kmeans: fit the codebooks on a seeded sample of at most this many training items, then
    # assign every item (in batches) by nearest centroid; 0 = fit on all (docs/SCALE.md)
    fit_sample: int = 0
    cache_dir: str = ""  # content-embedding cache; "" = <runs>/cache/embeddings
    batch_size: int = 64  # text-encoding batch
    int8_text: bool = False  # dynamic-int8 MiniLM for item text (faster, slightly different)
    # Item-text encoder precision, pinned for ID reproducibility: bf16 autocast moves vectors by
    # ~1e-3 (cosine >= 0.9999) yet changes 98% of ML-100K's RQ-KMeans codes (docs/SEMANTIC_IDS.md).
    text_precision: Literal["fp32", "bf16", "auto"] = "fp32"
    collab: CollabConfig = field(default_factory=CollabConfig)
    biencoder: BiEncoderConfig = field(default_factory=BiEncoderConfig)
    rqvae: RQVAEConfig = field(default_factory=RQVAEConfig)
    joint: JointConfig = field(default_factory=JointConfig)
    # behaviour-aware calibration of the content codes (OneFeed §3.4; rq_kmeans, one part)
    calibration: CalibrationConfig = field(default_factory=CalibrationConfig)


# ----------------------------------------------------------------------------- inputs


def train_item_events(ds: Dataset) -> pl.DataFrame:
    """The events ID construction may read: item events with split == "train"."""
    return item_events(ds).filter(pl.col("split") == "train")


def events_hash(events: pl.DataFrame) -> str:
    """sha256 of (user, item, position) int64 columns in (user, position) order."""
    h = hashlib.sha256()
    ev = events.sort(["user", "position"])
    for col in ("user", "item", "position"):
        h.update(ev[col].cast(pl.Int64).to_numpy().tobytes())
    return h.hexdigest()


def calibrating(cfg: SidConfig) -> bool:
    """Whether the build calibrates codes on the behaviour graph; raises for quantisers and
    strategies it does not apply to."""
    on = cfg.calibration.weight > 0 and cfg.calibration.levels > 0
    if on and (cfg.quantizer != "rq_kmeans" or cfg.strategy in ("separate", "prefix_share")):
        raise ValueError(f"calibration applies to one-part rq_kmeans IDs, not strategy "
                         f"{cfg.strategy!r} with quantizer {cfg.quantizer!r} (set "
                         f"calibration.weight = 0)")
    return on


def graph_events(ds: Dataset) -> pl.DataFrame:
    """The events the behaviour graph of calibration is built from (train item events)."""
    return train_item_events(ds)


def events_used(ds: Dataset) -> dict[str, Any]:
    """What ID construction read from ``ds.events`` (checked by ``onefeed data check``)."""
    used = train_item_events(ds)
    counts = dict(used.group_by("split").len().iter_rows())
    queries = ds.queries.filter(pl.col("split") == "train")
    return {"filter": "behaviour in (rec_click, search_click) and split == 'train'",
            "split_counts": {s: int(counts.get(s, 0)) for s in ("train", "valid", "test")},
            "n_events": used.height, "sha256": events_hash(used),
            "queries": {"filter": "split == 'train'", "n": queries.height}}


def _check_items(ds: Dataset) -> np.ndarray:
    """(n_items,) bool mask of training items; validates the item ids are 0..n-1."""
    items = ds.items.sort("item")
    if not np.array_equal(items["item"].to_numpy(), np.arange(items.height)):
        raise DataError("items: column 'item' must be 0..n_items-1 without gaps")
    if "first_split" not in items.columns:
        raise DataError("items: column 'first_split' missing (run `onefeed data prepare`)")
    return (items["first_split"] == "train").to_numpy()


# ----------------------------------------------------------------------------- embeddings


def _link_or_copy(src: str, dst: str) -> None:
    import os
    import shutil

    try:
        os.link(src, dst)
    except OSError:  # another filesystem
        shutil.copy2(src, dst)


class Embedder:
    """Computes each embedding kind at most once per build (content, collab, search, ...)."""

    def __init__(self, ds: Dataset, cfg: SidConfig, work_dir: Path, progress: bool):
        self.ds, self.cfg, self.work_dir, self.progress = ds, cfg, work_dir, progress
        self.texts = item_texts(ds.items)
        self.has_text = np.array([bool(t) for t in self.texts], dtype=bool)
        self.cache: dict[str, np.ndarray] = {}
        self.info: dict[str, Any] = {}
        self.rank = dist_info()[0]  # under torchrun only rank 0 writes shared caches

    def get(self, kind: str) -> np.ndarray:
        if kind not in self.cache:
            start = time.perf_counter()
            self.cache[kind] = getattr(self, f"_{kind}")()
            self.info.setdefault(kind, {})["seconds"] = round(time.perf_counter() - start, 3)
        return self.cache[kind]

    def _cache_dir(self) -> Path:
        from onefeed.paths import runs_root

        if self.cfg.cache_dir:
            return Path(self.cfg.cache_dir)
        return runs_root() / "cache" / "embeddings"

    def _collaborative(self) -> np.ndarray:
        emb = collaborative_embeddings(train_sequences(self.ds), self.ds.n_items,
                                       self.cfg.collab, self.cfg.seed)
        self.info["collaborative"] = {"config": dataclasses.asdict(self.cfg.collab),
                                      "items_without_train_events":
                                          int((np.abs(emb).sum(1) == 0).sum())}
        return emb

    def _encode_text(self, kind: str, model_dir: Path | None) -> np.ndarray:
        emb, info = content_embeddings(self.texts, self._cache_dir() if self.rank == 0 else None,
                                       model_dir,
                                       self.cfg.batch_size, self.progress, self.cfg.int8_text,
                                       self.cfg.text_precision)
        info["items_without_text"] = int((~self.has_text).sum())
        if not self.has_text.all():  # OneFeed-style fallback: collaborative mapped to text space
            emb = fill_missing(emb, self.has_text, self.get("collaborative"))
            info["fallback"] = "collaborative" if not self.has_text.any() else "ridge map"
        self.info.setdefault(kind, {}).update(info)
        return emb

    def _content(self) -> np.ndarray:
        return self._encode_text("content", None)

    def _tuned(self, kind: str) -> np.ndarray:
        """Fine-tune (or reuse a cached fine-tune keyed by pairs + config), link into the
        artifact as ``biencoder_<kind>/``, and embed item text with it."""
        import shutil

        from onefeed.artifacts import atomic_dir, hash_files, verify_or_warn, write_json

        bcfg = dataclasses.replace(self.cfg.biencoder, seed=self.cfg.seed)
        sets = [sample(search_pairs(self.ds.queries, self.texts), bcfg.max_search_pairs, bcfg.seed)]
        if kind == "multitask":
            sets.append(sample(item_pairs(train_sequences(self.ds), self.texts),
                               bcfg.max_item_pairs, bcfg.seed + 1))
        key = hashlib.sha256(json.dumps([sets, dataclasses.asdict(bcfg)]).encode()).hexdigest()
        cached = self._cache_dir() / "biencoder" / f"{kind}-{key[:16]}"
        info = self.info.setdefault(kind, {})
        if not any_rank(not (cached / "fine_tune.json").exists()):  # a hit on every rank
            manifest = cached / "manifest.json"
            verify_or_warn(cached, json.loads(manifest.read_text())["files"]
                           if manifest.exists() else None, f"fine-tuned encoder cache {cached}")
            info["fine_tune"] = dict(json.loads((cached / "fine_tune.json").read_text()),
                                     cache_hit=True)
        elif self.rank > 0:  # trains with rank 0 (DDP); its copy stays in this build's dir
            cached = self.work_dir / f"rank{self.rank}-biencoder_{kind}"
            _, log = fine_tune(sets, bcfg, cached, self.progress)
            info["fine_tune"] = dict(log, cache_hit=False)
        else:
            with atomic_dir(cached, kind="biencoder") as tmp:
                _, log = fine_tune(sets, bcfg, tmp, self.progress)
                log = dict(log, config=dataclasses.asdict(bcfg), pairs_sha256=key)
                (tmp / "fine_tune.json").write_text(json.dumps(log, indent=2))
                write_json(tmp / "manifest.json", {"kind": "biencoder", "files": hash_files(tmp)})
            info["fine_tune"] = dict(log, cache_hit=False)
        out = self.work_dir / f"biencoder_{kind}"
        shutil.copytree(cached, out, copy_function=_link_or_copy)
        info["fine_tune"]["saved_to"] = out.name
        return self._encode_text(kind, out)

    def _search(self) -> np.ndarray:
        return self._tuned("search")

    def _multitask(self) -> np.ndarray:
        return self._tuned("multitask")


def strategy_parts(emb: Embedder, cfg: SidConfig) -> dict[str, np.ndarray]:
    """The vectors to quantise: one part, or ``semantic`` + ``collab`` for separate/joint."""
    s = cfg.strategy
    if s == "prefix_share" and cfg.quantizer != "joint":
        raise ValueError("strategy 'prefix_share' is built by the joint quantiser (shared + two "
                         f"specific codebooks); use quantizer 'joint', not {cfg.quantizer!r}")
    if cfg.quantizer == "joint":
        if s not in ("content", "search", "multitask", "prefix_share"):
            raise ValueError(f"quantizer 'joint' takes a semantic strategy (content|search|"
                             f"multitask) or prefix_share, got strategy {s!r}")
        side = cfg.semantic if s == "prefix_share" else s
        return {"semantic": emb.get(side), "collab": emb.get("collaborative")}
    if s == "separate":
        return {"semantic": l2_normalise(emb.get(cfg.semantic)),
                "collab": l2_normalise(emb.get("collaborative"))}
    if s == "fused_concat":
        return {"main": fused_concat(emb.get(cfg.semantic), emb.get("collaborative"))}
    if s == "fused_svd":
        return {"main": fused_svd(emb.get(cfg.semantic), emb.get("collaborative"))}
    return {"main": l2_normalise(emb.get(s))}


# ----------------------------------------------------------------------------- quantisers


def fit_rows_of(train: np.ndarray, cfg: SidConfig) -> np.ndarray:
    """Indices of the items RQ-KMeans is fitted on: the training items, or a seeded sample
    of ``cfg.fit_sample`` of them."""
    idx = np.flatnonzero(train)
    return idx[fit_rows(len(idx), cfg.fit_sample, cfg.seed)]


def fit_quantiser(x: np.ndarray, train: np.ndarray, cfg: SidConfig, progress: bool,
                  graph=None):
    """Fit ``cfg.quantizer`` (rq_kmeans | rqvae) on the training rows of ``x`` (rq_kmeans:
    on ``fit_rows_of`` them; with ``graph`` (n_items, n_items), calibrated on it)."""
    if cfg.quantizer == "rq_kmeans":
        rows = fit_rows_of(train, cfg)
        refine = None if graph is None else Calibrator(graph[rows][:, rows], cfg.calibration,
                                                       cfg.seed)
        quantiser = RQKMeans.fit(x[rows], RQKMeansConfig(
            cfg.levels, cfg.codebook_size, cfg.niter, cfg.seed, cfg.balanced,
            cfg.fit_sample), refine)
        return quantiser, ({"calibration": refine.log} if refine is not None else {})
    rcfg = dataclasses.replace(cfg.rqvae, levels=cfg.levels, codebook_size=cfg.codebook_size,
                               seed=cfg.seed)
    return train_rqvae(x[train], rcfg, progress)


def sizes_of(quantiser) -> tuple[int, ...]:
    if isinstance(quantiser, RQVAE):
        return (quantiser.cfg.codebook_size,) * quantiser.cfg.levels
    return quantiser.codebook_sizes


def load_quantiser(path: Path):
    from safetensors import safe_open

    with safe_open(str(path), framework="numpy") as fh:
        kind = (fh.metadata() or {}).get("kind")
    return RQVAE.load(path) if kind == "rqvae" else RQKMeans.load(path)


def unique_table(codes: np.ndarray, sizes: tuple[int, ...], meta: dict) -> SidTable:
    """Append the disambiguation level (TIGER) and record collision statistics in ``meta``."""
    final, extra = disambiguate(codes)
    meta = dict(meta, collision_rate=collision_rate(codes), max_collisions=max_group_size(codes),
                disambiguation_level=True, semantic_levels=codes.shape[1])
    return SidTable(final, tuple(int(s) for s in sizes) + (extra,), meta)


def encode_items(quantiser, x: np.ndarray, train: np.ndarray,
                 progress: Callable[[int], None] | None = None) -> np.ndarray:
    """Codes of all items: train rows as fitted (balanced RQ-KMeans), cold rows by nearest."""
    if isinstance(quantiser, RQKMeans):
        return quantiser.encode_split(x, train, progress)
    return quantiser.encode(x)


def reencode(directory: str | Path) -> dict[str, np.ndarray]:
    """Codes (before the disambiguation level) recomputed from the saved embeddings and
    quantiser(s) of a build — what a cold item would get. Keys: table names ("sid" and/or the
    joint "sid_semantic"/"sid_collab")."""
    from safetensors.numpy import load_file

    from onefeed.sid.table import verify_sid

    directory = Path(directory)
    verify_sid(directory)  # the embeddings and codebooks read below match the manifest
    manifest = json.loads((directory / "manifest.json").read_text())
    parts = load_file(str(directory / "embeddings.safetensors"))
    mask = parts.pop("train_mask", None)  # absent in artifacts from before balanced RQ-KMeans
    n = next(iter(parts.values())).shape[0]
    train = mask.astype(bool) if mask is not None else np.zeros(n, dtype=bool)
    if manifest["config"]["quantizer"] == "joint":
        sem, col = load_joint(directory / "joint").encode(
            parts["semantic"], parts["collab"], train)
        out = {"sid_semantic": sem, "sid_collab": col}
        if manifest["config"]["strategy"] == "prefix_share":
            shared = manifest["config"]["joint"]["shared_levels"]
            out["sid"] = np.concatenate([sem, col[:, shared:]], axis=1)
        return out
    codes = [encode_items(load_quantiser(directory / f"{manifest['config']['quantizer']}_"
                                                     f"{name}.safetensors"), parts[name], train)
             for name in manifest["parts"]]
    return {"sid": np.concatenate(codes, axis=1)}


# ----------------------------------------------------------------------------- build


def build(ds: Dataset, cfg: SidConfig, out_dir: str | Path, progress: bool = True,
          data_dir: str | Path | None = None, replace: bool = True) -> SidTable:
    """Build, save (atomically) and return the item SidTable. See the module docstring.

    ``data_dir`` (where ``ds`` was loaded from) is recorded in the manifest and may not overlap
    ``out_dir``. ``out_dir`` must be new, empty or a SID build (with ``replace=False``: new or
    empty; the CLI's ``--force``); this is checked before any work.
    Under ``torchrun`` every rank runs the build (the RQ-VAE and bi-encoder train in DDP) and
    only rank 0 writes ``out_dir`` and the caches.
    """
    from onefeed.artifacts import check_not_input, check_target

    out_dir = Path(out_dir)
    check_not_input(out_dir, [data_dir], "SID output")
    check_target(out_dir, "sid", replace)
    rank, world = dist_info()
    if rank > 0:  # under torchrun: train alongside rank 0 (DDP), write into a private dir
        import tempfile

        with tempfile.TemporaryDirectory(prefix=f"onefeed-sid-rank{rank}-") as private:
            table = _build(ds, cfg, Path(private) / "sid", False, data_dir, True)
        barrier()
        return table
    table = _build(ds, cfg, out_dir, progress, data_dir, replace)
    barrier()
    return table


def _build(ds: Dataset, cfg: SidConfig, out_dir: Path, progress: bool,
           data_dir: str | Path | None, replace: bool) -> SidTable:
    from safetensors.numpy import save_file

    from onefeed.artifacts import (atomic_dir, git_commit, hash_files, library_versions,
                                   write_json)
    from onefeed.data.schemas import dataset_fingerprint

    train = _check_items(ds)
    if not train.any():
        raise DataError("items: no item has first_split == 'train'; cannot fit a tokenizer")
    data_sha256 = dataset_fingerprint(ds) or (  # an unsaved ``ds``: the files it came from
        dataset_fingerprint(data_dir) if data_dir and Path(data_dir, "manifest.json").exists()
        else None)
    started, timings = time.perf_counter(), {}
    with atomic_dir(out_dir, kind="sid", replace=replace) as tmp:
        graph, graph_info = None, None
        if calibrating(cfg):
            used = graph_events(ds)
            graph_info = {"co_click_graph": _check_sources(ds, used, "behaviour graph")}
            graph = behaviour_graph(used, ds.n_items, cfg.calibration)
            graph_info.update(n_events=used.height, sha256=events_hash(used),
                              edges=int(graph.nnz // 2))
        emb = Embedder(ds, cfg, tmp, progress)
        parts = strategy_parts(emb, cfg)
        timings["embeddings"] = round(time.perf_counter() - started, 3)
        save_file({**{k: np.ascontiguousarray(v, dtype=np.float32) for k, v in parts.items()},
                   "train_mask": train.astype(np.uint8)}, str(tmp / "embeddings.safetensors"))
        t0 = time.perf_counter()
        meta = {"strategy": cfg.strategy, "quantizer": cfg.quantizer, "seed": cfg.seed,
                "dataset": ds.name, "data_sha256": data_sha256}
        if cfg.quantizer == "joint":
            table, extra = _build_joint(parts, train, cfg, tmp, meta)
        else:
            table, extra = _build_single(parts, train, cfg, tmp, meta, progress, graph)
            if graph is not None:
                codes = table.codes[:, :-1]
                graph_info["prefix_agreement"] = {  # share of graph weight on shared prefixes
                    f"levels_{d}": round(prefix_agreement(codes, graph, d), 4)
                    for d in range(1, codes.shape[1] + 1)}
                extra["calibration_graph"] = graph_info
        timings["quantise"] = round(time.perf_counter() - t0, 3)
        table.save(tmp)
        timings["total"] = round(time.perf_counter() - started, 3)
        write_json(tmp / "manifest.json", {
            "kind": "sid", "config": dataclasses.asdict(cfg), "parts": list(parts),
            "seed": cfg.seed, "data_sha256": data_sha256,
            "dataset": {"name": ds.name, "path": str(data_dir) if data_dir else None,
                        "manifest_sha256": hashlib.sha256(json.dumps(
                ds.manifest, sort_keys=True, default=str).encode()).hexdigest(),
                "n_items": ds.n_items, "n_train_items": int(train.sum()),
                "n_cold_items": int((~train).sum())},
            "events_used": events_used(ds),
            "leakage_check": dict(_leakage_check(ds), **({"co_click_graph": "pass"}
                                                         if graph is not None else {})),
            "embeddings": emb.info, "quantiser": extra, "timings_s": timings,
            "table": {"n_levels": table.n_levels, "codebook_sizes": list(table.codebook_sizes),
                      "collision_rate": table.meta["collision_rate"], "unique": table.is_unique()},
            "git_commit": git_commit(), "versions": library_versions(),
            "files": hash_files(tmp)})
    return table


def _build_single(parts, train, cfg, tmp, meta, progress, graph=None) -> tuple[SidTable, dict]:
    codes, sizes, logs = [], (), {}
    for name, x in parts.items():
        quantiser, log = fit_quantiser(x, train, cfg, progress, graph)
        quantiser.save(tmp / f"{cfg.quantizer}_{name}.safetensors")
        codes.append(encode_items(quantiser, x, train))
        sizes = sizes + sizes_of(quantiser)
        logs[name] = log
        if isinstance(quantiser, RQKMeans):
            rows = fit_rows_of(train, cfg)
            logs[name] = dict(log, mse_by_level=quantiser.residual_errors(x[rows],
                                                                          codes[-1][rows]))
    if len(codes) == 2:  # Spotify "Separate": <SEARCH: ID_sem, REC: ID_rec>
        joined, sizes = separate(codes[0], sizes[:cfg.levels], codes[1], sizes[cfg.levels:])
        meta["separate"] = {"semantic_levels": list(range(cfg.levels)),
                            "collab_levels": list(range(cfg.levels, 2 * cfg.levels))}
    else:
        joined = codes[0]
    return unique_table(joined, sizes, meta), logs


def _build_joint(parts, train, cfg, tmp, meta) -> tuple[SidTable, dict]:
    jcfg = dataclasses.replace(cfg.joint, codebook_size=cfg.codebook_size, seed=cfg.seed,
                               niter=cfg.niter, balanced=cfg.balanced)
    q, fit_log = fit_joint(parts["semantic"][train], parts["collab"][train], jcfg)
    q.save(tmp / "joint")
    sem, col = q.encode(parts["semantic"], parts["collab"], train)
    sem_sizes, col_sizes = q.codebook_sizes()
    shared = {"shared_levels": jcfg.shared_levels, "specific_levels": jcfg.specific_levels,
              "note": "sid_semantic and sid_collab share codes c0..c{L_m-1}; each then has its "
                      "own specific levels and its own disambiguation level"}
    sem_t = unique_table(sem, sem_sizes, dict(meta, identifier="semantic", joint=shared))
    col_t = unique_table(col, col_sizes, dict(meta, identifier="collab", joint=shared))
    sem_t.save(tmp / "sid_semantic")
    col_t.save(tmp / "sid_collab")
    log = {"joint": shared, "collision_rate_semantic": sem_t.meta["collision_rate"],
           "collision_rate_collab": col_t.meta["collision_rate"], **fit_log}
    if cfg.strategy == "prefix_share":  # Spotify Prefix-share: [shared, search…, rec…]
        codes, sizes = prefix_share(sem, col, jcfg.shared_levels, sem_sizes, col_sizes)
        layout = {"shared_levels": list(range(jcfg.shared_levels)),
                  "semantic_levels": list(range(jcfg.shared_levels, sem.shape[1])),
                  "collab_levels": list(range(sem.shape[1], codes.shape[1]))}
        return unique_table(codes, sizes, dict(meta, prefix_share=layout, joint=shared)), log
    primary = SidTable(sem_t.codes, sem_t.codebook_sizes, dict(sem_t.meta, primary="sid_semantic"))
    return primary, log


def _leakage_check(ds: Dataset) -> dict[str, Any]:
    """Verify the events ID construction reads are train-only (OneFeed App. B) with the data
    package's hook ``leakage.check_semantic_id_sources``."""
    used = train_item_events(ds)
    return {"semantic_id_sources": _check_sources(ds, used, "clustering"),
            "by": "onefeed.data.leakage.check_semantic_id_sources"}


def _check_sources(ds: Dataset, used: pl.DataFrame, what: str) -> str:
    """``check_semantic_id_sources`` on the events ``what`` reads; raises on a finding."""
    from onefeed.data.leakage import check_semantic_id_sources

    finding = check_semantic_id_sources(ds, used.select("user", "position"))
    if finding is not None:
        raise DataError(f"semantic-ID leakage check failed ({what}): {finding}")
    return "pass"
