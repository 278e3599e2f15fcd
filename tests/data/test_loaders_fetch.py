"""fetch: sha256 verification with a fake URL opener (no network in tests)."""

from __future__ import annotations

import hashlib
import io
import urllib.error
import zipfile

import pytest

from onefeed.data.datasets.fetch import ARCHIVES, Archive, fetch
from onefeed.data.schemas import DataError


def fake_zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name in ("u.data", "u.item", "u.genre"):
            zf.writestr(f"ml-100k/{name}", f"content of {name}\n")
    return buf.getvalue()


def opener_for(payload: bytes):
    def opener(url, timeout=None):
        return io.BytesIO(payload)
    return opener


def test_checksum_mismatch_writes_nothing(tmp_path):
    with pytest.raises(DataError, match="sha256 mismatch"):
        fetch("ml-100k", tmp_path, opener=opener_for(fake_zip()))
    assert list(tmp_path.iterdir()) == []


def test_verified_download_is_extracted(tmp_path):
    payload = fake_zip()
    archive = Archive("https://example.invalid/ml-100k.zip",
                      hashlib.sha256(payload).hexdigest(), "ml-100k",
                      ARCHIVES["ml-100k"].files)
    folder = fetch("ml-100k", tmp_path, opener=opener_for(payload), archive=archive)
    assert folder == tmp_path / "ml-100k"
    assert (folder / "u.data").read_text() == "content of u.data\n"


def test_offline_error_says_what_to_do(tmp_path):
    def offline(url, timeout=None):
        raise urllib.error.URLError("no route to host")
    with pytest.raises(DataError, match="offline.*put its files"):
        fetch("ml-1m", tmp_path, opener=offline)


def test_loader_download_option_fetches_missing_files(tmp_path, monkeypatch):
    from onefeed.data.datasets import fetch as fetch_mod
    from onefeed.data.datasets import load_raw

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("ml-100k/u.data", "1\t1\t4\t881250949\n2\t1\t5\t881250950\n")
        zf.writestr("ml-100k/u.item", "1|Toy Story (1995)|01-Jan-1995||x|0|1\n")
        zf.writestr("ml-100k/u.genre", "unknown|0\nAction|1\n")
    payload = buf.getvalue()
    real = ARCHIVES["ml-100k"]
    monkeypatch.setitem(fetch_mod.ARCHIVES, "ml-100k",
                        Archive(real.url, hashlib.sha256(payload).hexdigest(), real.folder,
                                real.files))
    monkeypatch.setattr(fetch_mod.urllib.request, "urlopen", opener_for(payload))
    raw = load_raw("ml-100k", tmp_path / "ml-100k", download=True)
    assert raw.events.height == 2 and raw.items["categories"].to_list() == [["Action"]]
    assert (tmp_path / "ml-100k" / "u.data").is_file()
