"""Artifact plumbing: atomic directory writes, hashes, and the provenance every manifest carries."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import platform
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any


# ---- output directories ----------------------------------------------------------------------
# A directory written by ``atomic_dir`` carries this marker (JSON ``{"kind": ...}``). It is written
# inside the temp dir just before the renames, so a temp dir with it is complete, and a target with
# it was made by onefeed (hash_files skips it: hidden).
MARKER = ".onefeed-artifact"
# Artifacts from before the marker, recognised by their files.
_LEGACY_KINDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("dataset", ("manifest.json", "events.parquet", "items.parquet")),
    ("sid", ("sid_table.parquet", "sid_table.json")),
    ("checkpoint", ("model.safetensors", "config.json")),
)
_ACTIVE: set[str] = set()  # temp / old dirs this process is writing right now
log = logging.getLogger("onefeed")


class OutputError(ValueError):
    """An output path was refused: it is a file, an input, or a directory onefeed did not make."""


def artifact_kind(directory: str | Path) -> str | None:
    """The kind of onefeed artifact ``directory`` holds (its marker, else its manifest's
    "kind", else recognised by its files), ``"artifact"`` when made by onefeed with no kind, or
    None when it is not an onefeed artifact."""
    d = Path(directory)
    for source in (d / MARKER, d / "manifest.json"):
        if source.is_file():
            try:
                kind = json.loads(source.read_text()).get("kind")
            except (OSError, ValueError, AttributeError):
                kind = None
            if kind or source.name == MARKER:
                return str(kind or "artifact")
    for kind, names in _LEGACY_KINDS:
        if all((d / n).is_file() for n in names):
            return kind
    return None


def check_target(target: str | Path, kind: str | None = None, replace: bool = True) -> None:
    """Raise :class:`OutputError` unless ``target`` may be (re)written as an artifact of ``kind``.

    Allowed: a missing or empty directory; with ``replace``, an onefeed artifact of the same kind
    (``kind=None``: of any kind). Never a regular file or a directory onefeed did not make.
    """
    target = Path(target)
    if target.is_symlink():  # the renames would move the link and delete where it points
        raise OutputError(f"{target} is a symbolic link: pass the directory it points to")
    if target.exists() and not target.is_dir():
        raise OutputError(f"{target} is a file, not a directory: choose another output path")
    if not target.exists() or not any(target.iterdir()):
        return
    found = artifact_kind(target)
    if found is None:
        raise OutputError(f"{target} already exists and is not a onefeed {_label(kind)}: refusing "
                          "to write there (its contents would be deleted); choose a new or empty "
                          "directory")
    if kind is not None and found not in (kind, "artifact"):
        raise OutputError(f"{target} holds a onefeed {_label(found)}, not a {_label(kind)}: "
                          "refusing to replace it; choose another output directory")
    if not replace:
        raise OutputError(f"{target} already holds a onefeed {_label(found)}: pass --force to "
                          "replace it (artifacts built from it will then refuse to load)")


def _label(kind: str | None) -> str:
    return {"sid": "SID build", None: "artifact"}.get(kind, str(kind))


def check_not_input(out: str | Path, inputs: list[str | Path | None], what: str = "output"
                    ) -> None:
    """Raise :class:`OutputError` when ``out`` equals, lies inside or contains an input (a file
    input protects its whole folder)."""
    o = Path(out).resolve()
    for given in inputs:
        if given is None or str(given) == "":
            continue
        i = Path(given).resolve()
        if i.is_file():
            i = i.parent
        if o == i or i in o.parents or o in i.parents:
            raise OutputError(f"{what} {out} overlaps the input {given}: writing there could "
                              "delete the input; choose a separate output directory")


def _leftovers(target: Path) -> list[tuple[str, int | None, Path]]:
    """``(role, pid, path)`` of ``.NAME.tmp-PID-*`` / ``.NAME.old-PID`` / ``.NAME.trash-PID``."""
    prefix = f".{target.name}."
    if not target.parent.is_dir():
        return []
    out = []
    for path in target.parent.iterdir():
        role, _, tail = path.name[len(prefix):].partition("-")
        if not path.name.startswith(prefix) or role not in ("tmp", "old", "trash"):
            continue
        head = tail.split("-")[0]
        out.append((role, int(head) if head.isdigit() else None, path))
    return out


def _in_use(path: Path, pid: int | None) -> bool:
    """Whether a live writer may still own ``path`` (leftovers of dead processes are stale)."""
    if pid is None:
        return False
    if pid == os.getpid():
        return str(path) in _ACTIVE
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def recover(target: str | Path) -> Path | None:
    """Finish or undo an interrupted :func:`atomic_dir` write of ``target``.

    If ``target`` is missing, the newest complete copy left beside it (a marked temp dir, else a
    former target ``.NAME.old-PID``) becomes ``target`` again (logged, returned). Leftovers of dead
    writers are then removed: incomplete temp dirs, stale old copies, trash.
    """
    target = Path(target)
    stale = [(role, path) for role, pid, path in _leftovers(target) if not _in_use(path, pid)]
    restored = None
    if stale and not target.exists():
        done = [p for r, p in stale if r == "tmp" and (p / MARKER).is_file()]
        olds = [p for r, p in stale if r == "old"]
        newest = (max(done, key=lambda p: (p / MARKER).stat().st_mtime_ns) if done else
                  max(olds, key=lambda p: p.stat().st_mtime_ns) if olds else None)
        if newest is not None:
            if not (newest / MARKER).exists():  # a former target from before the marker
                _mark_complete(newest, artifact_kind(newest))
            os.replace(newest, target)
            restored = newest
            log.warning("%s was missing after an interrupted write; restored it from %s",
                        target, newest.name)
    for _, path in stale:
        if path != restored:
            shutil.rmtree(path, ignore_errors=True)
    return restored


def _mark_complete(tmp: Path, kind: str | None) -> None:
    with open(tmp / MARKER, "w", encoding="utf-8") as fh:
        json.dump({"kind": kind}, fh)
        fh.flush()
        os.fsync(fh.fileno())


def _swap(tmp: Path, target: Path) -> None:
    """The commit: target -> .old-PID, tmp -> target (the commit point), .old -> .trash, rm."""
    old = target.parent / f".{target.name}.old-{os.getpid()}"
    trash = target.parent / f".{target.name}.trash-{os.getpid()}"
    _ACTIVE.update((str(old), str(trash)))
    try:
        had = target.exists()
        if had:
            os.replace(target, old)
        os.replace(tmp, target)
        if had:
            os.replace(old, trash)  # an .old dir is always a whole former target; trash is not
            shutil.rmtree(trash)
    finally:
        _ACTIVE.difference_update((str(old), str(trash)))


@contextlib.contextmanager
def atomic_dir(target: str | Path, kind: str | None = None, replace: bool = True
               ) -> Iterator[Path]:
    """Yield a temp dir beside ``target``; on success it replaces ``target`` by renames.

    First recovers leftovers of an interrupted earlier write (:func:`recover`) and refuses an
    output onefeed may not replace (:func:`check_target`: a file, a foreign directory, another
    kind, or with ``replace=False`` any existing artifact). On an exception before the commit
    rename the temp dir is removed and ``target`` keeps its old contents; a crash at any point
    leaves the old or the new complete copy, restored by the next ``atomic_dir`` / ``recover``.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    recover(target)
    check_target(target, kind, replace)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-{os.getpid()}-", dir=target.parent))
    _ACTIVE.add(str(tmp))
    try:
        tmp.chmod(0o755)  # mkdtemp makes 0700; artifacts are meant to be shared
        yield tmp
        _mark_complete(tmp, kind)
        check_target(target, kind, replace)  # something may have appeared there meanwhile
        _swap(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        _ACTIVE.discard(str(tmp))
        with contextlib.suppress(OSError):
            recover(target)  # an exception between the renames: put the old copy back
        raise
    finally:
        _ACTIVE.discard(str(tmp))


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


def read_json_object(path: str | Path, what: str, error: type[Exception] = ArtifactError
                     ) -> dict[str, Any]:
    """``path`` parsed as a JSON object, else ``error("<what> (<file>: <why>)")``: an
    unreadable, non-UTF-8, malformed or non-object file is one clear line, never a traceback."""
    path = Path(path)
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise error(f"{what} ({path.name}: {type(exc).__name__}: {str(exc)[:200]})") from None
    if not isinstance(obj, dict):
        raise error(f"{what} ({path.name} is not a JSON object)")
    return obj


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


_VERIFIED: dict[tuple[str, int, int, int, int], str] = {}  # file state -> sha256, this process


def _sha256_once(path: Path) -> str:
    """``file_sha256`` computed once per process per unchanged file (resolved path, size,
    inode, mtime_ns, ctime_ns). Like git's racy-index rule, a file changed within the last 2 s is
    never cached: a same-size rewrite in the same clock tick would look unchanged."""
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_ino, st.st_mtime_ns, st.st_ctime_ns)
    if key in _VERIFIED:
        return _VERIFIED[key]
    digest = file_sha256(path)
    if time.time_ns() - max(st.st_mtime_ns, st.st_ctime_ns) > 2_000_000_000:
        _VERIFIED[key] = digest
    return digest


def _as_hashes(expected: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Accept the older ``{name: sha256}`` form (prepared datasets before file sizes)."""
    return {n: (w if isinstance(w, dict) else {"sha256": w}) for n, w in expected.items()}


def verify_files(directory: str | Path, expected: dict[str, Any], artifact: str) -> None:
    """Raise :class:`ArtifactError` naming the file and ``artifact`` when a file listed in
    ``expected`` (as written by :func:`hash_files`) is missing or its size / sha256 differ."""
    directory = Path(directory)
    for name, want in _as_hashes(expected).items():
        path = directory / name
        if not path.is_file():
            raise ArtifactError(f"{artifact}: {path} is missing (its manifest lists it)")
        if "bytes" in want and path.stat().st_size != want["bytes"]:
            raise ArtifactError(f"{artifact}: {path} has {path.stat().st_size} bytes, its manifest "
                                f"says {want['bytes']} (the file was changed or truncated)")
        if _sha256_once(path) != want["sha256"]:
            raise ArtifactError(f"{artifact}: {path} does not match the sha256 in its manifest "
                                "(the file was changed or corrupted)")


_WARNED: set[str] = set()


def read_manifest(directory: str | Path, kind: str, what: str, hint: str = "") -> dict[str, Any]:
    """``directory``/manifest.json of a ``kind`` artifact (``what``: its name in messages, e.g.
    "OneBar artifact"), every file it lists checked against its sha256; else ArtifactError."""
    directory = Path(directory)
    hint = f" ({hint})" if hint else ""
    manifest = read_json_object(directory / "manifest.json", f"{directory}: not a {what}{hint}")
    if manifest.get("kind") != kind:
        raise ArtifactError(f"{directory}: not a {what}: manifest kind "
                            f"{manifest.get('kind')!r}, expected {kind!r}{hint}")
    if not isinstance(manifest.get("files"), dict):
        raise ArtifactError(f"{directory}: manifest.json lists no files to check ({what})")
    verify_files(directory, manifest["files"], f"{what} {directory}")
    return manifest


def warn_once(message: str) -> None:
    """Log ``message`` as a one-line warning the first time this process sees it."""
    if message not in _WARNED:
        _WARNED.add(message)
        log.warning("%s", message)


def verify_or_warn(directory: str | Path, expected: dict[str, Any] | None, artifact: str) -> bool:
    """:func:`verify_files`, or for an artifact written before file hashes (``expected`` None) a
    one-line warning, once per artifact and process. Returns whether the files were verified."""
    if expected:
        verify_files(directory, expected, artifact)
        return True
    warn_once(f"{artifact} has no file hashes (written by an older onefeed); loading it "
              "unverified")
    return False


def fingerprint(files: dict[str, Any]) -> str:
    """sha256 over ``{name: sha256}`` file hashes (name-sorted): one id for an artifact's bytes."""
    lines = "".join(f"{n}\t{w['sha256']}\n" for n, w in sorted(_as_hashes(files).items()))
    return hashlib.sha256(lines.encode()).hexdigest()


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
