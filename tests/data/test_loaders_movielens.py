"""MovieLens loaders: counts on the real files, partial-file naming, plain == gzip."""

from __future__ import annotations

import gzip
import sys
from pathlib import Path

import polars as pl

from onefeed.data.datasets import LOADERS, load_raw
from onefeed.data.schemas import ITEM_SCHEMA, RAW_EVENT_SCHEMA

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from conftest import real_data  # noqa: E402


def test_ml100k_real_counts():
    raw = load_raw("ml-100k", real_data("ml-100k"))
    ev = raw.events
    assert ev.schema == pl.Schema(RAW_EVENT_SCHEMA)
    assert raw.items.schema == pl.Schema(ITEM_SCHEMA)
    assert ev.height == 100_000
    assert ev["user_id"].n_unique() == 943
    assert ev["item_id"].n_unique() == 1682 and raw.items.height == 1682
    counts = dict(ev.group_by("strength").len().iter_rows())
    assert counts == {1.0: 6110, 2.0: 11370, 3.0: 27145, 4.0: 34174, 5.0: 21201}
    assert ev["order"].to_list()[:3] == [0, 1, 2]
    assert ev.row(0, named=True)["timestamp"] == 881250949  # first line of u.data
    assert (ev["behaviour"] == "rec_click").all()
    toy = raw.items.row(by_predicate=pl.col("item_id") == "1", named=True)
    assert toy["title"] == "Toy Story (1995)"
    assert toy["categories"] == ["Animation", "Children's", "Comedy"]
    assert toy["tags"] == ["1995"]
    assert raw.source["name"] == "ml-100k" and raw.source["has_timestamps"] is True
    assert set(raw.source["files"]) == {"u.data", "u.item", "u.genre"}
    # Latin-1 titles decode (u.item has 9 lines with non-ASCII bytes).
    assert raw.items["title"].str.contains("[^\\x00-\\x7f]").sum() > 0


def test_ml1m_partial_real_counts():
    raw = LOADERS["ml-1m"](real_data("ml-1m"))
    ev = raw.events
    assert ev.height == 487_650
    assert ev["user_id"].n_unique() == 2999
    assert ev["item_id"].n_unique() == 3615
    assert raw.items.height == 3883  # every movie of movies.dat
    assert "partial" in raw.source["name"] and raw.source["name"] != "ml-1m"
    assert raw.source["partial"] is True
    assert any("PARTIAL" in n for n in raw.source["notes"])
    assert ev["timestamp"].min() == 970620734 and ev["timestamp"].max() == 1046388675


RATINGS = "1::10::5::978300760\n1::20::3::978302109\n6040::10::4::978301968\n"
MOVIES = "10::GoldenEye (1995)::Action|Adventure|Thriller\n20::Heat (1995)::Action|Crime\n"


def test_ml1m_plain_and_gzip_agree_and_short_file_is_partial(tmp_path):
    plain, gz = tmp_path / "plain", tmp_path / "gz"
    for d in (plain, gz):
        d.mkdir()
        (d / "movies.dat").write_text(MOVIES, encoding="latin-1")
    (plain / "ratings.dat").write_text(RATINGS)
    (gz / "ratings.dat.gz").write_bytes(gzip.compress(RATINGS.encode()))
    a, b = load_raw("ml-1m", plain), load_raw("ml-1m", gz)
    assert a.events.equals(b.events)
    # max user is 6040 but 3 lines < 1,000,209: still partial, never "ml-1m"
    assert a.source["name"] == "ml-1m-partial-users1-6040"
    assert a.items.filter(pl.col("item_id") == "20")["tags"].to_list() == [["1995"]]
    assert a.events["strength"].to_list() == [5.0, 3.0, 4.0]


def test_ml1m_full_size_file_is_named_ml1m(tmp_path):
    """A file with all 1,000,209 lines and users up to 6,040 is the full ML-1M (fake content)."""
    import numpy as np

    n = 1_000_209
    user = np.minimum(np.arange(n) // 165 + 1, 6040)
    lines = [f"{u}::10::4::97830{i % 10000:04d}" for i, u in enumerate(user.tolist())]
    (tmp_path / "ratings.dat").write_text("\n".join(lines) + "\n")
    (tmp_path / "movies.dat").write_text(MOVIES, encoding="latin-1")
    raw = load_raw("ml-1m", tmp_path)
    assert raw.source["name"] == "ml-1m" and raw.source["partial"] is False
    assert raw.events.height == n
