"""A hand-made joint world: feed clicks, searches and search clicks over 12 items.

Items 0-5 are "red", 6-11 "blue". Every user alternates a feed click and a search; a search
for colour c ends in a click on the next item of colour c after the user's last click. The
held-out eval query of each target names its colour and kind ("crimson" / "navy" never occur in
training: the model must use the history).
"""

from __future__ import annotations

import numpy as np
import polars as pl

from onefeed.data.schemas import EVAL_QUERY_SCHEMA, EVENT_SCHEMA, QUERY_SCHEMA, Dataset
from onefeed.data.synthetic import prepared_items, prepared_users
from onefeed.sid.table import SidTable

N_ITEMS = 12
KINDS = ["lipstick", "polish", "cream"]


def colour(item: int) -> str:
    return "red" if item < 6 else "blue"


def title(item: int) -> str:
    return f"{colour(item)} {KINDS[item % 3]} number {item}"


def make_world(n_users: int = 40, seed: int = 0) -> Dataset:
    rng = np.random.default_rng(seed)
    rows, erows = [], []
    for u in range(n_users):
        item = int(rng.integers(N_ITEMS))
        pos = 0
        seq: list[tuple] = []
        for step in range(6):
            nxt = (item + 1) % N_ITEMS
            if step % 2:
                q = f"{colour(nxt)} {KINDS[nxt % 3]}"
                seq.append((u, None, "search_query", q))
                seq.append((u, nxt, "search_click", q))
            else:
                seq.append((u, nxt, "rec_click", None))
            item = nxt
        valid_item, test_item = (item + 1) % N_ITEMS, (item + 2) % N_ITEMS
        for user, it, beh, q in seq:
            rows.append((user, it, pos, None, beh, q, None, "train"))
            pos += 1
        rows.append((u, valid_item, pos, None, "rec_click", None, None, "valid"))
        rows.append((u, test_item, pos + 1, None, "rec_click", None, None, "test"))
        erows.append((u, "valid", valid_item, f"{colour(valid_item)} {KINDS[valid_item % 3]}"))
        erows.append((u, "test", test_item, f"{colour(test_item)} {KINDS[test_item % 3]}"))
    events = pl.DataFrame(rows, schema=EVENT_SCHEMA, orient="row")
    qrows = [(i, f"{colour(i)} {KINDS[i % 3]}", "title", "train") for i in range(N_ITEMS)]
    items = prepared_items([title(i) for i in range(N_ITEMS)], ["acme"] * N_ITEMS,
                           [["beauty", KINDS[i % 3]] for i in range(N_ITEMS)])
    users = prepared_users(n_users)
    return Dataset(events, items, users, pl.DataFrame(qrows, schema=QUERY_SCHEMA, orient="row"),
                   pl.DataFrame(erows, schema=EVAL_QUERY_SCHEMA, orient="row"),
                   {"name": "joint-toy", "protocol": "leave_one_out", "seed": seed})


def sid_dir(tmp_path, joint: bool = False):
    """A single SID table (colour, kind, index) or GenSAR joint tables sharing level 0."""
    items = np.arange(N_ITEMS)
    sem = np.stack([items // 6, items % 3, (items // 3) % 2], axis=1)
    out = tmp_path / ("sid-joint" if joint else "sid")
    if not joint:
        SidTable(sem, (2, 3, 2), {"strategy": "toy"}).save(out)
        return out
    col = np.stack([items // 6, items % 6], axis=1)
    sem2 = np.stack([items // 6, items % 6 // 1 * 0 + items % 3, (items // 3) % 2], axis=1)
    meta = {"joint": {"shared_levels": 1, "specific_levels": 2}, "quantizer": "joint"}
    SidTable(sem2, (2, 3, 2), dict(meta, identifier="semantic")).save(out)
    SidTable(sem2, (2, 3, 2), dict(meta, identifier="semantic")).save(out / "sid_semantic")
    SidTable(col, (2, 6), dict(meta, identifier="collab")).save(out / "sid_collab")
    return out
