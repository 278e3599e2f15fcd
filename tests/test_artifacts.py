"""Artifact plumbing: the directory lock that parallel bench runs of one suite share."""

import fcntl
from pathlib import Path

import pytest

from onefeed.artifacts import dir_lock


def _try_lock(path):
    fh = open(path, "a")
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fcntl.flock(fh, fcntl.LOCK_UN)
        return True
    except BlockingIOError:
        return False
    finally:
        fh.close()


def test_dir_lock_is_exclusive_until_the_block_ends(tmp_path):
    target = tmp_path / "results" / "suite"
    with dir_lock(target):
        assert (target / ".lock").exists()
        assert not _try_lock(target / ".lock")  # another holder has to wait
    assert _try_lock(target / ".lock")


def test_dir_lock_is_released_on_error(tmp_path):
    with pytest.raises(RuntimeError, match="boom"):
        with dir_lock(tmp_path):
            raise RuntimeError("boom")
    assert _try_lock(tmp_path / ".lock")


def test_hash_files_and_verify_files_name_the_bad_file(tmp_path):
    from onefeed.artifacts import ArtifactError, hash_files, verify_files

    (tmp_path / "a.bin").write_bytes(b"abc")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.txt").write_text("x")
    (tmp_path / "manifest.json").write_text("{}")
    (tmp_path / ".hidden").write_text("h")
    hashes = hash_files(tmp_path)
    assert list(hashes) == ["a.bin", "sub/b.txt"]
    assert hashes["a.bin"] == {"bytes": 3, "sha256": "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"}
    verify_files(tmp_path, hashes, "toy artifact")
    (tmp_path / "a.bin").write_bytes(b"abd")
    with pytest.raises(ArtifactError, match=r"toy artifact: .*a.bin does not match the sha256"):
        verify_files(tmp_path, hashes, "toy artifact")
    (tmp_path / "a.bin").write_bytes(b"ab")
    with pytest.raises(ArtifactError, match="has 2 bytes, its manifest says 3"):
        verify_files(tmp_path, hashes, "toy artifact")
    (tmp_path / "sub" / "b.txt").unlink()
    with pytest.raises(ArtifactError, match="b.txt is missing"):
        verify_files(tmp_path, {"sub/b.txt": hashes["sub/b.txt"]}, "toy artifact")


# ---- output directories: never delete what onefeed did not make --------------------------------
def _write(target, text, **kw):
    from onefeed.artifacts import atomic_dir

    with atomic_dir(target, **kw) as tmp:
        (tmp / "v").write_text(text)


def _leftovers(parent):
    return sorted(p.name for p in parent.iterdir() if p.name.startswith("."))


def test_atomic_dir_refuses_a_directory_it_did_not_make_and_keeps_its_files(tmp_path):
    from onefeed.artifacts import OutputError

    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.txt").write_text("years of work")
    with pytest.raises(OutputError, match="not a onefeed artifact"):
        _write(mine, "new")
    assert (mine / "thesis.txt").read_text() == "years of work"
    assert _leftovers(tmp_path) == []
    empty = tmp_path / "empty"
    empty.mkdir()
    _write(empty, "new")  # an empty directory holds nothing to lose
    assert (empty / "v").read_text() == "new"


def test_atomic_dir_refuses_a_regular_file_or_a_symlink(tmp_path):
    from onefeed.artifacts import OutputError

    (tmp_path / "notes.txt").write_text("keep")
    with pytest.raises(OutputError, match="is a file, not a directory"):
        _write(tmp_path / "notes.txt", "new")
    assert (tmp_path / "notes.txt").read_text() == "keep"
    _write(tmp_path / "real", "old")
    (tmp_path / "link").symlink_to(tmp_path / "real")
    with pytest.raises(OutputError, match="is a symbolic link"):
        _write(tmp_path / "link", "new")
    assert (tmp_path / "real" / "v").read_text() == "old"


def test_replacing_needs_the_same_kind_and_replace(tmp_path):
    from onefeed.artifacts import OutputError, artifact_kind

    target = tmp_path / "data"
    _write(target, "v1", kind="dataset")
    assert artifact_kind(target) == "dataset"
    with pytest.raises(OutputError, match="pass --force"):
        _write(target, "v2", kind="dataset", replace=False)
    with pytest.raises(OutputError, match="holds a onefeed dataset, not a SID build"):
        _write(target, "v2", kind="sid")
    assert (target / "v").read_text() == "v1"
    _write(target, "v2", kind="dataset")
    assert (target / "v").read_text() == "v2"
    ckpt = tmp_path / "last"  # training's repeated atomic_dir(path) keeps working
    _write(ckpt, "epoch1")
    _write(ckpt, "epoch2")
    assert (ckpt / "v").read_text() == "epoch2" and _leftovers(tmp_path) == []


def test_check_not_input_refuses_equal_inside_and_containing(tmp_path):
    from onefeed.artifacts import OutputError, check_not_input

    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "events.csv").write_text("u,i\n")
    for out in (raw, raw / "prepared", tmp_path, raw / "events.csv"):
        with pytest.raises(OutputError, match="overlaps the input"):
            check_not_input(out, [raw])
    with pytest.raises(OutputError, match="overlaps the input"):  # a file input guards its folder
        check_not_input(raw, [raw / "events.csv"])
    check_not_input(tmp_path / "out", [raw, None])


# The commit's file-system steps: 1 target -> .old, 2 tmp -> target, 3 .old -> .trash, 4 rm trash.
# A crash at step n keeps the old copy (n <= 1) or, once the new copy is complete and the old one
# has moved aside, the new one (n >= 2). Step 0 = a crash while the body writes.
EXPECTED = {0: "old", 1: "old", 2: "new", 3: "new", 4: "new", 5: "new"}


def _count_calls(monkeypatch, n, crash):
    import os
    import shutil

    calls = [0]

    def counted(fn):
        def wrapper(*args, **kwargs):
            calls[0] += 1
            if calls[0] == n:
                crash()
            return fn(*args, **kwargs)
        return wrapper

    monkeypatch.setattr(os, "replace", counted(os.replace))
    monkeypatch.setattr(shutil, "rmtree", counted(shutil.rmtree))


@pytest.mark.parametrize("step", [1, 2, 3, 4])
def test_an_error_at_each_commit_step_leaves_a_complete_copy(tmp_path, monkeypatch, step):
    target = tmp_path / "art"
    _write(target, "old")

    def boom():
        raise OSError(f"injected failure at step {step}")

    with monkeypatch.context() as m:
        _count_calls(m, step, boom)
        with pytest.raises(OSError, match="injected"):
            _write(target, "new")
    want = "old" if step <= 2 else "new"  # an error before the commit rename rolls back
    assert (target / "v").read_text() == want
    assert _leftovers(tmp_path) == []


CHILD = r'''
import os, shutil, signal, sys
from pathlib import Path
from onefeed.artifacts import atomic_dir
target, step, how = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3]

def crash():
    if how == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    os._exit(3)

calls = [0]
def counted(fn):
    def wrapper(*args, **kwargs):
        calls[0] += 1
        if calls[0] == step:
            crash()
        return fn(*args, **kwargs)
    return wrapper

os.replace, shutil.rmtree = counted(os.replace), counted(shutil.rmtree)
with atomic_dir(target) as tmp:
    (tmp / "v").write_text("new")
    if step == 0:
        crash()
'''


@pytest.mark.parametrize("how", ["exit", "kill"])
@pytest.mark.parametrize("step", sorted(EXPECTED))
def test_a_real_crash_at_each_step_loses_nothing(tmp_path, step, how):
    import subprocess
    import sys

    from onefeed.artifacts import recover

    target = tmp_path / "art"
    _write(target, "old")
    src = str(Path(__file__).resolve().parents[1] / "src")
    proc = subprocess.run([sys.executable, "-c", CHILD, str(target), str(step), how],
                          env={"PYTHONPATH": src}, capture_output=True, text=True)
    assert proc.returncode == (0 if step == 5 else -9 if how == "kill" else 3), proc.stderr
    recover(target)
    assert (target / "v").read_text() == EXPECTED[step]
    assert _leftovers(tmp_path) == []
    _write(target, "next")  # and the next write works as usual
    assert (target / "v").read_text() == "next" and _leftovers(tmp_path) == []


def test_recover_restores_a_target_left_only_as_old_copy(tmp_path, caplog):
    """Issue 20: the old two-rename crash left only ``.NAME.old-PID`` (PID long dead)."""

    (tmp_path / ".data.old-999999999").mkdir()
    (tmp_path / ".data.old-999999999" / "v").write_text("good")
    (tmp_path / ".data.tmp-999999999-abc").mkdir()  # incomplete: no marker
    with caplog.at_level("WARNING", logger="onefeed"):
        _write(tmp_path / "data", "new")
    assert "restored it from .data.old-999999999" in caplog.text
    assert (tmp_path / "data" / "v").read_text() == "new" and _leftovers(tmp_path) == []


def test_recover_leaves_a_live_writer_alone(tmp_path):
    import os

    from onefeed.artifacts import recover

    live = tmp_path / f".data.tmp-{os.getppid()}-xyz"
    live.mkdir()
    recover(tmp_path / "data")
    assert live.exists() and not (tmp_path / "data").exists()


def test_verified_files_are_rehashed_after_any_change(tmp_path):
    """The once-per-process cache keys on path, size, inode, mtime and ctime, and only holds
    files unchanged for 2 s; a same-size rewrite with mtime set back still changes ctime."""
    import os
    import time

    from onefeed import artifacts
    from onefeed.artifacts import ArtifactError, hash_files, verify_files

    f = tmp_path / "a.bin"
    f.write_bytes(b"abc")
    hashes = hash_files(tmp_path)
    verify_files(tmp_path, hashes, "toy")
    assert not any(key[0] == str(f.resolve()) for key in artifacts._VERIFIED)  # too fresh
    time.sleep(2.1)
    verify_files(tmp_path, hashes, "toy")
    cached = [k for k in artifacts._VERIFIED if k[0] == str(f.resolve())]
    assert len(cached) == 1 and artifacts._VERIFIED[cached[0]] == hashes["a.bin"]["sha256"]
    mtime = f.stat().st_mtime_ns
    f.write_bytes(b"abd")
    os.utime(f, ns=(mtime, mtime))  # same size, same mtime: only ctime tells
    with pytest.raises(ArtifactError, match="does not match"):
        verify_files(tmp_path, hashes, "toy")


def test_read_manifest_checks_kind_and_files(tmp_path):
    from onefeed.artifacts import ArtifactError, hash_files, read_manifest, write_json

    (tmp_path / "a.txt").write_text("x")
    write_json(tmp_path / "manifest.json",
               {"kind": "thing", "files": hash_files(tmp_path, ["a.txt"])})
    assert read_manifest(tmp_path, "thing", "thing artifact")["kind"] == "thing"
    with pytest.raises(ArtifactError, match="not a other artifact: manifest kind 'thing'"):
        read_manifest(tmp_path, "other", "other artifact")
    (tmp_path / "a.txt").write_text("changed")
    with pytest.raises(ArtifactError, match="a.txt"):
        read_manifest(tmp_path, "thing", "thing artifact")
    write_json(tmp_path / "manifest.json", {"kind": "thing"})
    with pytest.raises(ArtifactError, match="lists no files"):
        read_manifest(tmp_path, "thing", "thing artifact")
    with pytest.raises(ArtifactError, match=r"not a thing artifact \(hint\)"):
        read_manifest(tmp_path / "nowhere", "thing", "thing artifact", "hint")
