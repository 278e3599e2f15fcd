"""Crash-safe, exact resume of ``train.rec.train``: a run killed with SIGKILL at a chosen moment
and resumed ends bit-identical to the uninterrupted run (weights, best epoch, scores)."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from onefeed.train import rec
from onefeed.artifacts import file_sha256
from onefeed.sid.table import SidTable



def _load_sibling(name: str):
    """A test module beside this one, by path (tests/ is not a package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"_onefeed_{name}",
                                                  Path(__file__).parent / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_t = _load_sibling("test_rec")
CODES, SEQS, SMALL, make_tiny_dataset = _t.CODES, _t.SEQS, _t.SMALL, _t.make_tiny_dataset

# validation improves at epochs 1, 2 and 4 (so best/ is saved three times, last/ five)
ARGS = SMALL + ["train.epochs=5", "train.eval_every=1", "train.patience=10", "train.seed=2"]

# Runs ``python -m onefeed.train.rec`` and SIGKILLs itself at the moment named by KILL_AT:
#   step:N           when step N starts (mid-epoch)
#   commit:K         right after the K-th checkpoint commit (last/ and best/ written)
#   rename:PREFIX:K  right after the K-th os.replace onto a name starting with PREFIX
#                    (".last.old-": between the two renames of last/'s atomic save)
#   save:NAME:K      when the K-th save of checkpoint NAME starts (best: last/ already committed)
#   write:FILE:K     before the K-th write of FILE inside a checkpoint's temp dir
DRIVER = r"""
import os, signal, sys
from pathlib import Path
from onefeed import checkpoint
from onefeed.train import loop, rec

kind, *spec = os.environ.get("KILL_AT", "none").split(":")
count = [0]

def die():
    os.kill(os.getpid(), signal.SIGKILL)

def nth(k):
    count[0] += 1
    return count[0] == int(k)

if kind == "step":
    orig_lr = loop.lr_at
    def lr_at(step, total, cfg):
        if step == int(spec[0]):
            die()
        return orig_lr(step, total, cfg)
    loop.lr_at = lr_at
elif kind == "commit":
    orig_commit = checkpoint.commit
    def commit(*a, **kw):
        orig_commit(*a, **kw)
        if nth(spec[0]):
            die()
    checkpoint.commit = commit
elif kind == "rename":
    orig_replace = os.replace
    def replace(src, dst):
        orig_replace(src, dst)
        if Path(dst).name.startswith(spec[0]) and nth(spec[1]):
            die()
    os.replace = replace
elif kind == "save":
    orig_save = checkpoint.save_checkpoint
    def save_checkpoint(directory, *a, **kw):
        if Path(directory).name == spec[0] and nth(spec[1]):
            die()
        return orig_save(directory, *a, **kw)
    checkpoint.save_checkpoint = save_checkpoint
elif kind == "write":
    orig_write = checkpoint.write_json
    def write_json(path, obj):
        if Path(path).name == spec[0] and nth(spec[1]):
            die()
        return orig_write(path, obj)
    checkpoint.write_json = write_json
rec.main(sys.argv[1:])
"""


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("resume")
    make_tiny_dataset(SEQS, 12).save(root / "data")
    SidTable(CODES, (3, 2, 2)).save(root / "sid")
    (root / "driver.py").write_text(DRIVER)
    ref = _run(root, root / "ref")
    assert ref.returncode == 0, ref.stderr[-3000:]
    return root


def _run(root: Path, out: Path, kill_at: str | None = None, extra: list[str] | None = None
         ) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(Path(rec.__file__).parents[2]),
               KILL_AT=kill_at or "none")
    cmd = [sys.executable, str(root / "driver.py"), "--data", str(root / "data"),
           "--sid", str(root / "sid"), "--out", str(out),
           *[a for s in ARGS + (extra or []) for a in ("--set", s)]]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)


def _assert_same_run(a: Path, b: Path) -> None:
    for ckpt in ("last", "best"):
        wa = load_file(a / ckpt / "model.safetensors")
        wb = load_file(b / ckpt / "model.safetensors")
        assert wa.keys() == wb.keys()
        assert all(torch.equal(wa[k], wb[k]) for k in wa), ckpt
    sa, sb = (json.loads((d / "last" / "state.json").read_text()) for d in (a, b))
    drop = lambda hist: [{k: v for k, v in h.items() if k != "seconds"} for h in hist]  # noqa
    assert drop(sa["history"]) == drop(sb["history"])
    for key in ("epoch", "step", "best_epoch", "best_ndcg10", "best", "skipped_steps"):
        assert sa[key] == sb[key], key


@pytest.mark.parametrize("kill_at", [
    "step:7",                 # mid-epoch 2: the epoch is redone from last/ of epoch 1
    "commit:2",               # right after the checkpoint of epoch 2
    "rename:.last.old-:2",    # between the two renames of last/'s atomic save (last/ is gone)
    "save:best:2",            # last/ committed, best/ not yet written (best/ lags behind)
    "rename:.best.old-:1",    # between the two renames of best/'s save (best/ is gone)
    "write:state.json:3",     # in the middle of writing last/'s temp dir
])
def test_killed_and_resumed_run_is_bit_identical(world, kill_at):
    out = world / kill_at.replace(":", "_").replace(".", "")
    killed = _run(world, out, kill_at)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    if kill_at.startswith("rename:.last"):
        assert not (out / "last").exists() and list(out.glob(".last.old-*"))
    if kill_at.startswith("save:best"):
        state = json.loads((out / "last" / "state.json").read_text())
        assert file_sha256(out / "best" / "model.safetensors") != state["best"]["model_sha256"]
    resumed = _run(world, out)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    _assert_same_run(world / "ref", out)
    best = json.loads((world / "ref" / "last" / "state.json").read_text())["best"]
    assert file_sha256(out / "best" / "model.safetensors") == best["model_sha256"]


def test_flipped_byte_in_optimizer_state_refuses_resume(world, tmp_path):
    import shutil

    out = tmp_path / "run"
    shutil.copytree(world / "ref", out)
    _flip_middle(out / "last" / "optimizer.safetensors")
    before = (out / "last" / "state.json").read_text()
    proc = _run(world, out, extra=["train.epochs=6"])
    assert proc.returncode != 0
    assert "optimizer.safetensors" in proc.stderr and "sha256" in proc.stderr, proc.stderr[-2000:]
    assert (out / "last" / "state.json").read_text() == before  # nothing trained or saved


def _resume_in_process(world: Path, out: Path) -> dict:
    return rec.run(world / "data", world / "sid", None, out, ARGS + ["train.epochs=6"])


def test_best_that_disagrees_with_last_state_is_refused(world, tmp_path):
    import shutil

    from onefeed.checkpoint import CheckpointError

    out = tmp_path / "run"
    shutil.copytree(world / "ref", out)
    shutil.rmtree(out / "best")
    shutil.copytree(out / "last", out / "best")  # epoch 5's weights; state names epoch 4's
    with pytest.raises(CheckpointError, match="does not hold the best checkpoint"):
        _resume_in_process(world, out)


def test_checkpoints_without_a_usable_last_are_refused_not_restarted(world, tmp_path):
    import shutil

    from onefeed.checkpoint import CheckpointError

    out = tmp_path / "run"
    shutil.copytree(world / "ref", out)
    os.replace(out / "last", out / ".last.old-123")
    _flip_middle(out / ".last.old-123" / "model.safetensors")
    with pytest.raises(CheckpointError, match="none of its previous copies"):
        _resume_in_process(world, out)
    shutil.rmtree(out / ".last.old-123")
    with pytest.raises(CheckpointError, match="has best/ but no last/"):
        _resume_in_process(world, out)
    assert not (out / "last").exists()


def _flip_middle(path: Path) -> None:
    blob = bytearray(path.read_bytes())
    blob[len(blob) // 2] ^= 0x40
    path.write_bytes(bytes(blob))
