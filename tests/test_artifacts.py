"""Artifact plumbing: the directory lock that parallel bench runs of one suite share."""

import fcntl

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
