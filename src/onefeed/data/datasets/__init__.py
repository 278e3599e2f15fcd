"""Loaders: raw files -> ``RawData`` (RAW_EVENT_SCHEMA events + ITEM_SCHEMA items).

One module per source. ``load_raw(name, path, **options)`` is the single entry point;
``path=None`` resolves under ``onefeed.paths.raw_root()``. See docs/DATA_SOURCES.md for the
files each loader expects and where to put them.

    name          files (under raw_root()/<folder> unless path= is given)      options
    ml-100k       ml-100k/: u.data, u.item, u.genre                              download
    ml-1m         ml-1m/: ratings.dat[.gz] (full or a prefix), movies.dat        ratings_file,
                  [, users.dat]                                                  download
    amazon        amazon2014-<Cat>/: user_sequence.txt [+ p5_datamaps.json.gz,   category
                  items.jsonl.gz]
    amazon-raw    amazon2014-<Cat>/: reviews_<Cat>_5.json.gz [+ meta_<Cat>...]   category
    kuairec       kuairec/[data/]: big_matrix.csv | small_matrix.csv            matrix,
                  [+ item_categories.csv, kuairec_caption_category.csv]          positive_threshold
    lcrec         <Name>.inter.json [+ <Name>.item.json] (LC-Rec / LETTER)       prefix
    generic       your CSV/TSV/JSONL/Parquet, named by a TOML mapping            config
    synthetic     none (generated, onefeed.data.synthetic)                       SyntheticConfig
    raw-files     FOLDER/events.* or events/*.parquet|csv|jsonl in RAW_EVENT_     none
                  SCHEMA columns [+ items.parquet|jsonl, source.json]; scanned
                  lazily (onefeed.data.scan, out-of-core prepare)
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from onefeed.data.datasets.amazon import load_amazon
from onefeed.data.datasets.amazon_raw import load_amazon_raw
from onefeed.data.datasets.generic import GenericMapping, load_generic
from onefeed.data.datasets.kuairec import load_kuairec
from onefeed.data.datasets.lcrec import load_lcrec
from onefeed.data.datasets.movielens import load_ml1m, load_ml100k
from onefeed.data.schemas import DataError, RawData
from onefeed.paths import raw_root


def _movielens(loader: Callable[..., RawData], name: str) -> Callable[..., RawData]:
    def load(path: str | Path | None = None, download: bool = False, **options: Any) -> RawData:
        if download:
            from onefeed.data.datasets.fetch import ARCHIVES, fetch

            folder = Path(path) if path is not None else raw_root() / name
            if not all((folder / f).is_file() for f in ARCHIVES[name].files):
                fetch(name, folder.parent)
                folder = folder.parent / ARCHIVES[name].folder
            path = folder
        return loader(path, **options)

    load.__doc__ = loader.__doc__
    return load


def _synthetic(path: str | Path | None = None, **options: Any) -> RawData:
    if path is not None:
        raise DataError("the synthetic world is generated, it takes no path")
    from onefeed.data.synthetic import load_synthetic

    return load_synthetic(**options)


def _raw_files(path: str | Path | None = None) -> RawData:
    from onefeed.data.scan import load_raw_files

    return load_raw_files(path)


LOADERS: dict[str, Callable[..., RawData]] = {
    "ml-100k": _movielens(load_ml100k, "ml-100k"),
    "ml-1m": _movielens(load_ml1m, "ml-1m"),
    "amazon": load_amazon,
    "amazon-raw": load_amazon_raw,
    "kuairec": load_kuairec,
    "lcrec": load_lcrec,
    "generic": load_generic,
    "synthetic": _synthetic,
    "raw-files": _raw_files,
}


def load_raw(name: str, path: str | Path | None = None, **options: Any) -> RawData:
    """Load dataset ``name`` from ``path`` (default: under ``raw_root()``) as ``RawData``."""
    if name not in LOADERS:
        raise DataError(f"unknown dataset {name!r}; known: {sorted(LOADERS)}")
    try:
        return LOADERS[name](path, **options)
    except TypeError as exc:
        if "unexpected keyword" in str(exc):
            raise DataError(f"{name}: {exc}") from None
        raise


__all__ = ["LOADERS", "GenericMapping", "load_raw"]
