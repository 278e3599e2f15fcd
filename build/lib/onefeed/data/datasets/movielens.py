"""MovieLens-100K and MovieLens-1M in their original GroupLens formats.

Every rating becomes a ``rec_click`` with ``strength`` = rating, the file's timestamp and
``order`` = line index. Items carry the title, the genres as ``categories`` and the release
year as a tag. ML-1M ratings may be the full ``ratings.dat`` (plain or gzipped) or a prefix
such as the shared ``ratings.users1-2999.dat.gz``; a prefix is named ``ml-1m-partial-...`` so
its numbers can never be reported as ML-1M.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

import polars as pl

from onefeed.data.datasets.files import (cast_strict, decode, items_for, read_bytes, require,
                                         source_record, unique_ids)
from onefeed.data.schemas import ITEM_SCHEMA, RAW_EVENT_SCHEMA, DataError, RawData, conform
from onefeed.paths import raw_root

ML1M_RATINGS = 1_000_209
ML1M_USERS = 6_040
RATINGS_CANDIDATES = ("ratings.dat", "ratings.dat.gz", "ratings.users1-2999.dat.gz")
_YEAR = re.compile(r"\((\d{4})\)\s*$")


def _table(path: Path, text: str, sep: str, names: list[str]) -> pl.DataFrame:
    """Parse a headerless separated text as all-string columns (fast, via polars)."""
    try:
        frame = pl.read_csv(io.StringIO(text), separator=sep, has_header=False,
                            new_columns=names, infer_schema=False, quote_char=None)
    except pl.exceptions.PolarsError as exc:
        for number, line in enumerate(text.splitlines(), 1):  # error path only: find the line
            if line.strip() and line.count(sep) != len(names) - 1:
                raise DataError(f"{path}: line {number}: expected {len(names)} fields "
                                f"{names}, found {line.count(sep) + 1}") from None
        raise DataError(f"{path}: cannot parse as {sep!r}-separated text ({exc})") from None
    if frame.width != len(names):
        raise DataError(f"{path}: expected {len(names)} fields per line, found {frame.width}")
    for name in names:
        if frame[name].null_count():
            line = int(frame[name].is_null().arg_max()) + 1
            raise DataError(f"{path}: line {line}, column '{name}' is missing "
                            f"(expected {len(names)} fields: {names})")
    return frame


def _ratings(path: Path, text: str) -> pl.DataFrame:
    """user, item, rating, timestamp strings -> RAW_EVENT_SCHEMA events in line order."""
    raw = _table(path, text, "\t", ["user_id", "item_id", "rating", "timestamp"])
    for col in ("user_id", "item_id"):
        cast_strict(raw[col], pl.Int64, path, col)
    events = pl.DataFrame({
        "user_id": raw["user_id"].str.strip_chars(),
        "item_id": raw["item_id"].str.strip_chars(),
        "timestamp": cast_strict(raw["timestamp"], pl.Int64, path, "timestamp"),
        "order": pl.int_range(raw.height, eager=True, dtype=pl.Int64),
        "behaviour": pl.repeat("rec_click", raw.height, eager=True),
        "strength": cast_strict(raw["rating"], pl.Float32, path, "rating"),
    })
    return conform(events, RAW_EVENT_SCHEMA, str(path))


def _items(ids: list[str], titles: list[str], genres: list[list[str]], years: list[str | None],
           path: Path) -> pl.DataFrame:
    ids_s = pl.Series("item_id", ids, dtype=pl.Utf8)
    unique_ids(ids_s, path, "movie id")
    frame = pl.DataFrame({
        "item_id": ids_s, "title": titles,
        "categories": pl.Series(genres, dtype=pl.List(pl.Utf8)),
        "tags": pl.Series([[y] if y else [] for y in years], dtype=pl.List(pl.Utf8)),
    })
    return conform(frame, ITEM_SCHEMA, str(path))


def load_ml100k(path: str | Path | None = None) -> RawData:
    """``u.data`` (+ ``u.item``, ``u.genre``) from ``ml-100k.zip`` -> RawData."""
    folder = Path(path) if path is not None else raw_root() / "ml-100k"
    u_data, u_item, u_genre = require(folder, ["u.data", "u.item", "u.genre"],
                                      "u.data, u.item and u.genre from ml-100k.zip "
                                      "(https://grouplens.org/datasets/movielens/100k/)")
    events = _ratings(u_data, decode(u_data, read_bytes(u_data), "ascii"))
    genre_names = [ln.split("|")[0] for ln in decode(u_genre, read_bytes(u_genre), "latin-1")
                   .splitlines() if ln.strip()]
    ids, titles, genres, years = [], [], [], []
    for number, line in enumerate(decode(u_item, read_bytes(u_item), "latin-1").splitlines(), 1):
        if not line.strip():
            continue
        fields = line.split("|")
        if len(fields) != 5 + len(genre_names):
            raise DataError(f"{u_item}: line {number}: expected {5 + len(genre_names)} "
                            f"'|'-separated fields (5 + {len(genre_names)} genre flags), "
                            f"found {len(fields)}")
        flags = fields[5:]
        if any(f not in ("0", "1") for f in flags):
            raise DataError(f"{u_item}: line {number}, genre flag columns: expected 0/1, "
                            f"got {flags}")
        ids.append(fields[0])
        titles.append(fields[1] or None)
        genres.append([g for g, f in zip(genre_names, flags) if f == "1"])
        years.append(fields[2][-4:] if fields[2] else None)
    items = items_for(events, _items(ids, titles, genres, years, u_item))
    source = source_record("ml-100k", folder, [u_data, u_item, u_genre], True,
                           ["Ratings become rec_click events with strength = rating (1-5)."])
    return RawData(events, items, source)


def _ratings_file(folder: Path, ratings_file: str | None) -> Path:
    if ratings_file is not None:
        return folder / ratings_file
    for name in RATINGS_CANDIDATES:
        if (folder / name).is_file():
            return folder / name
    require(folder, ["ratings.dat"], "ratings.dat (plain or .gz) and movies.dat from ml-1m.zip "
            "(https://grouplens.org/datasets/movielens/1m/)")
    raise AssertionError("unreachable")


def _movies(path: Path) -> pl.DataFrame:
    ids, titles, genres, years = [], [], [], []
    for number, line in enumerate(decode(path, read_bytes(path), "iso-8859-1").splitlines(), 1):
        if not line.strip():
            continue
        fields = line.split("::")
        if len(fields) != 3:
            raise DataError(f"{path}: line {number}: expected 'id::title::genres', "
                            f"found {len(fields)} fields")
        year = _YEAR.search(fields[1])
        ids.append(fields[0])
        titles.append(fields[1] or None)
        genres.append([g for g in fields[2].split("|") if g])
        years.append(year.group(1) if year else None)
    return _items(ids, titles, genres, years, path)


def load_ml1m(path: str | Path | None = None, ratings_file: str | None = None) -> RawData:
    """ML-1M ``ratings.dat`` (plain/.gz, full or a prefix) + ``movies.dat`` (+ ``users.dat``)."""
    folder = Path(path) if path is not None else raw_root() / "ml-1m"
    ratings = _ratings_file(folder, ratings_file)
    (movies,) = require(folder, ["movies.dat"], "movies.dat from ml-1m.zip")
    text = decode(ratings, read_bytes(ratings), "ascii").replace("::", "\t")
    events = _ratings(ratings, text)
    items = items_for(events, _movies(movies))
    files = [ratings, movies]
    notes = ["Ratings become rec_click events with strength = rating (1-5)."]
    max_user = int(events["user_id"].cast(pl.Int64).max())
    partial = ("users1-2999" in ratings.name or events.height < ML1M_RATINGS
               or max_user < ML1M_USERS)
    name = "ml-1m"
    if partial:
        name = f"ml-1m-partial-users1-{max_user}"
        notes.append(f"PARTIAL ML-1M: {events.height:,} of {ML1M_RATINGS:,} ratings "
                     f"(users up to {max_user}); never report these numbers as ML-1M.")
    users = folder / "users.dat"
    extra = {}
    if users.is_file():
        files.append(users)
        user_ids = pl.Series([ln.split("::", 1)[0] for ln in
                              decode(users, read_bytes(users), "iso-8859-1").splitlines()
                              if ln.strip()])
        unknown = events.filter(~pl.col("user_id").is_in(user_ids.implode()))
        if unknown.height:
            raise DataError(f"{ratings}: user {unknown['user_id'][0]!r} is not in {users}")
        extra["users_in_users_dat"] = user_ids.len()
    source = source_record(name, folder, files, True, notes, partial=partial, **extra)
    return RawData(events, items, source)
