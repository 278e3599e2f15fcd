"""Bad input -> DataError naming the file, the line/row and the column (one test per kind)."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from onefeed.data.datasets import load_raw
from onefeed.data.datasets.generic import EventColumns, GenericMapping, ItemColumns
from onefeed.data.schemas import DataError

GENRES = "unknown|0\nAction|1\n"
ITEM = "1|Toy Story (1995)|01-Jan-1995||http://x|0|1\n"


def ml100k(tmp_path: Path, data: str, item: str = ITEM) -> Path:
    (tmp_path / "u.data").write_text(data)
    (tmp_path / "u.item").write_text(item, encoding="latin-1")
    (tmp_path / "u.genre").write_text(GENRES)
    return tmp_path


def csv_mapping(**events) -> GenericMapping:
    cols = dict(file="events.csv", user="u", item="i", timestamp="t", strength="s",
                timestamp_format="%Y-%m-%d")
    cols.update(events)
    return GenericMapping(events=EventColumns(**cols), items=ItemColumns(file=""))


def test_missing_files_say_what_to_put_where(tmp_path):
    with pytest.raises(DataError) as err:
        load_raw("ml-100k", tmp_path)
    msg = str(err.value)
    assert str(tmp_path) in msg and "u.data" in msg and "ml-100k.zip" in msg
    with pytest.raises(DataError, match="ratings.dat.*ml-1m.zip"):
        load_raw("ml-1m", tmp_path)
    with pytest.raises(DataError, match="user_sequence.txt"):
        load_raw("amazon", tmp_path, category="Toys")
    with pytest.raises(DataError, match="reviews_Toys_5.json.gz"):
        load_raw("amazon-raw", tmp_path, category="Toys")


def test_missing_column(tmp_path):
    (tmp_path / "events.csv").write_text("u,i,t\na,x,2024-01-01\n")
    with pytest.raises(DataError, match=r"events.csv: missing column\(s\) \['s'\]"):
        load_raw("generic", tmp_path, config=csv_mapping())


def test_wrong_type_names_line_and_column(tmp_path):
    ml100k(tmp_path, "1\t1\t5\t881250949\n1\t1\tabc\t881250950\n")
    with pytest.raises(DataError, match=r"u.data: line 2, column 'rating': cannot read 'abc'"):
        load_raw("ml-100k", tmp_path)
    (tmp_path / "events.csv").write_text("u,i,t,s\na,x,2024-01-01,4\nb,y,2024-01-02,lots\n")
    with pytest.raises(DataError, match=r"events.csv: line 3, column 's'"):
        load_raw("generic", tmp_path, config=csv_mapping())
    (tmp_path / "reviews_Toys_5.json.gz").write_bytes(gzip.compress(
        b'{"reviewerID": "A", "asin": "X", "overall": 5.0, "unixReviewTime": 1}\n'
        b'{"reviewerID": "A", "asin": "Y", "overall": "abc", "unixReviewTime": 2}\n'))
    with pytest.raises(DataError, match=r"reviews_Toys_5.json.gz: line 2, column 'overall'"):
        load_raw("amazon-raw", tmp_path, category="Toys")


def test_missing_field_in_a_line(tmp_path):
    ml100k(tmp_path, "1\t1\t5\t881250949\n1\t1\t5\n")
    with pytest.raises(DataError, match=r"u.data: line 2, column 'timestamp' is missing"):
        load_raw("ml-100k", tmp_path)
    ml100k(tmp_path, "1\t1\t5\t881250949\n1\t1\t5\t881250949\t7\n")
    with pytest.raises(DataError, match=r"u.data: line 2: expected 4 fields"):
        load_raw("ml-100k", tmp_path)


def test_unparsable_timestamp(tmp_path):
    (tmp_path / "events.csv").write_text("u,i,t,s\na,x,2024-01-01,4\nb,y,2024-13-45,3\n")
    with pytest.raises(DataError, match=r"events.csv: line 3, column 't': cannot parse "
                                        r"'2024-13-45'"):
        load_raw("generic", tmp_path, config=csv_mapping())
    (tmp_path / "events.csv").write_text("u,i,t,s\na,x,yesterday,4\n")
    with pytest.raises(DataError, match=r"line 2, column 't'"):
        load_raw("generic", tmp_path, config=csv_mapping(timestamp_format="unix"))


def test_duplicate_item_ids(tmp_path):
    (tmp_path / "events.csv").write_text("u,i\na,x\n")
    (tmp_path / "items.csv").write_text("id,title\nx,Red\ny,Blue\nx,Green\n")
    mapping = GenericMapping(events=EventColumns(user="u", item="i"),
                             items=ItemColumns(file="items.csv", id="id", title="title"))
    with pytest.raises(DataError, match=r"items.csv: lines 2 and 4, column 'id': duplicate "
                                        r"id 'x'"):
        load_raw("generic", tmp_path, config=mapping)
    ml100k(tmp_path, "1\t1\t5\t881250949\n", ITEM + ITEM)
    with pytest.raises(DataError, match=r"u.item: lines 1 and 2, column 'movie id'"):
        load_raw("ml-100k", tmp_path)


def test_empty_file(tmp_path):
    ml100k(tmp_path, "")
    with pytest.raises(DataError, match=r"u.data: file is empty"):
        load_raw("ml-100k", tmp_path)
    (tmp_path / "events.csv").write_text("u,i,t,s\n")
    with pytest.raises(DataError, match=r"events.csv: file has a header but no rows"):
        load_raw("generic", tmp_path, config=csv_mapping())


def test_non_utf8_bytes(tmp_path):
    (tmp_path / "events.csv").write_bytes(b"u,i,t,s\na,x,2024-01-01,4\nb\xff,y,2024-01-02,3\n")
    with pytest.raises(DataError, match=r"events.csv: line 3, byte 1: not valid utf-8"):
        load_raw("generic", tmp_path, config=csv_mapping())


def test_malformed_json_line(tmp_path):
    (tmp_path / "user_sequence.txt").write_text("U1 A B\n")
    (tmp_path / "items.jsonl.gz").write_bytes(gzip.compress(
        b'{"asin": "A", "title": "ok"}\n{"asin": "B", "title": \n'))
    with pytest.raises(DataError, match=r"items.jsonl.gz: line 2: malformed JSON"):
        load_raw("amazon", tmp_path)


def test_unknown_behaviour_value(tmp_path):
    (tmp_path / "events.csv").write_text("u,i,b\na,x,view\na,y,purchase\n")
    mapping = GenericMapping(events=EventColumns(user="u", item="i", behaviour="b",
                                                 behaviour_values={"view": "rec_click"}),
                             items=ItemColumns(file=""))
    with pytest.raises(DataError, match=r"line 3, column 'b': unknown behaviour 'purchase'"):
        load_raw("generic", tmp_path, config=mapping)


def test_unknown_loader_and_option():
    with pytest.raises(DataError, match="unknown dataset"):
        load_raw("ml-20m")
    with pytest.raises(Exception, match="n_userz"):
        load_raw("synthetic", n_userz=3)


def test_amazon_sequence_problems(tmp_path):
    (tmp_path / "user_sequence.txt").write_text("U1 A B\n\nU2 B\nU1 C\n")
    with pytest.raises(DataError, match=r"user_sequence.txt: lines 1 and 4: user 'U1'"):
        load_raw("amazon", tmp_path)
    (tmp_path / "user_sequence.txt").write_text("U1 A B\nU2\n")
    with pytest.raises(DataError, match=r"user_sequence.txt: line 2: expected 'USER ITEM"):
        load_raw("amazon", tmp_path)
