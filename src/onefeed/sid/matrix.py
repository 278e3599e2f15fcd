"""Every strategy x quantiser on one dataset: build (resumably), then measure each table.

Used by ``onefeed bench sid-matrix``. A table lives in ``<sid_root>/<name>`` where ``name`` is
``<strategy>-<quantizer>`` (``content-joint-learned`` for the learned GenSAR variant). A
directory whose manifest config equals the requested config (after filling defaults added
since it was built) is reused, not rebuilt — that is what makes the benchmark resumable.

Per table (``measure``): build time, GenSAR collision rate before disambiguation, uniqueness,
utilisation / perplexity per level, the semantic-coherence ratio, the behaviour agreement
(co-clicked pairs and validation next-item pairs sharing a prefix), and two reproducibility
checks — ``rebuild_identical`` (a second build with the same config and seed into a scratch
dir gives the same codes; embedding caches are reused, so for search/multitask the fine-tune is
not repeated) and ``reload_identical`` (the saved table equals the codes recomputed from the
saved embeddings + quantiser weights after loading them).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from onefeed import config
from onefeed.data.schemas import Dataset
from onefeed.sid.build import SidConfig, build, reencode
from onefeed.sid.diagnostics import (BehaviourPairs, behaviour_agreement, behaviour_pairs,
                                     diagnose, semantic_codes)
from onefeed.sid.table import SidTable

SINGLE = ["content", "collaborative", "search", "multitask", "fused_concat", "fused_svd",
          "separate"]
# CPU budget for the multi-task fine-tune: 512 search + 512 item pairs (16 steps of two summed
# losses). The default 4,096 + 4,096 takes ~40 min on this shared 2-core machine.
MULTITASK_CAP = ("biencoder.max_search_pairs=512", "biencoder.max_item_pairs=512")


# behaviour-aware calibration (OneFeed §3.4) of the content RQ-KMeans IDs at these weights
CALIBRATION_WEIGHTS = (1, 3, 10, 30)


@dataclass(frozen=True)
class TableSpec:
    name: str  # directory name under the dataset's sid/ folder
    overrides: tuple[str, ...]  # SidConfig overrides on top of the matrix base


def default_specs() -> list[TableSpec]:
    """All tables, in build order: RQ-KMeans first (plus the k-means GenSAR joint), then the
    rest. Joint tables take a semantic strategy (its collaborative side is always PMI-SVD)."""
    def spec(strategy: str, quantizer: str, *extra: str, name: str = "") -> TableSpec:
        cap = MULTITASK_CAP if strategy == "multitask" else ()
        return TableSpec(name or f"{strategy}-{quantizer}",
                         (f"strategy={strategy}", f"quantizer={quantizer}", *cap, *extra))

    return ([spec(s, "rq_kmeans") for s in SINGLE] + [spec("content", "joint")]
            + [spec(s, "rqvae") for s in SINGLE]
            + [spec(s, "joint") for s in ("search", "multitask")]
            + [spec("prefix_share", "joint"),
               spec("content", "joint", "joint.method=learned", name="content-joint-learned")]
            + [spec("content", "rq_kmeans", f"calibration.weight={w}",
                    name=f"content-rq_kmeans-calib{w}") for w in CALIBRATION_WEIGHTS])


def resolve(spec: TableSpec, base: list[str]) -> SidConfig:
    """The SidConfig of one table: defaults <- matrix base overrides <- the spec's own."""
    return config.load(SidConfig, None, [*base, *spec.overrides])


def normalised(data: dict[str, Any]) -> dict[str, Any]:
    """A saved config as today's SidConfig dict (keys added since it was built take defaults)."""
    return dataclasses.asdict(config.from_dict(SidConfig, config._merge(
        dataclasses.asdict(SidConfig()), data)))


def config_hash(cfg: SidConfig) -> str:
    return hashlib.sha256(json.dumps(dataclasses.asdict(cfg), sort_keys=True).encode()
                          ).hexdigest()[:16]


def built_with(directory: Path, cfg: SidConfig) -> bool:
    """True when ``directory`` holds a complete build of exactly ``cfg``."""
    manifest = directory / "manifest.json"
    if not (manifest.exists() and (directory / "sid_table.parquet").exists()):
        return False
    try:
        saved = normalised(json.loads(manifest.read_text())["config"])
    except (config.ConfigError, KeyError, TypeError):
        return False
    if saved != dataclasses.asdict(cfg):
        return False
    return _encoder_matches(json.loads(manifest.read_text()).get("embeddings", {}), cfg)


def _encoder_matches(embeddings: dict[str, Any], cfg: SidConfig) -> bool:
    """The text vectors were made at ``cfg.text_precision`` (builds from before the encoder
    recorded its settings were fp32, the only path then)."""
    from onefeed.embeddings.text import resolve_precision

    want = "fp32" if cfg.int8_text else resolve_precision(cfg.text_precision)
    tags = [info["encoder"] for info in embeddings.values()
            if isinstance(info, dict) and "encoder" in info]
    return all(tag.split("-")[0] == want for tag in tags)


def ensure_built(ds: Dataset, cfg: SidConfig, directory: Path, data_dir: Path | None,
                 progress: bool) -> bool:
    """Build ``directory`` unless it already holds ``cfg``. Returns True when it built."""
    if built_with(directory, cfg):
        return False
    build(ds, cfg, directory, progress=progress, data_dir=data_dir)
    return True


def _tables(directory: Path) -> dict[str, SidTable]:
    """The saved tables of a build: "sid", plus "sid_semantic"/"sid_collab" for joint."""
    out = {"sid": SidTable.load(directory)}
    for sub in ("sid_semantic", "sid_collab"):
        if (directory / sub / "sid_table.parquet").exists():
            out[sub] = SidTable.load(directory / sub)
    return out


def reload_identical(directory: Path) -> bool:
    """Saved tables == codes recomputed from the saved embeddings and loaded quantiser."""
    tables = _tables(directory)
    for key, codes in reencode(directory).items():
        if not np.array_equal(codes, tables[key].codes[:, :-1]):
            return False
    return True


def rebuild_check(ds: Dataset, cfg: SidConfig, directory: Path, scratch: Path,
                  progress: bool) -> dict[str, Any]:
    """Build again with the same config and seed into ``scratch``; compare the saved tables.

    Returns {"rebuild_identical": bool, "rebuild_items_changed": fraction of items whose codes
    differ in any table}.
    """
    scratch.mkdir(parents=True, exist_ok=True)
    other = Path(tempfile.mkdtemp(prefix=f"{directory.name}-", dir=scratch))
    try:
        build(ds, cfg, other / "t", progress=progress)
        a, b = _tables(directory), _tables(other / "t")
        same = a.keys() == b.keys() and all(
            a[k].codebook_sizes == b[k].codebook_sizes and np.array_equal(a[k].codes, b[k].codes)
            for k in a)
        changed = np.zeros(a["sid"].n_items, dtype=bool)
        for k in a.keys() & b.keys():
            if a[k].codes.shape == b[k].codes.shape:
                changed |= (a[k].codes != b[k].codes).any(1)
            else:
                changed[:] = True
        return {"rebuild_identical": bool(same), "rebuild_items_changed": float(changed.mean())}
    finally:
        shutil.rmtree(other, ignore_errors=True)


def measure(directory: Path, items, seed: int = 0,
            pairs: BehaviourPairs | None = None) -> dict[str, Any]:
    """Diagnostics of every table of one build (see module doc), without the checks; with
    ``pairs``, also each table's behaviour agreement (``diagnostics.behaviour_agreement``)."""
    manifest = json.loads((directory / "manifest.json").read_text())
    row: dict[str, Any] = {"build_s": manifest["timings_s"]["total"],
                           "timings_s": manifest["timings_s"]}
    for key, table in _tables(directory).items():
        report = diagnose(table, items, seed=seed)
        coherence = report.get("coherence", {})
        row[key] = {
            "codebook_sizes": report["codebook_sizes"], "unique": report["unique"],
            "collision_rate": report["collision_rate"],
            "utilisation": report["utilisation"], "perplexity": report["perplexity"],
            "coherence_same_path": coherence.get("same_category_path", {}).get("ratio"),
            "coherence_any_category": coherence.get("share_any_category", {}).get("ratio")}
        if pairs is not None:
            row[key]["behaviour_agreement"] = behaviour_agreement(semantic_codes(table), pairs)
    fine_tune = {k: v["fine_tune"] for k, v in manifest.get("embeddings", {}).items()
                 if isinstance(v, dict) and "fine_tune" in v}
    if fine_tune:
        row["fine_tune"] = fine_tune
    return row


def run_matrix(ds: Dataset, data_dir: Path, sid_root: Path, specs: list[TableSpec],
               base: list[str], previous: dict[str, Any], checks: bool, progress: bool,
               on_row=None, rebuild: bool = True) -> dict[str, Any]:
    """Build/measure every spec; ``previous`` (an earlier result's "tables") lets checks that
    already ran for the same config hash be reused. ``rebuild=False`` keeps only the cheap
    save->load check. ``on_row(name, row)`` after each."""
    rows: dict[str, Any] = {}
    pairs = behaviour_pairs(ds)  # one graph for every table
    for spec in specs:
        cfg = resolve(spec, base)
        directory = sid_root / spec.name
        started = time.perf_counter()
        built = ensure_built(ds, cfg, directory, data_dir, progress)
        row = {"config_hash": config_hash(cfg), "overrides": list(spec.overrides),
               "dir": str(directory), "built_now": built,
               "wall_s": round(time.perf_counter() - started, 3),
               **measure(directory, ds.items, cfg.seed, pairs)}
        old = previous.get(spec.name, {})
        old_checks = old.get("checks", {})
        if old.get("config_hash") == row["config_hash"] and not built and (
                old_checks.get("rebuild_identical") is not None or not rebuild):
            row["checks"] = dict(old_checks, reused=True)
        elif checks:
            t0 = time.perf_counter()
            row["checks"] = {"reload_identical": reload_identical(directory),
                             "rebuild_identical": None}
            if rebuild:
                row["checks"].update(rebuild_check(ds, cfg, directory,
                                                   sid_root / ".matrix-scratch", progress))
            row["checks"]["seconds"] = round(time.perf_counter() - t0, 3)
        rows[spec.name] = row
        if on_row is not None:
            on_row(spec.name, row)
    shutil.rmtree(sid_root / ".matrix-scratch", ignore_errors=True)
    return rows
