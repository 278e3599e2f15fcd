import polars as pl

from onefeed.embeddings.text import item_text, item_texts, texts_sha256


def test_template_skips_missing_fields():
    assert item_text("Red  Shoe", None, ["Shoes", "Red"], [], None) == \
        "Title: Red Shoe; Categories: Shoes > Red"
    assert item_text(None, "", [], None, "  ") == ""
    assert item_text("A", "B", None, ["x", "y"], "long") == \
        "Title: A; Brand: B; Tags: x, y; Description: long"


def test_item_texts_uses_existing_columns_in_item_order():
    items = pl.DataFrame({"item": [1, 0], "title": ["b", "a"]})
    assert item_texts(items) == ["Title: a", "Title: b"]
    assert texts_sha256(["ab", "c"]) != texts_sha256(["a", "bc"])
