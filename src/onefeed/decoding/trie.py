"""A prefix tree of valid semantic-ID tuples in CSR form: per depth, sorted edge codes + offsets.

Depth ``j`` has ``n_j`` nodes and ``E_j`` edges; node ``n``'s edges are
``offsets[j][n]:offsets[j][n + 1]``, codes ascending. Built from lexicographically sorted
unique code rows, the nodes of depth ``j + 1`` are the edges of depth ``j`` in order (edge
``e`` leads to node ``e``), so no child pointers are stored; at the last depth edge ``e``
holds an item id. Memory is O(edges), about L x n_items words, whatever the codebook sizes
(``DenseTrie``'s tables are nodes x V per depth: with 10^6 items and a 100-code
disambiguation level its last depth alone is ~1.6 GB). No Python object per node or item.

The beam search (``onefeed.decoding.beam``) asks for a whole batch of nodes' allowed codes at
once (``slot_rows``): ``K_j`` slots per node, the widest node of depth ``j``; slot ``k`` of node
``n`` is edge ``offsets[n] + k``, open when it lies in the node's range and has a live item
below it (out-of-range slots are pointed at a closed *sentinel* edge kept at the end of every
depth, so no bounds case remains). Depths where that is small and mostly filled
(``(n_j + 1) x K_j <= min(TABLE_ENTRIES, 8 E_j)``) also keep those slot rows materialised (``_Table``: one row gather per step,
as in ``DenseTrie``; when a node may take every code, slot = code and nothing is gathered);
the deep, wide depths are sliced from the CSR arrays on the fly.

Run-time updates (UniSearch §3.4: live items come and go): every edge counts the live items
below it; removing an item decrements its path, and an edge with no live item is closed (so
the search never enters an emptied prefix) but kept. An added item reuses (reopens) the base
edges of its path; edges the base lacks go to a small per-depth *overlay* of extra child rows
(code, next, live) attached to base nodes or to overlay nodes, which are numbered after the
base nodes of their depth. ``slot_rows`` appends a node's overlay row after its base slots.
``compact()`` folds the overlay into a fresh base and drops closed edges.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import torch

NEG_INF = float("-inf")
TABLE_ENTRIES = 1 << 22  # materialise a depth's slot rows up to this many slots (<= 80 MB)


class _Table(NamedTuple):
    """One depth's slot rows, materialised; row ``n_nodes`` is the dead row (all closed)."""

    edge: np.ndarray  # (n_nodes + 1, K) int32 (int64 past 2**31 edges) edge of each slot,
    #                   the sentinel edge where padding
    bias: np.ndarray  # (n_nodes + 1, K) float32 0 where open, -inf where closed
    code: np.ndarray | None  # (n_nodes + 1, K) int64 code of each slot; None: dense, slot = code


class _Overlay:
    """Extra children at one depth: row ``r`` has ``deg[r]`` slots (code, next, live), codes
    ascending; padding slots and the last row of the arrays (the sentinel row) are closed and
    lead to the next depth's dead node (``dead_next``)."""

    def __init__(self, dead_next: int) -> None:
        self.dead_next = dead_next
        self.code = np.zeros((1, 0), dtype=np.int64)
        self.next = np.zeros((1, 0), dtype=np.int64)
        self.live = np.zeros((1, 0), dtype=np.int32)
        self.deg = np.zeros(1, dtype=np.int64)
        self.n_rows = 0
        self.row_of: dict[int, int] = {}  # node -> row
        self.attach = np.full(0, -1, dtype=np.int32)  # node -> row, for vectorised lookups

    @property
    def sentinel(self) -> int:
        return len(self.code) - 1

    def find(self, node: int, code: int) -> tuple[int, int] | None:
        row = self.row_of.get(node)
        if row is None:
            return None
        hit = np.flatnonzero(self.code[row, :self.deg[row]] == code)
        return (row, int(hit[0])) if len(hit) else None

    def insert(self, node: int, code: int, nxt: int) -> tuple[int, int]:
        """A new closed slot (live 0) for ``code`` under ``node`` -> (row, position)."""
        row = self.row_of.get(node)
        if row is None:
            row = self._new_row(node)
        d = int(self.deg[row])
        if d == self.code.shape[1]:  # widen every row by one closed column
            self.code, self.live = (np.pad(a, ((0, 0), (0, 1))) for a in (self.code, self.live))
            self.next = np.pad(self.next, ((0, 0), (0, 1)), constant_values=self.dead_next)
        p = int(np.searchsorted(self.code[row, :d], code))
        for arr, value in ((self.code, code), (self.next, nxt), (self.live, 0)):
            arr[row, p + 1:d + 1] = arr[row, p:d].copy()
            arr[row, p] = value
        self.deg[row] = d + 1
        return row, p

    def _new_row(self, node: int) -> int:
        if self.n_rows == self.sentinel:  # full: double (the sentinel row moves to the end)
            cap, width = 2 * max(self.n_rows, 8), self.code.shape[1]
            grow = [np.zeros((cap + 1, width), dtype=np.int64),
                    np.full((cap + 1, width), self.dead_next, dtype=np.int64),
                    np.zeros((cap + 1, width), dtype=np.int32)]
            for new, old in zip(grow, (self.code, self.next, self.live)):
                new[:self.n_rows] = old[:self.n_rows]
            self.code, self.next, self.live = grow
            deg = np.zeros(cap + 1, dtype=np.int64)
            deg[:self.n_rows] = self.deg[:self.n_rows]
            self.deg = deg
        row = self.n_rows
        self.n_rows += 1
        self.row_of[node] = row
        if node >= len(self.attach):
            attach = np.full(max(node + 1, 2 * len(self.attach)), -1, dtype=np.int32)
            attach[:len(self.attach)] = self.attach
            self.attach = attach
        self.attach[node] = row
        return row

    def rows(self, nodes: torch.Tensor) -> torch.Tensor:
        """(N,) node ids -> (N,) overlay rows, the sentinel row where a node has none."""
        attach = torch.from_numpy(self.attach)
        inside = (nodes >= 0) & (nodes < len(attach))
        row = attach[nodes.clamp(0, len(attach) - 1)].long()
        return torch.where(inside & (row >= 0), row, self.sentinel)

    @property
    def nbytes(self) -> int:
        return int(sum(a.nbytes for a in (self.code, self.next, self.live, self.deg,
                                          self.attach)))


class Trie:
    def __init__(self, codebook_sizes: Sequence[int]) -> None:
        self.codebook_sizes = tuple(int(v) for v in codebook_sizes)
        if not self.codebook_sizes or min(self.codebook_sizes) < 1:
            raise ValueError(f"bad codebook sizes {self.codebook_sizes}")
        n_levels = self.n_levels
        empty = np.zeros((0, n_levels), dtype=np.int64)
        self._build(empty, np.zeros(0, dtype=np.int64))

    # ---- construction ---------------------------------------------------------------------------
    @classmethod
    def from_codes(cls, codes: np.ndarray, items: np.ndarray | None = None) -> "Trie":
        """Build from (n, L) codes (row i = item ``items[i]``, default ``i``) in one pass."""
        codes = np.asarray(codes, dtype=np.int64)
        if codes.ndim != 2:
            raise ValueError(f"codes must be (n, L) with one item per row, got {codes.shape}")
        sizes = codes.max(axis=0) + 1 if len(codes) else np.ones(codes.shape[1], dtype=np.int64)
        return cls(sizes)._build(codes, items)

    @classmethod
    def from_table(cls, codes: np.ndarray, codebook_sizes: Sequence[int]) -> "Trie":
        """Build from a SidTable's codes with the table's own codebook sizes."""
        return cls(codebook_sizes)._build(np.asarray(codes, dtype=np.int64), None)

    def _build(self, codes: np.ndarray, items: np.ndarray | None) -> "Trie":
        """Replace the contents by (n, L) ``codes`` of ``items`` (default 0..n-1)."""
        n, n_levels = len(codes), self.n_levels
        items = np.arange(n, dtype=np.int64) if items is None else np.asarray(items, np.int64)
        if codes.ndim != 2 or codes.shape[1] != n_levels or len(items) != n:
            raise ValueError(f"codes must be (n, {n_levels}) with one item per row, got "
                             f"{codes.shape} for {len(items)} items")
        if n and ((codes < 0).any() or (codes >= np.asarray(self.codebook_sizes)).any()):
            raise ValueError(f"a code lies outside its codebook (sizes {self.codebook_sizes})")
        order = np.lexsort(codes.T[::-1])
        c, it = codes[order], items[order]
        differs = np.ones((n, n_levels), dtype=bool)
        differs[1:] = c[1:] != c[:-1]
        new_edge = np.logical_or.accumulate(differs, axis=1)  # prefix c[i, :j+1] is new
        if n and not new_edge[:, -1].all():
            raise ValueError("two items share a code tuple; the trie needs unique rows")
        self._offsets, self._codes, self._live, self._width = [], [], [], []
        self._n_nodes = []
        edge_of_row = np.zeros(n, dtype=np.int64)  # row -> its edge at the previous depth
        n_nodes = 1
        for j in range(n_levels):
            rows = np.flatnonzero(new_edge[:, j])
            parent = edge_of_row[rows]
            # node n's edges: offsets[n]:offsets[n + 1]; node n_nodes (dead) has none
            offsets = np.searchsorted(parent, np.arange(n_nodes + 2)).astype(np.int64)
            self._n_nodes.append(n_nodes)
            self._offsets.append(offsets)
            self._codes.append(np.append(c[rows, j], 0))  # + the closed sentinel edge, which
            # leads to node E_j = n_nodes[j + 1]: the next depth's dead node
            self._live.append(np.append(np.diff(np.append(rows, n)), 0).astype(np.int32))
            self._width.append(max(int(np.diff(offsets).max(initial=0)), 1))
            edge_of_row = np.cumsum(new_edge[:, j]) - 1
            n_nodes = len(rows)
        self._items = np.append(it, -1)  # last-depth edge -> item
        self._overlay = [_Overlay(self._n_nodes[j + 1] if j < n_levels - 1 else -1)
                         for j in range(n_levels)]
        self._n_extra = [0] * n_levels  # overlay nodes per depth
        by_item = np.argsort(it, kind="stable")
        self._base_ids, self._base_leaf = it[by_item], by_item.astype(np.int64)
        if n and (np.diff(self._base_ids) == 0).any():
            raise ValueError("an item id appears twice; the trie needs one row per item")
        small = np.int16 if max(self.codebook_sizes) < 2**15 else np.int32
        self._base_codes = c[by_item].astype(small)
        self._added: dict[int, tuple[int, ...]] = {}
        self._n_live = n
        self._tables = [self._table(j) for j in range(n_levels)]
        self._views()
        return self

    def _views(self) -> None:
        """Torch views (shared memory) of the base arrays, made once."""
        self._offsets_t = [torch.from_numpy(a) for a in self._offsets]
        self._codes_t = [torch.from_numpy(a) for a in self._codes]
        self._live_t = [torch.from_numpy(a) for a in self._live]
        self._items_t = torch.from_numpy(self._items)
        self._tables_t = [None if t is None else _Table(*(None if a is None else
                                                          torch.from_numpy(a) for a in t))
                          for t in self._tables]
        self._arange = [torch.arange(k) for k in self._width]

    def _table(self, depth: int) -> _Table | None:
        """Materialised slot rows of ``depth``, or None when they would be large or mostly
        padding (a wide disambiguation level): then they are sliced from the CSR arrays."""
        n_nodes, width = self._n_nodes[depth], self._width[depth]
        offsets = self._offsets[depth][:n_nodes + 1]
        n_edges = int(offsets[-1])
        if (n_nodes + 1) * width > min(TABLE_ENTRIES, 8 * (n_edges + 1)):
            return None
        dense = width == self.codebook_sizes[depth]
        node = np.repeat(np.arange(n_nodes), np.diff(offsets))
        col = self._codes[depth][:n_edges] if dense else np.arange(n_edges) - offsets[node]
        index = np.int32 if n_edges < 2**31 - 1 else np.int64
        edge = np.full((n_nodes + 1, width), n_edges, dtype=index)  # sentinel edge
        edge[node, col] = np.arange(n_edges)
        bias = np.where(self._live[depth][edge] > 0, 0.0, NEG_INF).astype(np.float32)
        return _Table(edge, bias, None if dense else self._codes[depth][edge])

    def _sync(self, depth: int, edge: int) -> None:
        """Open / close a base edge's slot in its depth's materialised table."""
        table = self._tables[depth]
        if table is None:
            return
        offsets = self._offsets[depth][:self._n_nodes[depth] + 1]
        node = int(np.searchsorted(offsets, edge, side="right")) - 1
        col = self._codes[depth][edge] if table.code is None else edge - offsets[node]
        table.bias[node, col] = 0.0 if self._live[depth][edge] > 0 else NEG_INF

    # ---- run-time updates (UniSearch §3.4) ---------------------------------------------------
    def add(self, item: int, codes: Sequence[int]) -> None:
        item, codes = int(item), tuple(int(c) for c in codes)
        if len(codes) != self.n_levels:
            raise ValueError(f"item {item}: {len(codes)} codes, trie has {self.n_levels} levels")
        for j, (c, v) in enumerate(zip(codes, self.codebook_sizes)):
            if not 0 <= c < v:
                raise ValueError(f"item {item}: code {c} at level {j} outside codebook of {v}")
        if item in self:
            raise ValueError(f"item {item} is already in the trie")
        path = self._path(codes)
        last = self.n_levels - 1
        if len(path) == self.n_levels and self._edge(last, path[-1], "live") > 0:
            other = self._edge(last, path[-1], "next")
            raise ValueError(f"item {item}: codes {codes} already belong to item {other}")
        node = 0
        for j, c in enumerate(codes):
            if j < len(path):
                ref = path[j]
            else:  # a new overlay edge (and, above the last depth, a new overlay node)
                child = -1
                if j < last:
                    child = self._n_nodes[j + 1] + 1 + self._n_extra[j + 1]  # after dead
                    self._n_extra[j + 1] += 1
                ref = self._overlay[j].insert(node, c, child)
            self._bump(j, ref, 1)
            if j < last:
                node = self._edge(j, ref, "next")
        self._set_item(ref, item)  # the leaf edge
        self._added[item] = codes
        self._n_live += 1

    def remove(self, item: int) -> None:
        item = int(item)
        if item not in self:
            raise KeyError(f"item {item} is not in the trie")
        for j, ref in enumerate(self._path(self.codes_of(item))):
            self._bump(j, ref, -1)
        if self._added.pop(item, None) is None:
            self._base_leaf[self._base_pos(item)] = -1
        self._n_live -= 1

    def compact(self) -> "Trie":
        """A fresh trie of the live items (no overlay, no closed edges, narrowest slots)."""
        items, codes = self._live_rows()
        return Trie(self.codebook_sizes)._build(codes, items)

    # edges are referenced as an int (base edge index) or a (row, position) overlay slot
    def _path(self, codes: Sequence[int]) -> list[int | tuple[int, int]]:
        """Edge references along ``codes`` from the root, up to the first missing edge."""
        path: list[int | tuple[int, int]] = []
        node = 0
        for j, c in enumerate(codes):
            ref = self._base_edge(j, node, c)
            if ref is None:
                ref = self._overlay[j].find(node, c)
            if ref is None:
                break
            path.append(ref)
            if j < self.n_levels - 1:
                node = self._edge(j, ref, "next")
        return path

    def _base_edge(self, depth: int, node: int, code: int) -> int | None:
        offsets = self._offsets[depth]
        if node >= self._n_nodes[depth]:
            return None
        lo, hi = int(offsets[node]), int(offsets[node + 1])
        k = lo + int(np.searchsorted(self._codes[depth][lo:hi], code))
        return k if k < hi and self._codes[depth][k] == code else None

    def _edge(self, depth: int, ref: int | tuple[int, int], what: str) -> int:
        """"live" count or "next" (child node; item id at the last depth) of an edge."""
        if isinstance(ref, tuple):
            ov = self._overlay[depth]
            return int((ov.live if what == "live" else ov.next)[ref])
        if what == "live":
            return int(self._live[depth][ref])
        return int(self._items[ref]) if depth == self.n_levels - 1 else ref

    def _bump(self, depth: int, ref: int | tuple[int, int], delta: int) -> None:
        if isinstance(ref, tuple):
            self._overlay[depth].live[ref] += delta
        else:
            self._live[depth][ref] += delta
            if self._live[depth][ref] in (0, delta):  # just closed or just reopened
                self._sync(depth, ref)

    def _set_item(self, ref: int | tuple[int, int], item: int) -> None:
        if isinstance(ref, tuple):
            self._overlay[-1].next[ref] = item
        else:
            self._items[ref] = item

    def _base_pos(self, item: int) -> int:
        """Index of a live base item in the registry, -1 if ``item`` is not one."""
        pos = int(np.searchsorted(self._base_ids, item))
        if pos < len(self._base_ids) and self._base_ids[pos] == item and \
                self._base_leaf[pos] >= 0:
            return pos
        return -1

    def _live_rows(self) -> tuple[np.ndarray, np.ndarray]:
        """(n,) live item ids ascending and their (n, L) codes."""
        keep = self._base_leaf >= 0
        ids = np.concatenate([self._base_ids[keep], np.fromiter(self._added, np.int64,
                                                                len(self._added))])
        codes = np.concatenate([self._base_codes[keep].astype(np.int64),
                                np.array(list(self._added.values()), dtype=np.int64
                                         ).reshape(-1, self.n_levels)])
        order = np.argsort(ids, kind="stable")
        return ids[order], codes[order]

    # ---- queries ---------------------------------------------------------------------------
    @property
    def n_levels(self) -> int:
        return len(self.codebook_sizes)

    def __len__(self) -> int:
        return self._n_live

    def __contains__(self, item: object) -> bool:
        if not isinstance(item, (int, np.integer)):
            return False
        return int(item) in self._added or self._base_pos(int(item)) >= 0

    def codes_of(self, item: int) -> tuple[int, ...]:
        item = int(item)
        if item in self._added:
            return self._added[item]
        pos = self._base_pos(item)
        if pos < 0:
            raise KeyError(item)
        return tuple(int(c) for c in self._base_codes[pos])

    def items(self) -> np.ndarray:
        """(n,) int64 ids of the live items, ascending."""
        return self._live_rows()[0]

    @property
    def nbytes(self) -> int:
        """Bytes held by the trie's arrays (base, overlay and the item registry)."""
        arrays = [*self._offsets, *self._codes, *self._live, self._items, self._base_ids,
                  self._base_leaf, self._base_codes] + [a for t in self._tables if t is not None
                                                        for a in t if a is not None]
        return int(sum(a.nbytes for a in arrays) + sum(o.nbytes for o in self._overlay))

    # ---- the beam-search interface (onefeed.decoding.beam) ---------------------------------
    # Node ids at depth j: base nodes 0..n_j-1, the dead node n_j (no children; closed slots
    # lead to it), overlay nodes from n_j + 1. Closed slots score -inf, so a beam that takes
    # one stays at -inf and ends as item -1 whatever node it is at.
    def root(self, n: int) -> torch.Tensor:
        """(n,) root nodes, one per user."""
        return torch.zeros(n, dtype=torch.long)

    def width(self, level: int) -> int:
        """Slots per node at ``level``: the widest base node (the codebook size when the slot
        rows are dense), plus the overlay's widest row."""
        return self._base_width(level) + self._overlay[level].code.shape[1]

    def _base_width(self, level: int) -> int:
        table = self._tables[level]
        return self._width[level] if table is None else table.edge.shape[1]

    def slot_rows(self, level: int, nodes: torch.Tensor
                  ) -> tuple[torch.Tensor | None, torch.Tensor]:
        """(N,) nodes (>= 0) -> codes (N, K) int64 (None when slot == code) and bias (N, K)
        0 where the slot is open, -inf where closed; K = ``width(level)``."""
        rows = nodes.long().clamp(max=self._n_nodes[level])  # overlay nodes: no base slots
        table = self._tables_t[level]
        if table is not None:
            bias = table.bias.index_select(0, rows)
            code = None if table.code is None else table.code.index_select(0, rows)
        else:
            offsets = self._offsets_t[level]
            idx = offsets[rows].unsqueeze(1) + self._arange[level]  # (N, K_base)
            idx = torch.where(idx < offsets[rows + 1].unsqueeze(1), idx,
                              len(self._codes[level]) - 1)
            code = self._codes_t[level][idx]
            bias = torch.zeros(idx.shape).masked_fill_(self._live_t[level][idx] == 0, NEG_INF)
        ov = self._overlay[level]
        if ov.n_rows:
            row = ov.rows(nodes.long())
            if code is None:
                code = torch.arange(bias.shape[1]).expand(len(nodes), -1)
            code = torch.cat([code, torch.from_numpy(ov.code)[row]], 1)
            closed = torch.from_numpy(ov.live)[row] == 0
            bias = torch.cat([bias, torch.zeros(closed.shape).masked_fill_(closed, NEG_INF)], 1)
        return code, bias

    def follow(self, level: int, nodes: torch.Tensor, pos: torch.Tensor
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """(M,) nodes and chosen slot positions -> (codes (M,) int64, next nodes (M,) int64);
        after the last level the next "nodes" are item ids (-1 for padding slots)."""
        nodes, pos = nodes.long(), pos.long()
        rows = nodes.clamp(max=self._n_nodes[level])
        k_base, sentinel = self._base_width(level), len(self._codes[level]) - 1
        ov = self._overlay[level]
        table = self._tables_t[level]
        if table is not None:
            edge = table.edge[rows, pos.clamp(max=k_base - 1) if ov.n_rows else pos].long()
            if ov.n_rows:
                edge = torch.where(pos < k_base, edge, sentinel)
        else:
            offsets = self._offsets_t[level]
            edge = offsets[rows] + pos
            edge = torch.where(edge < offsets[rows + 1], edge, sentinel)
        code = self._codes_t[level][edge]
        nxt = self._items_t[edge] if level == self.n_levels - 1 else edge
        if ov.n_rows:
            row, at, in_ov = ov.rows(nodes), (pos - k_base).clamp(min=0), pos >= k_base
            code = torch.where(in_ov, torch.from_numpy(ov.code)[row, at], code)
            nxt = torch.where(in_ov, torch.from_numpy(ov.next)[row, at], nxt)
        return code, nxt

    # ---- per-node views (tests, tools) ---------------------------------------------------------
    def _known(self, level: int, nodes: torch.Tensor) -> torch.Tensor:
        """-1 (what ``advance`` returns for a missing child) -> the dead node."""
        nodes = nodes.long()
        return torch.where(nodes < 0, self._n_nodes[level], nodes)

    def _slot_codes(self, level: int, nodes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        nodes = self._known(level, nodes)
        code, bias = self.slot_rows(level, nodes)
        return (torch.arange(bias.shape[1]).expand(len(bias), -1) if code is None else code), bias

    def next_mask(self, level: int, nodes: torch.Tensor) -> torch.Tensor:
        """(N,) node ids at depth ``level`` -> (N, V_level) bool: which codes may follow."""
        code, bias = self._slot_codes(level, nodes)
        mask = torch.zeros(len(code), self.codebook_sizes[level], dtype=torch.bool)
        rows, slots = (bias == 0).nonzero(as_tuple=True)
        mask[rows, code[rows, slots]] = True
        return mask

    def candidates(self, level: int, nodes: torch.Tensor) -> torch.Tensor:
        """(N,) nodes at depth ``level`` -> (N, K_level) allowed codes, ascending, -1 padded."""
        code, bias = self._slot_codes(level, nodes)
        big = self.codebook_sizes[level]
        keyed = torch.where(bias == 0, code, big).sort(dim=1).values
        return torch.where(keyed < big, keyed, -1)

    def advance(self, level: int, nodes: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        """(N,) nodes, (N,) codes -> (N,) child nodes (item ids at the last level), -1 if no
        open child has that code."""
        nodes = self._known(level, nodes)
        code, bias = self._slot_codes(level, nodes)
        hit = (code == codes.long().unsqueeze(1)) & (bias == 0)
        _, nxt = self.follow(level, nodes, hit.int().argmax(dim=1))
        return torch.where(hit.any(dim=1), nxt, -1)
