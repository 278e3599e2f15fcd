"""Optional download of the official MovieLens archives, verified by sha256.

Only used when a user asks for it (``fetch("ml-100k", dest)`` or ``load_raw(...,
download=True)``); tests never touch the network. The files stay under the GroupLens terms:
research use, no redistribution (see docs/DATA_SOURCES.md).
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from onefeed.data.schemas import DataError


@dataclass(frozen=True)
class Archive:
    url: str
    sha256: str
    folder: str  # top-level folder inside the zip
    files: tuple[str, ...]  # what the loader needs from it


# sha256 of the official GroupLens zips (MD5s published by GroupLens: ml-100k
# 0e33842e24a9c977be4e0107933c0723, ml-1m c4d9eecfca2ab87c1945afe126590906).
ARCHIVES: dict[str, Archive] = {
    "ml-100k": Archive("https://files.grouplens.org/datasets/movielens/ml-100k.zip",
                       "50d2a982c66986937beb9ffb3aa76efe955bf3d5c6b761f4e3a7cd717c6a3229",
                       "ml-100k", ("u.data", "u.item", "u.genre")),
    "ml-1m": Archive("https://files.grouplens.org/datasets/movielens/ml-1m.zip",
                     "a6898adb50b9ca05aa231689da44c217cb524e7ebd39d264c56e2832f2c54e20",
                     "ml-1m", ("ratings.dat", "movies.dat", "users.dat")),
}


def fetch(name: str, dest: str | Path, opener: Callable[..., Any] | None = None,
          archive: Archive | None = None) -> Path:
    """Download ``name``'s zip, verify sha256, extract its files into ``dest/<folder>``.

    Returns the folder. Raises ``DataError`` when offline or the checksum differs; nothing is
    left in ``dest`` in either case.
    """
    if archive is None:
        if name not in ARCHIVES:
            raise DataError(f"no official download for {name!r}; known: {sorted(ARCHIVES)}")
        archive = ARCHIVES[name]
    target = Path(dest) / archive.folder
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        zip_path = Path(tmp) / "archive.zip"
        _download(archive.url, zip_path, opener or urllib.request.urlopen)
        digest = _sha256(zip_path)
        if digest != archive.sha256:
            raise DataError(f"{archive.url}: sha256 mismatch (got {digest}, expected "
                            f"{archive.sha256}); the download is corrupt or the file changed. "
                            "Nothing was written.")
        staged = Path(tmp) / archive.folder
        staged.mkdir()
        with zipfile.ZipFile(zip_path) as zf:
            for fname in archive.files:
                member = f"{archive.folder}/{fname}"
                if member not in zf.namelist():
                    raise DataError(f"{archive.url}: archive has no {member}")
                with zf.open(member) as src, open(staged / fname, "wb") as out:
                    shutil.copyfileobj(src, out)
        target.mkdir(exist_ok=True)
        for fname in archive.files:
            (staged / fname).replace(target / fname)
    return target


def _download(url: str, path: Path, opener: Callable[..., Any]) -> None:
    try:
        with opener(url, timeout=60) as response, open(path, "wb") as out:
            shutil.copyfileobj(response, out)
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        raise DataError(f"cannot download {url} ({exc}); this machine looks offline. Download "
                        "it elsewhere, unzip it and put its files in the folder the loader "
                        "names (see docs/DATA_SOURCES.md).") from None


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            h.update(block)
    return h.hexdigest()
