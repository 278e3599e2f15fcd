"""Hand-built ``RawData`` for the prepare-side tests (no loader needed)."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from onefeed.data.schemas import ITEM_SCHEMA, RAW_EVENT_SCHEMA, RawData


def make_toy_raw(n_users: int = 30, n_items: int = 20, per_user: int = 8, seed: int = 0,
                 timestamps: bool = True, reviews: bool = True) -> RawData:
    """Random users over ``n_items`` items, ``per_user`` distinct items each.

    Each item's reviews mention a word unique to it ("wordNa" style), so review keywords exist.
    """
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        for k, i in enumerate(rng.choice(n_items, per_user, replace=False)):
            rows.append({
                "user_id": f"u{u}", "item_id": f"i{i}",
                "timestamp": 1000 + 50 * k + u if timestamps else None, "order": k,
                "behaviour": "rec_click", "query": None, "strength": 4.0,
                "review": (f"lovely {_word(i)} texture, {_word(i)} finish" if reviews else None)})
    events = pl.DataFrame(rows, schema=RAW_EVENT_SCHEMA)
    items = pl.DataFrame({
        "item_id": [f"i{i}" for i in range(n_items)],
        "title": [f"Brand{i % 4} Red Shatter Nail Polish {i} oz &amp; Co" for i in range(n_items)],
        "description": [None] * n_items,
        "brand": [f"Brand{i % 4}" for i in range(n_items)],
        "categories": [["Makeup", "Nails", "Nail Polish" if i % 2 else "Top Coat"]
                       for i in range(n_items)],
        "tags": [["glossy"] if i % 3 else [] for i in range(n_items)],
    }, schema=ITEM_SCHEMA)
    return RawData(events, items, {"name": "toy", "files": [], "notes": "hand-built"})


def _word(i: int) -> str:
    return "".join("abcdefghij"[int(d)] for d in str(i)) + "shimmer"


@pytest.fixture
def toy_raw() -> RawData:
    return make_toy_raw()


@pytest.fixture
def toy_raw_factory():
    return make_toy_raw
