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
