"""Item text for the text encoders: one template over whichever metadata fields exist.

``"Title: …; Brand: …; Categories: a > b > c; Tags: x, y; Description: …"`` — fields
that are null/empty for an item are left out, so an item with no metadata gets ``""``
(callers treat that as "no text" and fall back to the collaborative embedding).
"""

from __future__ import annotations

import hashlib

import polars as pl

MAX_DESCRIPTION_CHARS = 400  # MiniLM reads ~256 word pieces; long descriptions only cost time


def _clean(value: object) -> str:
    return " ".join(str(value).split()) if value is not None else ""


def item_text(title: object = None, brand: object = None, categories: object = None,
              tags: object = None, description: object = None) -> str:
    """The template for one item; empty fields are skipped."""
    parts = []
    if _clean(title):
        parts.append(f"Title: {_clean(title)}")
    if _clean(brand):
        parts.append(f"Brand: {_clean(brand)}")
    cats = [_clean(c) for c in (categories or []) if _clean(c)]
    if cats:
        parts.append("Categories: " + " > ".join(cats))
    tag_list = [_clean(t) for t in (tags or []) if _clean(t)]
    if tag_list:
        parts.append("Tags: " + ", ".join(tag_list))
    desc = _clean(description)
    if desc:
        parts.append(f"Description: {desc[:MAX_DESCRIPTION_CHARS]}")
    return "; ".join(parts)


def item_texts(items: pl.DataFrame) -> list[str]:
    """One text per row of a ``Dataset.items`` frame (rows in ``item`` order)."""
    items = items.sort("item")
    cols = {name: (items[name].to_list() if name in items.columns else [None] * items.height)
            for name in ("title", "brand", "categories", "tags", "description")}
    return [item_text(*(cols[n][i] for n in ("title", "brand", "categories", "tags",
                                            "description")))
            for i in range(items.height)]


def texts_sha256(texts: list[str]) -> str:
    """Order-sensitive hash of a list of texts (the content-embedding cache key)."""
    h = hashlib.sha256()
    for text in texts:
        data = text.encode("utf-8")
        h.update(len(data).to_bytes(8, "little"))
        h.update(data)
    return h.hexdigest()
