"""Joint search + recommendation examples over mixed histories (GenSAR §3.1, §3.3).

A user's history is the chronological list of GenSAR's three behaviours: ``R_I`` (a feed
click on an item), ``S_Q`` (a search query, as text) and ``S_I`` (a click on a search result).
Every position of a window is trained in one pass (decoder-only); the task of a position is
decided by the event that follows it:

=============  ==================  =================================  ====================
next event     task                target                             identifier (path)
=============  ==================  =================================  ====================
``R_I``        NRIP (§3.3.1)       the item's code tuple              ``rec``
``S_I``        NSIP (§3.3.2)       the item (state at the ``S_Q``)    ``search``
``S_Q``        NSQP (§3.3.3)       the query's word pieces            —
=============  ==================  =================================  ====================

plus two history-free alignment tasks on item text (GenSAR §3.3.4): DESC2ID (text -> item's
``search`` identifier) and ID2DESC (identifier -> text).

Identifiers (``IdLayout``): one combined code table whose columns are shared by two *paths*.
A single SID uses every column for both tasks; GenSAR's joint IDs are the Prefix-share layout
``[shared, semantic-specific, collaborative-specific]`` with ``search`` = shared + semantic and
``rec`` = shared + collaborative; Spotify's "Separate" puts the two IDs side by side.
An event's item is embedded with the path of its behaviour (``R_I`` -> rec, ``S_I`` -> search).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import polars as pl
import torch

from onefeed.data.schemas import Dataset
from onefeed.models.transformer import Events
from onefeed.tasks.rec import training_windows as windows_of
from onefeed.tokens import Vocab, wordpiece_tokenizer

# behaviour codes in the flat arrays (0 = padding); tokens via Vocab.behaviour
R_I, S_Q, S_I = 1, 2, 3
BEHAVIOUR_NAMES = {R_I: "rec_click", S_Q: "search_query", S_I: "search_click"}
# task codes of a position (0 = no target)
NRIP, NSIP, NSQP = 1, 2, 3
TASK_NAMES = {NRIP: "NRIP", NSIP: "NSIP", NSQP: "NSQP"}


# ---- identifiers ---------------------------------------------------------------------------------
def _unique_rows(codes: np.ndarray) -> bool:
    return np.unique(codes, axis=0).shape[0] == codes.shape[0]


@dataclass(frozen=True)
class IdLayout:
    """A combined code table and, per task, the columns forming that task's identifier."""

    codes: np.ndarray  # (n_items, C) int64
    codebook_sizes: tuple[int, ...]  # (C,)
    rec_cols: tuple[int, ...]
    search_cols: tuple[int, ...]
    kind: str  # single | joint | separate

    def path(self, name: str) -> tuple[int, ...]:
        if name not in ("rec", "search"):
            raise KeyError(f"unknown identifier path {name!r}; known: rec, search")
        return self.rec_cols if name == "rec" else self.search_cols

    def path_codes(self, name: str) -> np.ndarray:
        return self.codes[:, list(self.path(name))]

    def path_sizes(self, name: str) -> tuple[int, ...]:
        return tuple(self.codebook_sizes[c] for c in self.path(name))

    def describe(self) -> dict:
        return {"kind": self.kind, "codebook_sizes": list(self.codebook_sizes),
                "rec_cols": list(self.rec_cols), "search_cols": list(self.search_cols)}

    @classmethod
    def single(cls, codes: np.ndarray, sizes: tuple[int, ...]) -> "IdLayout":
        cols = tuple(range(codes.shape[1]))
        return cls(np.asarray(codes, np.int64), tuple(sizes), cols, cols, "single")

    @classmethod
    def load(cls, sid_dir: str | Path, use: str = "auto") -> "IdLayout":
        """The layout of a built SID directory (``onefeed sid build``).

        ``use``: ``auto`` (joint tables -> Prefix-share joint layout, a Separate table -> its
        halves, else single), or ``single`` / ``semantic`` / ``collab`` to force one identifier
        for both tasks (GenSAR Fig. 4's semantic-only / collaborative-only rows).
        """
        from onefeed.sid.table import SidTable

        sid_dir = Path(sid_dir)
        joint = (sid_dir / "sid_semantic").exists() and (sid_dir / "sid_collab").exists()
        if use in ("semantic", "collab"):
            if not joint:
                raise ValueError(f"{sid_dir}: identifier {use!r} needs a joint SID build "
                                 "(quantizer = 'joint')")
            t = SidTable.load(sid_dir / f"sid_{use}")
            return cls.single(t.codes, t.codebook_sizes)
        table = SidTable.load(sid_dir)
        if use == "single" or (not joint and "separate" not in table.meta):
            return cls.single(table.codes, table.codebook_sizes)
        if use != "auto":
            raise ValueError(f"identifier use {use!r} unknown; known: auto, single, semantic, "
                             "collab")
        if joint:
            return cls.prefix_share(SidTable.load(sid_dir / "sid_semantic"),
                                    SidTable.load(sid_dir / "sid_collab"),
                                    int(table.meta["joint"]["shared_levels"]))
        sep = table.meta["separate"]
        return cls.from_halves(table.codes, table.codebook_sizes,
                               tuple(sep["semantic_levels"]), tuple(sep["collab_levels"]),
                               "separate")

    @classmethod
    def prefix_share(cls, sem, col, shared_levels: int) -> "IdLayout":
        """GenSAR joint IDs: [shared, semantic rest, collaborative rest] columns."""
        m = shared_levels
        if not np.array_equal(sem.codes[:, :m], col.codes[:, :m]):
            raise ValueError(f"joint IDs do not share their first {m} levels")
        codes = np.concatenate([sem.codes, col.codes[:, m:]], axis=1)
        sizes = tuple(sem.codebook_sizes) + tuple(col.codebook_sizes[m:])
        ls = sem.codes.shape[1]
        return cls(codes.astype(np.int64), sizes, tuple(range(m)) + tuple(range(ls, len(sizes))),
                   tuple(range(ls)), "joint")

    @classmethod
    def from_halves(cls, codes: np.ndarray, sizes: tuple[int, ...], search: tuple[int, ...],
                    rec: tuple[int, ...], kind: str) -> "IdLayout":
        """Two identifiers side by side. A half that is not unique on its own borrows the
        table's trailing disambiguation column(s) (those in neither half); if it is still not
        unique (the table's column was fitted to the whole row), it gets its own TIGER-style
        disambiguation column, appended to the table (deterministic: item-id order)."""
        from onefeed.sid.collisions import disambiguate

        codes, sizes = np.asarray(codes, np.int64), tuple(sizes)
        extra = tuple(c for c in range(codes.shape[1]) if c not in search and c not in rec)
        paths = []
        for cols in (search, rec):
            if _unique_rows(codes[:, list(cols)]):
                paths.append(cols)
            elif _unique_rows(codes[:, list(cols + extra)]):
                paths.append(cols + extra)
            else:
                full, size = disambiguate(codes[:, list(cols)])
                codes = np.concatenate([codes, full[:, -1:]], axis=1)
                sizes = sizes + (size,)
                paths.append(cols + (codes.shape[1] - 1,))
        return cls(codes, sizes, paths[1], paths[0], kind)

    def check_unique(self) -> None:
        for name in ("rec", "search"):
            c = self.path_codes(name)
            if np.unique(c, axis=0).shape[0] != c.shape[0]:
                raise ValueError(f"identifier path {name!r} is not unique per item")


# ---- text ---------------------------------------------------------------------------------------
def encode_texts(texts: list[str], vocab: Vocab, max_words: int) -> np.ndarray:
    """Texts -> (n, max_words) vocab token ids of their word pieces, 0-padded (truncated)."""
    out = np.zeros((len(texts), max_words), dtype=np.int64)
    if not texts:
        return out
    tok = wordpiece_tokenizer()
    for row, enc in enumerate(tok.encode_batch(list(texts), add_special_tokens=False)):
        ids = enc.ids[:max_words]
        out[row, :len(ids)] = np.asarray(ids, dtype=np.int64) + vocab.word_offset
    return out


def item_texts(ds: Dataset) -> list[str]:
    """Per item (index = item id), title + brand + leaf category (the description of ID2DESC)."""
    items = ds.items.sort("item")
    out = []
    for title, brand, cats in zip(items["title"].to_list(), items["brand"].to_list(),
                                  items["categories"].to_list()):
        parts = [title or ""]
        if brand:
            parts.append(str(brand))
        if cats:
            parts.append(str(cats[-1]))
        out.append(" ".join(p for p in parts if p).strip())
    return out


# ---- flat event arrays -------------------------------------------------------------------------
@dataclass
class JointData:
    """Every event of every user in (user, position) order, as flat arrays."""

    behaviour: np.ndarray  # (E,) int8: R_I / S_Q / S_I
    item: np.ndarray  # (E,) int64, -1 for queries
    query: np.ndarray  # (E,) int64 row of ``query_words``, -1 for item events
    split: np.ndarray  # (E,) int8: 0 train, 1 valid, 2 test
    position: np.ndarray  # (E,) int64 the event's position in its user's history
    user_start: np.ndarray  # (n_users + 1,) offsets into the flat arrays
    query_words: np.ndarray  # (Q, W) vocab word-piece ids of every query text, 0-padded
    query_text: list[str]  # (Q,)

    @property
    def n_users(self) -> int:
        return len(self.user_start) - 1


SPLIT_CODES = {"train": 0, "valid": 1, "test": 2}


def joint_data(ds: Dataset, vocab: Vocab, max_query_words: int = 12,
               extra_queries: list[str] | None = None) -> JointData:
    """Flatten ``ds.events`` (all splits) and tokenise every query text once.

    ``extra_queries`` (e.g. held-out eval queries) are appended to the query table so cases
    can refer to them; they never enter training windows (those use train events only).
    """
    ev = ds.events.sort(["user", "position"])
    beh_map = {"rec_click": R_I, "search_query": S_Q, "search_click": S_I}
    unknown = set(ev["behaviour"].unique().to_list()) - set(beh_map)
    if unknown:
        raise ValueError(f"events: unknown behaviours {sorted(unknown)}")
    behaviour = ev["behaviour"].replace_strict(beh_map, return_dtype=pl.Int8).to_numpy()
    texts = sorted(set(ev.filter(pl.col("behaviour") == "search_query")["query"]
                       .drop_nulls().to_list()) | set(extra_queries or []))
    index = {t: i for i, t in enumerate(texts)}
    qcol = ev["query"].to_list()
    query = np.array([index[q] if b == S_Q else -1 for q, b in zip(qcol, behaviour)],
                     dtype=np.int64)
    item = ev["item"].fill_null(-1).to_numpy().astype(np.int64)
    item[behaviour == S_Q] = -1
    counts = np.bincount(ev["user"].to_numpy(), minlength=ds.n_users)
    return JointData(behaviour, item, query,
                     ev["split"].replace_strict(SPLIT_CODES, return_dtype=pl.Int8).to_numpy(),
                     ev["position"].to_numpy().astype(np.int64),
                     np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
                     encode_texts(texts, vocab, max_query_words), texts)


def query_index(jd: JointData, texts: list[str]) -> np.ndarray:
    """Rows of ``jd.query_words`` for ``texts`` (every text must be in the table)."""
    index = {t: i for i, t in enumerate(jd.query_text)}
    missing = [t for t in texts if t not in index]
    if missing:
        raise KeyError(f"{len(missing)} queries not in the query table, e.g. {missing[0]!r}")
    return np.array([index[t] for t in texts], dtype=np.int64)


# ---- training windows ------------------------------------------------------------------------------
def training_windows(jd: JointData, max_len: int) -> np.ndarray:
    """(n_windows, max_len + 1) flat event indices of train events, left-padded with -1.

    The windows of ``tasks.rec.training_windows`` over each user's train event indices, so
    every transition is a target exactly once.
    """
    train = jd.split == 0
    per_user = []
    for u in range(jd.n_users):
        idx = np.arange(jd.user_start[u], jd.user_start[u + 1])
        per_user.append(idx[train[idx]])
    return windows_of(per_user, max_len)


class JointBatch(NamedTuple):
    events: Events  # (B, T) inputs
    task: torch.Tensor  # (B, T) NRIP / NSIP / NSQP of the next event, 0 = none
    target_item: torch.Tensor  # (B, T) next item (NRIP / NSIP), -1 otherwise
    target_words: torch.Tensor  # (B, T, W) next query's word pieces (NSQP), 0-padded
    rec_item: torch.Tensor  # (B, T) NRIP's target item, -1 = none (``joint_batch``'s ``nrip``)


def event_tensors(idx: np.ndarray, jd: JointData, layout_codes: dict[str, torch.Tensor],
                  vocab: Vocab, behaviour_tokens: bool = True) -> Events:
    """(B, T) flat event indices (-1 = pad) -> Events with per-behaviour identifier codes.

    ``layout_codes``: {"rec": (n_items, C), "search": (n_items, C)} combined-width code tensors
    with -1 outside the path's columns (see ``path_code_tensors``).
    """
    idx_t = torch.as_tensor(idx, dtype=torch.long)
    valid = idx_t >= 0
    safe = idx_t.clamp(min=0)
    beh = torch.as_tensor(jd.behaviour.astype(np.int64))[safe] * valid
    items = torch.as_tensor(jd.item)[safe].masked_fill(~valid, -1)
    qrow = torch.as_tensor(jd.query)[safe].masked_fill(~valid, -1)
    words = torch.as_tensor(jd.query_words)[qrow.clamp(min=0)]
    words = words * (qrow >= 0).unsqueeze(-1)
    has_item = items >= 0
    rec, search = layout_codes["rec"], layout_codes["search"]
    codes = torch.where((beh == S_I).unsqueeze(-1), search[items.clamp(min=0)],
                        rec[items.clamp(min=0)])
    codes = codes.masked_fill(~has_item.unsqueeze(-1), -1)
    tokens = torch.tensor([0, vocab.behaviour("rec_click"), vocab.behaviour("search_query"),
                           vocab.behaviour("search_click")])
    behaviours = tokens[beh] if behaviour_tokens else torch.where(valid, 1, 0)  # 1 = BOS: a
    # content-free "something happened" token keeps padding apart without naming the behaviour
    return Events(items, codes, behaviours, None, words, valid)


def path_code_tensors(layout: IdLayout) -> dict[str, torch.Tensor]:
    """Per path, the (n_items, C) code table with -1 in columns outside the path."""
    codes = torch.as_tensor(layout.codes, dtype=torch.long)
    out = {}
    for name in ("rec", "search"):
        keep = torch.zeros(codes.shape[1], dtype=torch.bool)
        keep[list(layout.path(name))] = True
        out[name] = torch.where(keep, codes, -1)
    return out


def joint_batch(windows: np.ndarray, jd: JointData, layout_codes: dict[str, torch.Tensor],
                vocab: Vocab, behaviour_tokens: bool = True, nrip: str = "feed") -> JointBatch:
    """(B, T + 1) windows -> inputs ``[:, :-1]`` and per-position next-event targets.

    ``nrip`` picks NRIP's targets (``rec_item``): ``feed`` = the next event's item when it is a
    feed click (GenSAR's NRIP); ``all`` = also, at a position followed by a query whose next
    event is a training search click, that click's item: the next item the user engaged with,
    whichever channel, as the item-only core sees every item. The position keeps its NSQP
    target as well."""
    if nrip not in ("feed", "all"):
        raise ValueError(f"nrip targets {nrip!r} unknown; known: feed, all")
    used = (windows[:, :-1] >= 0).any(axis=0).nonzero()[0]
    first = int(used[0]) if len(used) else windows.shape[1] - 2
    w = windows[:, first:]
    inputs, nxt = w[:, :-1], w[:, 1:]
    nxt = np.where(inputs >= 0, nxt, -1)
    safe = np.maximum(nxt, 0)
    nb = np.where(nxt >= 0, jd.behaviour[safe], 0)
    task = np.select([nb == R_I, nb == S_I, nb == S_Q], [NRIP, NSIP, NSQP], 0)
    target_item = np.where((task == NRIP) | (task == NSIP), jd.item[safe], -1)
    qrow = np.where(task == NSQP, jd.query[safe], -1)
    words = jd.query_words[np.maximum(qrow, 0)] * (qrow >= 0)[..., None]
    rec_item = np.where(task == NRIP, target_item, -1)
    if nrip == "all":
        # the event after the query: the same user's next event (positions are consecutive)
        after = np.minimum(safe + 1, len(jd.behaviour) - 1)
        click = ((task == NSQP) & (safe + 1 < len(jd.behaviour)) & (jd.behaviour[after] == S_I)
                 & (jd.split[after] == 0) & (jd.position[after] == jd.position[safe] + 1))
        rec_item = np.where(click, jd.item[after], rec_item)
    return JointBatch(event_tensors(inputs, jd, layout_codes, vocab, behaviour_tokens),
                      torch.as_tensor(task, dtype=torch.long),
                      torch.as_tensor(target_item, dtype=torch.long),
                      torch.as_tensor(words, dtype=torch.long),
                      torch.as_tensor(rec_item, dtype=torch.long))


# ---- evaluation cases ----------------------------------------------------------------------------
def history_before(jd: JointData, users: np.ndarray, split: str, max_len: int,
                   query_rows: np.ndarray | None = None, max_items: int = 0) -> np.ndarray:
    """(n, max_len) flat event indices of each user's events before their first ``split``
    item event (left-padded -1); with ``query_rows``, a held-out query event is appended
    (personalised search: history + the query just typed). ``max_items`` (> 0) also caps the
    number of item events kept (the TIGER protocol's "last 20 items", queries in between kept).

    Appended queries are addressed as ``-(2 + row)`` so ``with_queries`` can materialise them
    without writing into the flat arrays.
    """
    code = SPLIT_CODES[split]
    out = np.full((len(users), max_len), -1, dtype=np.int64)
    extra = 0 if query_rows is None else 1
    for r, u in enumerate(users):
        lo, hi = jd.user_start[u], jd.user_start[u + 1]
        sp, beh = jd.split[lo:hi], jd.behaviour[lo:hi]
        hits = np.flatnonzero((sp == code) & (beh != S_Q))
        cut = lo + (int(hits[0]) if len(hits) else hi - lo)
        keep = np.arange(max(lo, cut - (max_len - extra)), cut)
        if max_items and len(keep):
            is_item = beh[keep - lo] != S_Q
            n_after = np.cumsum(is_item[::-1])[::-1]  # item events at or after each position
            keep = keep[n_after <= max_items]
        if extra:
            out[r, max_len - 1] = -(2 + int(query_rows[r]))
        out[r, max_len - extra - len(keep):max_len - extra] = keep
    return out


def with_queries(jd: JointData, idx: np.ndarray) -> tuple[JointData, np.ndarray]:
    """Materialise appended query events (``-(2 + row)``) as extra flat events."""
    appended = idx <= -2
    if not appended.any():
        return jd, idx
    rows = -idx[appended] - 2
    base = len(jd.behaviour)
    n = len(rows)
    jd2 = JointData(np.concatenate([jd.behaviour, np.full(n, S_Q, np.int8)]),
                    np.concatenate([jd.item, np.full(n, -1, np.int64)]),
                    np.concatenate([jd.query, rows]),
                    np.concatenate([jd.split, np.full(n, 2, np.int8)]),
                    np.concatenate([jd.position, np.full(n, -1, np.int64)]),
                    jd.user_start, jd.query_words, jd.query_text)
    idx = idx.copy()
    idx[appended] = base + np.arange(n)
    return jd2, idx


def save_layout(layout: IdLayout, path: str | Path) -> None:
    Path(path).write_text(json.dumps(layout.describe(), indent=2))
