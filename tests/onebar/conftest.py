"""A hand-built OneBar world: 6 items in two 2-D clusters, 3 users with searches after items.

Items (embedding): 0 red shoe (1, 0), 1 red shoe (0.9, 0.1), 2 blue boot (0, 1),
3 blue boot (0.1, 0.9), 4 hat (0.7, 0.7), 5 "weapon" replica (-1, 0).

Positions per user (train | valid | test, leave-one-out: a query takes its click's split)::

    u0: rec 0, q "red shoe", click 1, rec 2, q "blue boot", click 3 | rec 4 | rec 0
    u1: rec 0, q "Red  Shoe", click 1, rec 1, q "red sneaker", click 0 | rec 2
        | q "blue rain boot", click 3
    u2: rec 2, q "blue boot", click 3, rec 5, q "replica", click 5 | rec 4 | rec 1

Train trigger -> query pairs: 0 -> red shoe (x2), 2 -> blue boot (x2), 1 -> red sneaker,
5 -> replica. Eval queries: u0 valid "green hat", u0 test "red shoe classic", u1 test
"blue boot rain", u2 valid "hat".
"""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from onefeed.data.schemas import EVAL_QUERY_SCHEMA, EVENT_SCHEMA, QUERY_SCHEMA, Dataset
from onefeed.data.synthetic import prepared_items, prepared_users
from onefeed.onebar.config import OneBarConfig

EMB = np.array([[1, 0], [0.9, 0.1], [0, 1], [0.1, 0.9], [0.7, 0.7], [-1, 0]], dtype=np.float32)
SESSIONS = {
    0: [0, "red shoe", 1, 2, "blue boot", 3, 4, 0],
    1: [0, "Red  Shoe", 1, 1, "red sneaker", 0, 2, "blue rain boot", 3],
    2: [2, "blue boot", 3, 5, "replica", 5, 4, 1],
}


def make_world() -> Dataset:
    rows = []
    for user, seq in SESSIONS.items():
        items = [p for p, step in enumerate(seq) if not isinstance(step, str)]
        for pos, step in enumerate(seq):
            nxt = min(p for p in items if p >= pos)  # a query belongs to the click after it
            split = "test" if nxt == items[-1] else "valid" if nxt == items[-2] else "train"
            if isinstance(step, str):
                rows.append((user, None, pos, None, "search_query", step, None, split))
            elif pos > 0 and isinstance(seq[pos - 1], str):
                rows.append((user, step, pos, None, "search_click", seq[pos - 1], None, split))
            else:
                rows.append((user, step, pos, None, "rec_click", None, None, split))
    items = prepared_items(
        ["Red Shoe Classic", "Red Shoe Sport", "Blue Boot Winter", "Blue Boot Rain", "Green Hat",
         "Weapon Replica Toy"],
        ["acme", "acme", "bolt", "bolt", "", "toyco"],
        [["shoes", "red"], ["shoes", "red"], ["boots", "blue"], ["boots", "blue"], ["hats"],
         ["toys"]])
    queries = pl.DataFrame([(0, "red shoe", "title", "train"), (4, "green hat", "title", "train"),
                            (4, "hat", "category", "test")], schema=QUERY_SCHEMA, orient="row")
    evq = pl.DataFrame([(0, "valid", 4, "green hat"), (0, "test", 0, "red shoe classic"),
                        (1, "test", 3, "blue boot rain"), (2, "valid", 4, "hat")],
                       schema=EVAL_QUERY_SCHEMA, orient="row")
    events = pl.DataFrame(rows, schema=EVENT_SCHEMA, orient="row")
    return Dataset(events, items, prepared_users(3), queries, evq,
                   {"name": "onebar-toy", "protocol": "leave_one_out", "seed": 0})


def toy_config(**kw) -> OneBarConfig:
    base = dict(anchor_k=4, anchor_threshold=0.5, max_anchors=8, max_rag=8, max_history=4,
                history_threshold=0.3, block_list=["weapon"], min_evidence=1, k=8)
    return OneBarConfig(**(base | kw))


@pytest.fixture
def world() -> Dataset:
    return make_world()


@pytest.fixture
def emb() -> np.ndarray:
    return EMB.copy()


@pytest.fixture
def make_cfg():
    """``make_cfg(**overrides)``: the toy config (anchor_k 4, threshold 0.5, block "weapon")."""
    return toy_config


@pytest.fixture
def index(world, emb, make_cfg):
    from onefeed.onebar.evidence import EvidenceIndex

    return EvidenceIndex.build(world, emb, make_cfg())
