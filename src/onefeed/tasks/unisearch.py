"""UniSearch's task: (query, clicked item) pairs -> batches of ``SearchBatch``; the learned
identifiers (frozen codes, trie, cold-start additions) and trie-constrained ``search``.

The codes come from the item encoder alone (``UniSearch.assign_codes``); TIGER's extra level
(``onefeed.sid.collisions.disambiguate``) makes every row unique, with ``spare`` more slots
than the largest colliding group so cold-start items (UniSearch §3.4: the dynamic trie) can
join a taken prefix. The generator does not model that level: the beam's step ranks the items
sharing the learned codes by the query-item RCL similarity there (``LearnedIndex``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from onefeed.decoding.beam import BeamResult, beam_search
from onefeed.decoding.trie import Trie
from onefeed.models.unisearch import SearchBatch, UniSearch, UniSearchConfig
from onefeed.objectives.rcl import coarse_to_fine_negatives
from onefeed.sid.collisions import collision_rate, disambiguate
from onefeed.sid.table import SidTable
from onefeed.tokens import wordpiece_tokenizer

WEIGHTS, CONFIG = "unisearch.safetensors", "unisearch.json"
VECTORS = "item_vectors.safetensors"
NEG_INF = float("-inf")


@dataclass
class UniSearchTaskConfig:
    RANGES: ClassVar[dict[str, str]] = {"batch_size": ">= 2", "hard_negatives": ">= 0",
        "neighbours": ">= 1", "shrink": "(0, 1]", "refresh_every": ">= 1",
        "valid_pairs": ">= 0", "eval_beam": ">= 1", "eval_k": ">= 1", "spare_codes": ">= 0",
        "catalogue_items": ">= 0"}
    batch_size: int = 128
    hard_negatives: int = 0  # per pair and level >= 1 (coarse-to-fine); 0 = in-batch only
    neighbours: int = 32  # P: each item's nearest items (learned space) to draw them from
    shrink: float = 0.5  # level n draws from the nearest P * shrink**(n-1)
    refresh_every: int = 1  # epochs between neighbour refreshes
    valid_pairs: int = 500  # validation cases (0 = all)
    eval_beam: int = 20
    eval_k: int = 10  # validation score: Recall@eval_k
    spare_codes: int = 4  # free slots of the disambiguation level (cold-start items)
    catalogue_items: int = 0  # uniformly drawn items per batch for the codebook (0 = none)


# ---- text ----------------------------------------------------------------------------------------
def word_ids(texts: Sequence[str], max_words: int) -> np.ndarray:
    """Texts -> (n, max_words) int64 WordPiece ids + 1 (0 = padding), truncated."""
    out = np.zeros((len(texts), max_words), dtype=np.int64)
    if not len(texts):
        return out
    for row, enc in enumerate(wordpiece_tokenizer().encode_batch(list(texts),
                                                                 add_special_tokens=False)):
        ids = enc.ids[:max_words]
        out[row, :len(ids)] = np.asarray(ids, dtype=np.int64) + 1
    return out


@dataclass
class SearchData:
    """Training (query, item) pairs, validation pairs and every item's text, as word ids."""

    item_words: np.ndarray  # (n_items, Wi)
    query_words: np.ndarray  # (P, Wq)
    items: np.ndarray  # (P,) clicked item of each pair
    valid_words: np.ndarray  # (V, Wq)
    valid_items: np.ndarray  # (V,)
    queries: list[str] = field(default_factory=list)  # (P,) texts of the training queries

    @property
    def n_items(self) -> int:
        return len(self.item_words)


def search_data(pairs: Sequence[tuple[str, int]], item_texts: Sequence[str],
                cfg: UniSearchConfig, valid: Sequence[tuple[str, int]] = ()) -> SearchData:
    """Word ids of (query, item) ``pairs``, ``valid`` pairs and ``item_texts`` (index = item)."""
    queries = [q for q, _ in pairs]
    return SearchData(word_ids(item_texts, cfg.max_item_words),
                      word_ids(queries, cfg.max_query_words),
                      np.array([i for _, i in pairs], dtype=np.int64),
                      word_ids([q for q, _ in valid], cfg.max_query_words),
                      np.array([i for _, i in valid], dtype=np.int64), queries)


def dataset_search_data(ds: Any, cfg: UniSearchConfig, item_queries: bool = True
                        ) -> SearchData:
    """A prepared ``Dataset``'s train search clicks (``weak_queries.search_pairs``), with
    ``item_queries`` also its train-split weak item queries (``ds.queries``), its valid
    held-out queries (``eval_queries``) and item texts (``tasks.joint.item_texts``)."""
    import polars as pl

    from onefeed.data.weak_queries import search_pairs
    from onefeed.tasks.joint import item_texts

    train = search_pairs(ds.events, "train")
    if item_queries and ds.queries.height:
        weak = ds.queries.filter(pl.col("split") == "train").select("item", "query")
        train = pl.concat([train.select("item", "query"),
                           weak.with_columns(pl.col("item").cast(train["item"].dtype))])
    valid = ds.eval_queries.filter(pl.col("split") == "valid")
    return search_data(list(zip(train["query"].to_list(), train["item"].to_list())),
                       item_texts(ds), cfg,
                       list(zip(valid["query"].to_list(), valid["item"].to_list())))


# ---- learned identifiers -------------------------------------------------------------------------
class LearnedIndex:
    """A frozen ``SidTable`` of learned codes (+ disambiguation level) and its trie, which
    items can join and leave at run time (:meth:`add`, :meth:`remove`).

    ``vectors`` (n_items, d): each item's ``sum_n d^(n)``; at the disambiguation level the
    items sharing a learned code tuple are ranked by the RCL similarity to the query
    (``UniSearch.match_scores``), so colliding items are not tied. Without vectors the step is
    uniform there (catalogue order)."""

    def __init__(self, table: SidTable, n_levels: int, vectors: torch.Tensor | None = None
                 ) -> None:
        self.table, self.n_levels, self.vectors = table, n_levels, vectors
        self.trie = Trie.from_table(table.codes, table.codebook_sizes)
        self.members: dict[tuple[int, ...], list[int]] = {}  # learned codes -> item per slot
        for item in np.lexsort((np.arange(table.n_items), table.codes[:, -1])).tolist():
            row = table.codes[item].tolist()
            group = self.members.setdefault(tuple(row[:n_levels]), [])
            if row[-1] != len(group):
                raise ValueError(f"item {item}: disambiguation slot {row[-1]} is not the next "
                                 f"free one ({len(group)}) of its code tuple")
            group.append(item)
        self._lookup: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None

    @classmethod
    def build(cls, codes: np.ndarray, spare: int, meta: dict[str, Any] | None = None,
              vectors: torch.Tensor | None = None, sizes: Sequence[int] | None = None
              ) -> "LearnedIndex":
        """(n, L) learned codes -> unique (n, L + 1) rows (``sid.collisions.disambiguate``).
        ``sizes``: the L codebook sizes (default: the largest code seen + 1 per level; pass
        the model's so a cold-start item may use a code no current item has)."""
        rows, size = disambiguate(codes)
        if sizes is None:
            sizes = codes.max(0, initial=0) + 1 if len(codes) else np.ones(codes.shape[1])
        return cls(SidTable(rows, (*(int(s) for s in sizes), size + spare), dict(meta or {})),
                   codes.shape[1], vectors)

    def free_slot(self, codes: Sequence[int]) -> int:
        """The disambiguation slot a new item with learned ``codes`` (L,) would take: the
        first one under that code tuple no live item holds (a removed item's is free again)."""
        group = self.members.get(tuple(int(c) for c in codes), [])
        return group.index(-1) if -1 in group else len(group)

    def add(self, item: int, codes: Sequence[int], vector: torch.Tensor | None = None,
            slot: int | None = None) -> tuple[int, ...]:
        """Put a new item with learned ``codes`` (L,) (and its vector, if the index ranks
        collisions) into the trie, at ``slot`` (a replay of a recorded tuple) or the first
        free one: -> its full code tuple."""
        key = tuple(int(c) for c in codes)
        if len(key) != self.n_levels:
            raise ValueError(f"item {item}: {len(key)} learned codes, the index has "
                             f"{self.n_levels} levels")
        group = list(self.members.get(key, []))
        slot = self.free_slot(key) if slot is None else int(slot)
        extra = self.table.codebook_sizes[-1]
        if not 0 <= slot < extra or any(not 0 <= c < s for c, s in
                                        zip(key, self.table.codebook_sizes)):
            raise ValueError(f"item {item}: codes {key} need slot {slot} of a {extra}-slot "
                             "disambiguation level or an unseen code: refreeze the index")
        if slot < len(group) and group[slot] >= 0:
            raise ValueError(f"item {item}: codes {(*key, slot)} already belong to item "
                             f"{group[slot]}")
        if self.vectors is not None:
            if vector is None:
                raise ValueError(f"item {item}: this index ranks collisions; pass its vector")
            if item >= len(self.vectors):
                grown = self.vectors.new_zeros(item + 1, self.vectors.shape[1])
                grown[:len(self.vectors)] = self.vectors
                self.vectors = grown
            self.vectors[item] = vector.detach()
        full = (*key, slot)
        self.trie.add(item, full)
        group += [-1] * (slot + 1 - len(group))
        group[slot] = item
        self.members[key] = group
        self._lookup = None
        return full

    def remove(self, item: int) -> None:
        """Take ``item`` out of the trie; its disambiguation slot is free for a new item."""
        full = self.trie.codes_of(int(item))
        self.trie.remove(int(item))
        group = self.members[tuple(full[:self.n_levels])]
        group[full[-1]] = -1
        self._lookup = None

    def lookup(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(strides (L,), sorted keys (G,), members (G, S) item per slot, -1 = none or
        removed)."""
        if self._lookup is None:
            sizes = np.asarray(self.table.codebook_sizes[:self.n_levels], dtype=np.int64)
            strides = np.concatenate([np.cumprod(sizes[::-1])[::-1][1:], [1]])
            keys = np.array([int(np.dot(k, strides)) for k in self.members], dtype=np.int64)
            order = np.argsort(keys)
            groups = list(self.members.values())
            width = max((len(g) for g in groups), default=1)
            members = np.full((len(groups), width), -1, dtype=np.int64)
            for row, g in enumerate(order.tolist()):
                members[row, :len(groups[g])] = groups[g]
            self._lookup = (torch.as_tensor(strides), torch.as_tensor(keys[order]),
                            torch.as_tensor(members))
        return self._lookup

    def slot_scores(self, model: UniSearch, q: torch.Tensor, prefix: torch.Tensor
                    ) -> torch.Tensor:
        """(N, extra) log-softmax over the items under each row's learned ``prefix`` (N, L)."""
        out = q.new_zeros(len(q), self.table.codebook_sizes[-1])
        if self.vectors is None or not len(q):
            return out
        strides, keys, members = self.lookup()
        key = (prefix[:, :self.n_levels] * strides).sum(1)
        row = torch.searchsorted(keys, key).clamp(max=len(keys) - 1)
        mem = members[row]  # (N, S)
        ok = (mem >= 0) & (keys[row] == key)[:, None]
        scores = model.match_scores(q, self.vectors[mem.clamp(min=0)]).masked_fill(~ok, NEG_INF)
        logp = torch.log_softmax(scores, dim=1)
        out[:, :mem.shape[1]] = torch.where(ok, logp, 0.0)
        return out

    def step_fn(self, model: UniSearch):
        """The beam's step: the model for the learned levels, the RCL ranking of the items
        sharing those codes for the extra one."""

        def step(state: Any, prefix: torch.Tensor, level: int) -> tuple[torch.Tensor, Any]:
            if level < self.n_levels:
                return model.step(state, prefix, level)
            return self.slot_scores(model, state[2], prefix), state

        return step


def build_index(model: UniSearch, item_words: np.ndarray, spare: int) -> LearnedIndex:
    words = torch.as_tensor(item_words)
    codes = model.assign_codes(words)
    return LearnedIndex.build(codes, spare, {"kind": "unisearch",
                                             "collision_rate": collision_rate(codes)},
                              model.item_vectors(words),
                              (model.cfg.codebook_size,) * model.cfg.n_levels)


def freeze(model: UniSearch, item_words: np.ndarray, directory: str | Path, spare: int = 4
           ) -> LearnedIndex:
    """Assign every item's codes, save them (``sid_table.parquet`` + ``.json``, readable by
    ``SidTable.load``) with the item vectors and the model (``unisearch.safetensors`` +
    ``unisearch.json``)."""
    from safetensors.torch import save_file

    from onefeed import config as config_lib

    directory = Path(directory)
    index = build_index(model, item_words, spare)
    index.table.save(directory)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, directory / WEIGHTS)
    save_file({"vectors": index.vectors.contiguous()}, directory / VECTORS)
    (directory / CONFIG).write_text(json.dumps(
        {"model": config_lib.to_dict(model.cfg), "n_levels": index.n_levels}, indent=2))
    return index


def load_frozen(directory: str | Path) -> tuple[UniSearch, LearnedIndex]:
    """The model and index saved by :func:`freeze` (model in eval mode)."""
    from safetensors.torch import load_file

    from onefeed import config as config_lib

    directory = Path(directory)
    info = json.loads((directory / CONFIG).read_text())
    model = UniSearch(config_lib.from_dict(UniSearchConfig, info["model"]))
    model.load_state_dict(load_file(directory / WEIGHTS))
    model.eval()
    vectors = load_file(directory / VECTORS)["vectors"]
    return model, LearnedIndex(SidTable.load(directory), int(info["n_levels"]), vectors)


@torch.no_grad()
def add_item(model: UniSearch, index: LearnedIndex, item: int, text: str,
             codes: Sequence[int] | None = None) -> tuple[int, ...]:
    """Cold start: a new item's codes (and vector) from the item encoder alone, into the trie.
    ``codes`` (L + 1,): a recorded full tuple (a journal replay) used as it is; the vector
    for ranking colliding items is still the encoder's, from ``text``. -> the full tuple."""
    words = torch.as_tensor(word_ids([text], model.cfg.max_item_words))
    vector = model.item_vectors(words)[0] if index.vectors is not None else None
    if codes is None:
        return index.add(item, model.assign_codes(words)[0], vector)
    codes = [int(c) for c in codes]
    if len(codes) != index.n_levels + 1:
        raise ValueError(f"item {item}: {len(codes)} codes, the index has "
                         f"{index.n_levels + 1} levels")
    return index.add(item, codes[:-1], vector, slot=codes[-1])


# ---- search --------------------------------------------------------------------------------------
@torch.no_grad()
def search_words(model: UniSearch, index: LearnedIndex, query_words: np.ndarray, k: int,
                 beam: int) -> BeamResult:
    """Top-``k`` items of each query (Q, Wq) by trie-constrained beam search over the codes."""
    was = model.training
    model.eval()
    state = model.search_state(torch.as_tensor(query_words))
    out = beam_search(index.step_fn(model), state, index.trie, len(query_words), beam, k)
    model.train(was)
    return out


def search(model: UniSearch, index: LearnedIndex, query_texts: Sequence[str], k: int = 10,
           beam: int = 20) -> BeamResult:
    """Generative search: query texts -> top-``k`` items (B, k) with their codes and scores."""
    return search_words(model, index, word_ids(query_texts, model.cfg.max_query_words), k,
                        max(beam, k))


@torch.no_grad()
def score_items(model: UniSearch, index: LearnedIndex, query_texts: Sequence[str],
                items: np.ndarray) -> np.ndarray:
    """log p(item | query) of candidate ``items`` (Q, C) (-1 = none: -inf): the generator's
    teacher-forced log-probs of the item's learned codes plus the RCL ranking at the extra
    level — the beam's own score, for re-scoring e.g. BM25 candidates (score fusion)."""
    was = model.training
    model.eval()
    q_n, c_n = items.shape
    state = model.search_state(torch.as_tensor(word_ids(query_texts, model.cfg.max_query_words)))
    known = items >= 0
    codes = torch.as_tensor(np.array([index.trie.codes_of(int(i)) if ok else
                                      (0,) * (index.n_levels + 1)
                                      for i, ok in zip(items.reshape(-1), known.reshape(-1))],
                                     dtype=np.int64).reshape(q_n * c_n, -1))
    rows = tuple(x.repeat_interleave(c_n, 0) for x in state)
    logp = model.code_log_probs(rows, codes[:, :index.n_levels]).sum(1)
    slot = index.slot_scores(model, rows[2], codes[:, :index.n_levels])
    logp = logp + slot.gather(1, codes[:, -1:])[:, 0]
    model.train(was)
    return np.where(known, logp.view(q_n, c_n).numpy(), -np.inf).astype(np.float32)


@torch.no_grad()
def unconstrained_search(model: UniSearch, index: LearnedIndex, query_texts: Sequence[str],
                         k: int = 10, beam: int = 20) -> tuple[np.ndarray, float]:
    """The same beam without the trie (UniSearch §4.3 "Impact of the Trie Constraint"):
    top-``k`` learned code tuples per query, each mapped to the best-matching item that has
    it, or -1 when no item does. -> (items (Q, k), share of the Q x k generations that are
    valid)."""
    was = model.training
    model.eval()
    state = model.search_state(torch.as_tensor(word_ids(query_texts, model.cfg.max_query_words)))
    n = len(query_texts)
    beam = max(beam, k)
    scores, prefix, width = torch.zeros(n, 1), torch.zeros(n, 0, dtype=torch.long), 1
    for level in range(index.n_levels):
        logp, state = model.step(state, prefix, level)
        v = logp.shape[1]
        scores, top = (scores.view(-1, 1) + logp).view(n, width * v).topk(min(beam, width * v), 1)
        parent = (torch.arange(n).unsqueeze(1) * width + top // v).view(-1)
        prefix = torch.cat([prefix[parent], (top % v).view(-1, 1)], 1)
        width = scores.shape[1]
        state = tuple(x[parent] for x in state)
    model.train(was)
    prefix = prefix.view(n, width, -1)[:, :k]
    items = np.full((n, prefix.shape[1]), -1, dtype=np.int64)
    for qi in range(n):
        for j, codes in enumerate(prefix[qi].tolist()):
            group = [g for g in index.members.get(tuple(codes), []) if g >= 0]
            if group:
                best = 0 if index.vectors is None or len(group) == 1 else int(
                    model.match_scores(state[2][qi * width:qi * width + 1],
                                       index.vectors[group].unsqueeze(0)).argmax())
                items[qi, j] = group[best]
    return items, float((items >= 0).mean()) if items.size else 1.0


def recall_mrr(items: np.ndarray, targets: np.ndarray, k: int) -> tuple[float, float]:
    """Recall@k and MRR@k of ranked ``items`` (Q, >= k) against one target each (Q,)."""
    hit = items[:, :k] == targets[:, None]
    rank = hit.argmax(1)
    found = hit.any(1)
    return float(found.mean()) if len(items) else 0.0, \
        float(np.where(found, 1.0 / (rank + 1), 0.0).mean()) if len(items) else 0.0


# ---- the task ------------------------------------------------------------------------------------
class UniSearchTask:
    """Unified pre-training (UniSearch Eq. 5) as a ``onefeed.train.task.Task``; scored by the
    validation Recall@``eval_k`` of generative search over the current codes.

    With ``hard_negatives`` each level n >= 1 gets coarse-to-fine negatives drawn from each
    positive's nearest items in the model's own item space, refreshed at the start of every
    ``refresh_every``-th epoch (a function of the weights then, so a resumed run repeats the
    uninterrupted one; with ``refresh_every > 1`` only if it resumes at a refresh epoch)."""

    def __init__(self, data: SearchData, cfg: UniSearchTaskConfig, model: UniSearch) -> None:
        self.data, self.cfg, self.model = data, cfg, model
        self.neighbours: np.ndarray | None = None

    def steps_per_epoch(self, world: int) -> int:
        return _steps(len(self.data.items), self.cfg.batch_size, world)

    def batches(self, epoch: int, rng: np.random.Generator, rank: int, world: int
                ) -> Iterator[SearchBatch]:
        n = len(self.data.items)
        rows = rng.permutation(n)[rank::world][: n // world]  # train.task.rank_shard
        hard = self.cfg.hard_negatives and self.model.cfg.n_levels > 1
        if hard and (self.neighbours is None or epoch % self.cfg.refresh_every == 0):
            self.neighbours = item_neighbours(self.model, self.data.item_words,
                                              self.cfg.neighbours)
        for start in range(0, len(rows), self.cfg.batch_size):
            yield self.batch(rows[start:start + self.cfg.batch_size], rng, bool(hard))

    def batch(self, rows: np.ndarray, rng: np.random.Generator, hard: bool = False
              ) -> SearchBatch:
        d = self.data
        items = d.items[rows]
        hard_words = catalogue = None
        if hard and self.neighbours is not None:
            negs = coarse_to_fine_negatives(self.neighbours, items, self.model.cfg.n_levels,
                                            self.cfg.hard_negatives, rng, self.cfg.shrink)[1:]
            hard_words = torch.as_tensor(d.item_words[np.stack(negs, 1)])  # (B, L-1, H, Wi)
        if self.cfg.catalogue_items:
            catalogue = torch.as_tensor(d.item_words[rng.integers(d.n_items,
                                                                  size=self.cfg.catalogue_items)])
        return SearchBatch(torch.as_tensor(d.query_words[rows]),
                           torch.as_tensor(d.item_words[items]), torch.as_tensor(items),
                           hard_words, catalogue_words=catalogue)

    def loss(self, model: torch.nn.Module, batch: SearchBatch
             ) -> tuple[torch.Tensor, dict[str, float]]:
        parts = model.loss(batch)
        return parts["loss"], {k: float(v.detach()) for k, v in parts.items() if k != "loss"}

    def validate(self, model: torch.nn.Module, rank: int, world: int) -> dict[str, float]:
        d, cfg = self.data, self.cfg
        words, targets = (d.valid_words, d.valid_items) if len(d.valid_items) else \
            (d.query_words, d.items)
        if cfg.valid_pairs and len(targets) > cfg.valid_pairs:
            keep = np.random.default_rng(0).choice(len(targets), cfg.valid_pairs, replace=False)
            words, targets = words[keep], targets[keep]
        index = build_index(model, d.item_words, cfg.spare_codes)
        k = min(cfg.eval_k, d.n_items)
        res = search_words(model, index, words, k, max(cfg.eval_beam, k))
        recall, mrr = recall_mrr(res.items.numpy(), targets, k)
        return {"score": recall, f"recall{k}": recall, f"mrr{k}": mrr,
                "collision_rate": float(index.table.meta["collision_rate"])}


def _steps(n_rows: int, batch_size: int, world: int) -> int:
    """``onefeed.train.task.steps_for`` (a layer above tasks): batches of one rank's rows."""
    return -(-(n_rows // world) // batch_size)


def item_neighbours(model: UniSearch, item_words: np.ndarray, k: int) -> np.ndarray:
    """(n_items, k + 1) each item's nearest items by L2 over ``model.item_vectors`` (faiss,
    exact), nearest first; the item itself is usually among them."""
    import faiss

    vec = model.item_vectors(torch.as_tensor(item_words)).numpy().astype(np.float32)
    index = faiss.IndexFlatL2(vec.shape[1])
    index.add(vec)
    _, nn_ids = index.search(vec, min(k + 1, len(vec)))
    return nn_ids.astype(np.int64)
