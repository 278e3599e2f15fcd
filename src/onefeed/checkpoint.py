"""Checkpoints of the training loops: format, checksums, RNG state and the best/last commit.

A checkpoint is a directory written in one rename (``artifacts.atomic_dir``)::

    model.safetensors      weights
    config.json            {"run": resolved run config, "vocab": ...}
    optimizer.safetensors  optimizer state tensors, "<param index>.<name>"        (last/ only)
    optimizer.json         optimizer param groups                                (last/ only)
    rng.safetensors        {"torch_cpu": uint8 state of torch's CPU generator}  (last/ only)
    rng.json               numpy's global state, python's ``random``, named
                           ``np.random.Generator`` bit-generator states          (last/ only)
    state.json             loop state: epoch, step, history, ``best``, skipped steps (last/ only)
    manifest.json          {"kind": "checkpoint", "files": {name: {"sha256", "bytes"}}}

A run keeps ``out/last`` (resume from here) and ``out/best`` (the best validated weights).
:func:`commit` writes ``last/`` first, its ``state["best"]`` naming what ``best/`` must hold
(epoch, step, score, sha256 of model.safetensors), then ``best/`` when the score improved, so a
crash anywhere leaves a pair :func:`resume` can check and, in the one window where ``best/``
lags behind ``last/``, rebuild (best's weights are then last's). Nothing here pickles.

The loops commit at epoch ends and derive each epoch's data order from ``(seed, epoch)``, so
the RNG streams above plus ``state["epoch"]`` are all a resumed run needs to repeat the
uninterrupted one bit for bit (no position inside an epoch is stored).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save, save_file

from onefeed import config as config_lib
from onefeed.artifacts import ArtifactError, atomic_dir, file_sha256, hash_files, verify_files, \
    write_json
from onefeed.tokens import Vocab

MANIFEST = "manifest.json"
MODEL = "model.safetensors"


class CheckpointError(ArtifactError):
    """The checkpoints of a run are missing or disagree, so resuming could silently diverge."""


class NonFiniteError(RuntimeError):
    """Training produced a non-finite loss, gradient or weight (see ``train.nonfinite``)."""


# ---- guards ------------------------------------------------------------------------------------
def non_finite_tensors(tensors: Mapping[str, torch.Tensor]) -> list[str]:
    """Names of the floating tensors holding a NaN or an infinity."""
    floats = {k: t for k, t in tensors.items() if torch.is_floating_point(t) and t.numel()}
    if not floats:
        return []
    # one fused max-|x| per tensor (never overflows; NaN and inf propagate)
    peaks = torch.stack([m.float() for m in torch._foreach_norm(list(floats.values()), math.inf)])
    bad = (~torch.isfinite(peaks)).nonzero().flatten().tolist()
    return [list(floats)[i] for i in bad]


def check_finite(tensors: Mapping[str, torch.Tensor], what: str) -> None:
    """Raise :class:`NonFiniteError` naming the tensors of ``what`` that are not finite."""
    bad = non_finite_tensors(tensors)
    if bad:
        raise NonFiniteError(f"{what}: {len(bad)} of {len(tensors)} tensors hold NaN/inf "
                             f"({', '.join(bad[:5])}{', ...' if len(bad) > 5 else ''}); "
                             "refusing to save them")


# ---- RNG state -----------------------------------------------------------------------------------
def rng_state(generators: Mapping[str, np.random.Generator] | None = None
              ) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(tensors, JSON) of every random stream a loop draws from: torch's CPU generator,
    numpy's and python's global ones, and the named ``np.random.Generator`` s."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    version, py_state, py_gauss = random.getstate()
    info = {"numpy_global": {"kind": kind, "keys": keys.tolist(), "pos": int(pos),
                             "has_gauss": int(has_gauss), "cached_gaussian": float(gauss)},
            "python": {"version": version, "state": list(py_state), "gauss_next": py_gauss},
            "generators": {n: g.bit_generator.state for n, g in (generators or {}).items()}}
    return {"torch_cpu": torch.get_rng_state()}, info


def set_rng_state(tensors: Mapping[str, torch.Tensor], info: Mapping[str, Any],
                  generators: Mapping[str, np.random.Generator] | None = None) -> None:
    """Inverse of :func:`rng_state` (``generators`` are updated in place)."""
    torch.set_rng_state(tensors["torch_cpu"])
    g = info["numpy_global"]
    np.random.set_state((g["kind"], np.asarray(g["keys"], dtype=np.uint32), g["pos"],
                         g["has_gauss"], g["cached_gaussian"]))
    p = info["python"]
    random.setstate((p["version"], tuple(p["state"]), p["gauss_next"]))
    for name, gen in (generators or {}).items():
        gen.bit_generator.state = info["generators"][name]


# ---- one checkpoint directory --------------------------------------------------------------------
def model_bytes(model: torch.nn.Module) -> bytes:
    """The model's safetensors file as bytes (deterministic: same weights, same bytes)."""
    tensors = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    check_finite(tensors, "model weights")
    return save(tensors)


def optimizer_tensors(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], Any]:
    """(tensors "<param index>.<name>", JSON param groups) of an optimizer's state."""
    sd = opt.state_dict()
    tensors = {f"{idx}.{key}": (val if torch.is_tensor(val) else torch.tensor(val)).contiguous()
               for idx, st in sd["state"].items() for key, val in st.items()}
    return tensors, sd["param_groups"]


def checkpoint_config(run_cfg: Any, vocab: Vocab) -> dict[str, Any]:
    """config.json of a checkpoint: the resolved run config and the vocabulary."""
    return {"run": config_lib.to_dict(run_cfg), "vocab": vocab.to_dict()}


def save_checkpoint(directory: Path, model: torch.nn.Module | bytes, config: dict[str, Any],
                    optimizer: torch.optim.Optimizer | None = None,
                    state: dict[str, Any] | None = None, with_rng: bool = False,
                    generators: Mapping[str, np.random.Generator] | None = None) -> None:
    """Write one checkpoint directory atomically (layout in the module docstring).

    ``model`` may be the bytes of :func:`model_bytes`. Non-finite weights or optimizer state
    raise :class:`NonFiniteError` before anything is written.
    """
    blob = model if isinstance(model, bytes) else model_bytes(model)
    opt = optimizer_tensors(optimizer) if optimizer is not None else None
    if opt is not None:
        check_finite(opt[0], "optimizer state")
    with atomic_dir(directory) as tmp:
        (tmp / MODEL).write_bytes(blob)
        write_json(tmp / "config.json", config)
        if opt is not None:
            save_file(opt[0], tmp / "optimizer.safetensors")
            write_json(tmp / "optimizer.json", opt[1])
        if with_rng:
            tensors, info = rng_state(generators)
            save_file(tensors, tmp / "rng.safetensors")
            write_json(tmp / "rng.json", info)
        if state is not None:
            write_json(tmp / "state.json", state)
        write_json(tmp / MANIFEST, {"kind": "checkpoint", "files": hash_files(tmp)})


def verify(directory: Path, names: list[str] | None = None) -> None:
    """Check ``names`` (default: all files) of a checkpoint against its manifest.

    Raises :class:`ArtifactError` naming a changed, truncated or missing file; a checkpoint of
    an older onefeed without a manifest loads with a warning.
    """
    directory = Path(directory)
    if not (directory / MANIFEST).is_file():
        warnings.warn(f"{directory}: no {MANIFEST} (a checkpoint from an older onefeed); "
                      "loading it without checksum verification", stacklevel=3)
        return
    files = json.loads((directory / MANIFEST).read_text())["files"]
    missing = [n for n in names or [] if n not in files and (directory / n).exists()]
    if missing:
        raise ArtifactError(f"checkpoint {directory}: {missing} not listed in its {MANIFEST}")
    verify_files(directory, {n: files[n] for n in (names or files) if n in files},
                 f"checkpoint {directory}")


def load_weights(directory: Path) -> dict[str, torch.Tensor]:
    """model.safetensors of a checkpoint, verified against its manifest."""
    verify(directory, [MODEL, "config.json"])
    return load_file(Path(directory) / MODEL)


def load_optimizer(directory: Path, opt: torch.optim.Optimizer) -> None:
    """Load a checkpoint's optimizer state (verified against its manifest) into ``opt``."""
    directory = Path(directory)
    verify(directory, ["optimizer.safetensors", "optimizer.json"])
    tensors = load_file(directory / "optimizer.safetensors")
    groups = json.loads((directory / "optimizer.json").read_text())
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, val in tensors.items():
        idx, name = key.split(".", 1)
        state.setdefault(int(idx), {})[name] = val
    opt.load_state_dict({"state": state, "param_groups": groups})


def load_rng(directory: Path, generators: Mapping[str, np.random.Generator] | None = None
             ) -> bool:
    """Restore the RNG streams saved in a checkpoint; False when it has none (older run)."""
    directory = Path(directory)
    if not (directory / "rng.json").is_file():
        warnings.warn(f"{directory}: no RNG state saved; the resumed run will not repeat the "
                      "uninterrupted one exactly", stacklevel=2)
        return False
    verify(directory, ["rng.safetensors", "rng.json"])
    set_rng_state(load_file(directory / "rng.safetensors"),
                  json.loads((directory / "rng.json").read_text()), generators)
    return True


# ---- the best/last pair of a run ----------------------------------------------------------------
def commit(out: Path, model: torch.nn.Module, config: dict[str, Any],
           optimizer: torch.optim.Optimizer, state: dict[str, Any], improved: bool,
           score: float | None = None,
           generators: Mapping[str, np.random.Generator] | None = None) -> None:
    """Save ``out/last`` and, when ``improved``, ``out/best`` — crash-consistently.

    ``state["best"]`` (epoch, step, score, model_sha256) is updated first and saved inside
    last/; best/ is written after it, so after a crash best/ either matches last's record or
    lags one save behind with the weights of last/ itself (see :func:`resume`).
    """
    blob = model_bytes(model)
    if improved:
        state["best"] = {"epoch": state["epoch"], "step": state["step"], "score": score,
                         "model_sha256": hashlib.sha256(blob).hexdigest()}
    save_checkpoint(out / "last", blob, config, optimizer, state, with_rng=True,
                    generators=generators)
    if improved:
        save_checkpoint(out / "best", blob, config)


def resume(out: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
           generators: Mapping[str, np.random.Generator] | None = None,
           repair: bool = True) -> dict[str, Any] | None:
    """Load ``out/last`` (weights, optimizer, RNG streams) and return its state, or None for
    a fresh run. Every file is verified; a run with checkpoints but no usable last/ is refused,
    never restarted from step 0. ``repair`` (rank 0 only) may recover last/ from a crashed
    rename and rebuild a best/ that lags behind last/."""
    last = _recover_last(out) if repair else out / "last"
    if not last.is_dir():
        if (out / "best").exists():
            raise CheckpointError(f"{out} has best/ but no last/ to resume from; rerun without "
                                  "resuming (--no-resume) to start over")
        return None
    if not (last / "state.json").is_file():
        raise CheckpointError(f"{last} has no state.json; cannot resume (use --no-resume)")
    verify(last)
    state = json.loads((last / "state.json").read_text())
    model.load_state_dict(load_file(last / MODEL))
    load_optimizer(last, optimizer)
    load_rng(last, generators)
    if repair:
        _reconcile_best(out, state)
    return state


def _recover_last(out: Path) -> Path:
    """``out/last``; if a crash between the two renames of its atomic save left only the
    previous copy as ``.last.old-PID``, the newest verified copy is renamed back."""
    last = out / "last"
    if last.is_dir():
        return last
    candidates = []
    for old in sorted(out.glob(".last.old-*")):
        try:
            verify(old)
            candidates.append((json.loads((old / "state.json").read_text())["step"], old))
        except (ArtifactError, OSError, KeyError, ValueError):
            continue
    if candidates:
        _, old = max(candidates)
        os.replace(old, last)
        warnings.warn(f"{last} was missing after an interrupted save; recovered it from "
                      f"{old.name}", stacklevel=3)
    elif any(out.glob(".last.old-*")):  # (a .last.tmp-* was never committed: ignored)
        raise CheckpointError(f"{out}: last/ is missing and none of its previous copies "
                              f"{sorted(p.name for p in out.glob('.last.old-*'))} verify")
    return last


def _reconcile_best(out: Path, state: dict[str, Any]) -> None:
    """Make best/ hold what ``state["best"]`` names, or refuse."""
    want = state.get("best")
    if not want:
        return
    best = out / "best"
    if (best / MODEL).is_file() and file_sha256(best / MODEL) == want["model_sha256"]:
        verify(best, [MODEL, "config.json"])
        return
    last = out / "last"
    if want["step"] == state["step"] and file_sha256(last / MODEL) == want["model_sha256"]:
        # crashed after committing last/ and before (or while) writing best/
        config = json.loads((last / "config.json").read_text())
        save_checkpoint(best, (last / MODEL).read_bytes(), config)
        warnings.warn(f"{best} lagged behind {last} after an interrupted save; rebuilt it "
                      f"from last/ (epoch {want['epoch']})", stacklevel=3)
        return
    raise CheckpointError(f"{best} does not hold the best checkpoint {last}/state.json names "
                          f"(epoch {want['epoch']}, step {want['step']}, sha256 "
                          f"{want['model_sha256'][:12]}...); refusing to resume (--no-resume "
                          "starts over)")


__all__ = ["CheckpointError", "NonFiniteError", "check_finite", "checkpoint_config", "commit",
           "load_optimizer", "load_rng", "load_weights", "model_bytes", "resume",
           "save_checkpoint", "verify"]


# ---- what a run was trained on -----------------------------------------------------------------
def input_record(data_dir: str | Path | None, sid_dir: str | Path) -> dict[str, Any]:
    """The inputs a run's manifest records: absolute ``data`` / ``sid`` dirs, the dataset
    fingerprint (``data_sha256``) and the sha256 of the SID table's parquet (``sid_sha256``)."""
    from onefeed.data.schemas import dataset_fingerprint

    sid = Path(sid_dir).resolve()
    table = sid / "sid_table.parquet"
    data = Path(data_dir).resolve() if data_dir else None
    return {"data": str(data) if data else None, "sid": str(sid),
            "data_sha256": dataset_fingerprint(data) if data else None,
            "sid_sha256": file_sha256(table) if table.exists() else None}


def check_trained_on(run: str | Path, manifest: Mapping[str, Any], data_dir: str | Path,
                 sid_dir: str | Path) -> None:
    """Refuse to pair a trained run with a dataset or SID table other than the ones it was
    trained on (``ArtifactError`` saying which differs); runs that recorded no fingerprint
    pass (older runs)."""
    from onefeed.data.schemas import dataset_fingerprint

    want_sid, want_data = manifest.get("sid_sha256"), manifest.get("data_sha256")
    table = Path(sid_dir) / "sid_table.parquet"
    if want_sid and table.exists() and file_sha256(table) != want_sid:
        raise ArtifactError(f"run {run} was trained on SID table sha256 {want_sid[:16]}, but "
                            f"{table} has {file_sha256(table)[:16]} (the SIDs were rebuilt): "
                            "retrain the model on these SIDs or pass the SID dir it was trained on")
    have = dataset_fingerprint(data_dir) if want_data else None
    if want_data and have != want_data:
        raise ArtifactError(f"run {run} was trained on dataset fingerprint {want_data[:16]}, but "
                            f"{data_dir} has {(have or '?')[:16]} (the data was re-prepared): "
                            "retrain the model or pass the dataset it was trained on")
