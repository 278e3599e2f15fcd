"""Examples of OneFeed's cross-task objectives, training split only (OneFeed §3.7-3.8).

* :func:`align_pairs`: (query, item) positives of the SID-query alignment (Eq. 9): a training
  search query followed by a click on ``item`` (GenSAR's ``S_Q -> S_I``), never a held-out
  (query, item) pair (docs/ARCHITECTURE.md, "Leak-free by construction").
* :func:`consistency_negatives`: per user, the candidate negatives of the consistency BPR term
  (Eq. 10): items that BM25 over item text retrieves for the user's own training queries and
  that the user never interacted with in training.
* :func:`sample_distinct_pairs` / :func:`sample_negatives`: a step's draws from them.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from onefeed.tasks.joint import S_I, S_Q, JointData


class Pool(NamedTuple):
    """Per-user item lists in CSR form."""

    start: np.ndarray  # (n_users + 1,) offsets into ``items``
    items: np.ndarray  # (n,) item ids

    def of(self, user: int) -> np.ndarray:
        return self.items[self.start[user]:self.start[user + 1]]


def align_pairs(jd: JointData, held_out: set[tuple[str, int]] = frozenset()) -> np.ndarray:
    """(P, 2) distinct (query row, item) pairs: a train ``S_Q`` event directly followed (same
    user) by a train ``S_I`` click. ``held_out``: (query text, item) pairs of the held-out
    queries, dropped even if a training event repeats them."""
    e = np.flatnonzero((jd.behaviour[:-1] == S_Q) & (jd.behaviour[1:] == S_I)
                       & (jd.split[:-1] == 0) & (jd.split[1:] == 0))
    e = e[~np.isin(e + 1, jd.user_start)]  # the click must belong to the query's user
    pairs = np.stack([jd.query[e], jd.item[e + 1]], axis=1).astype(np.int64)
    pairs = np.unique(pairs, axis=0) if len(pairs) else pairs.reshape(0, 2)
    if held_out:
        keep = [(jd.query_text[q], int(i)) not in held_out for q, i in pairs]
        pairs = pairs[np.asarray(keep, dtype=bool)]
    return pairs


def sample_distinct_pairs(pairs: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Up to ``n`` random rows of ``pairs`` (P, 2) with no item and no query twice (so no
    in-batch negative is a positive in disguise) -> (m, 2)."""
    order = rng.permutation(len(pairs))
    shuffled = pairs[order]
    keep = np.zeros(len(pairs), dtype=bool)
    _, first_q = np.unique(shuffled[:, 0], return_index=True)
    keep[first_q] = True
    rest = np.flatnonzero(keep)
    _, first_i = np.unique(shuffled[rest, 1], return_index=True)
    chosen = np.sort(rest[first_i])[:n]
    return shuffled[chosen]


def consistency_negatives(jd: JointData, retrieve, k: int) -> Pool:
    """Per user: the union of the top-``k`` items ``retrieve`` (texts, k) -> (n, k) ids (-1 =
    none) returns for the user's train queries, minus every item of the user's train events.
    Each distinct query text is retrieved once."""
    train_q = (jd.split == 0) & (jd.behaviour == S_Q)
    rows = np.unique(jd.query[train_q])
    hits = retrieve([jd.query_text[r] for r in rows], k) if len(rows) else \
        np.zeros((0, k), dtype=np.int64)
    by_row = {int(r): h[h >= 0] for r, h in zip(rows, hits)}
    out, start = [], [0]
    for u in range(jd.n_users):
        lo, hi = jd.user_start[u], jd.user_start[u + 1]
        tr = jd.split[lo:hi] == 0
        qs = jd.query[lo:hi][tr & (jd.behaviour[lo:hi] == S_Q)]
        cands = np.unique(np.concatenate([by_row[int(q)] for q in qs])) if len(qs) else \
            np.zeros(0, dtype=np.int64)
        seen = jd.item[lo:hi][tr & (jd.item[lo:hi] >= 0)]
        out.append(cands[~np.isin(cands, seen)].astype(np.int64))
        start.append(start[-1] + len(out[-1]))
    items = np.concatenate(out) if out else np.zeros(0, dtype=np.int64)
    return Pool(np.asarray(start, dtype=np.int64), items)


def sample_negatives(pool: Pool, users: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One uniformly drawn negative per entry of ``users`` (n,) -> (n,), -1 for a user
    whose pool is empty."""
    sizes = pool.start[users + 1] - pool.start[users]
    if not len(pool.items):
        return np.full(len(users), -1, dtype=np.int64)
    pick = pool.start[users] + np.floor(rng.random(len(users)) * sizes).astype(np.int64)
    return np.where(sizes > 0, pool.items[np.minimum(pick, len(pool.items) - 1)], -1)


def pool_from_lists(per_user: dict[int, np.ndarray], n_users: int) -> Pool:
    """A ``Pool`` from {user: item ids} (users not named get an empty list)."""
    lists = [np.unique(np.asarray(per_user.get(u, []), dtype=np.int64)) for u in range(n_users)]
    start = np.concatenate([[0], np.cumsum([len(x) for x in lists])]).astype(np.int64)
    items = np.concatenate(lists) if lists else np.zeros(0, dtype=np.int64)
    return Pool(start, items.astype(np.int64))


def merge_pools(jd: JointData, *pools: Pool) -> Pool:
    """Per user, the union of the pools' items minus every item of the user's train events
    (an explicit negative that the user clicked in training is no negative)."""
    out = {}
    for u in range(jd.n_users):
        lo, hi = jd.user_start[u], jd.user_start[u + 1]
        seen = jd.item[lo:hi][(jd.split[lo:hi] == 0) & (jd.item[lo:hi] >= 0)]
        cands = np.unique(np.concatenate([p.of(u) for p in pools])) if pools else \
            np.zeros(0, dtype=np.int64)
        out[u] = cands[~np.isin(cands, seen)]
    return pool_from_lists(out, jd.n_users)
