"""Artifact plumbing: atomic directory writes, hashes, and the provenance every manifest carries."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any


@contextlib.contextmanager
def atomic_dir(target: str | Path) -> Iterator[Path]:
    """Yield a temp dir beside ``target``; on success it replaces ``target`` in one rename.

    On an exception the temp dir is removed and ``target`` is left exactly as it was, so a
    half-written artifact never looks complete.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    tmp.chmod(0o755)  # mkdtemp makes 0700; artifacts are meant to be shared
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = None
    if target.exists():
        old = target.parent / f".{target.name}.old-{os.getpid()}"
        os.replace(target, old)
    os.replace(tmp, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def dir_lock(directory: str | Path, name: str = ".lock") -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``directory/name`` (created) until the block ends, so
    processes that read, merge and rewrite the same files there take turns."""
    import fcntl

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / name, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write a file via a temp file + rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.chmod(tmp, 0o644)  # mkstemp makes 0600
    os.replace(tmp, path)


def write_json(path: str | Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, default=str, sort_keys=False) + "\n")


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


class ArtifactError(ValueError):
    """An artifact on disk is missing a file, or a file does not match its manifest."""


def hash_files(directory: str | Path, names: list[str] | None = None) -> dict[str, dict[str, Any]]:
    """``{relative path: {"sha256", "bytes"}}`` for ``names`` (default: every regular file under
    ``directory`` except manifest.json and hidden files), sorted by path."""
    directory = Path(directory)
    if names is None:
        names = sorted(str(p.relative_to(directory)) for p in directory.rglob("*")
                       if p.is_file() and p.name != "manifest.json"
                       and not any(part.startswith(".") for part in p.relative_to(directory).parts))
    return {n: {"sha256": file_sha256(directory / n), "bytes": (directory / n).stat().st_size}
            for n in sorted(names)}


def verify_files(directory: str | Path, expected: dict[str, dict[str, Any]], artifact: str) -> None:
    """Raise :class:`ArtifactError` naming the file and ``artifact`` when a file listed in
    ``expected`` (as written by :func:`hash_files`) is missing or its size / sha256 differ."""
    directory = Path(directory)
    for name, want in expected.items():
        path = directory / name
        if not path.is_file():
            raise ArtifactError(f"{artifact}: {path} is missing (its manifest lists it)")
        if "bytes" in want and path.stat().st_size != want["bytes"]:
            raise ArtifactError(f"{artifact}: {path} has {path.stat().st_size} bytes, its manifest "
                                f"says {want['bytes']} (the file was changed or truncated)")
        if file_sha256(path) != want["sha256"]:
            raise ArtifactError(f"{artifact}: {path} does not match the sha256 in its manifest "
                                "(the file was changed or corrupted)")


def git_commit(cwd: str | Path | None = None) -> str:
    """The current commit (with ``+dirty`` when the tree has changes), or ``unknown``."""
    cwd = cwd or Path(__file__).resolve().parent
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True,
                             text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd,
                               capture_output=True, text=True, check=True).stdout.strip()
        return sha + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def machine_info() -> dict[str, Any]:
    """What a benchmark number depends on: CPU, cores, memory, Python and key library versions."""
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
    }
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu_model"] = line.split(":", 1)[1].strip()
                break
    with contextlib.suppress(OSError, ValueError):
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        info["memory_gib"] = round(kb / 2**20, 1)
    info["versions"] = library_versions()
    return info


def library_versions() -> dict[str, str]:
    out = {}
    for pkg in ("onefeed", "torch", "numpy", "polars", "faiss-cpu", "sentence-transformers"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            out[pkg] = metadata.version(pkg)
    return out
