"""The previous trie: dense per-depth child tables (kept as the baseline of ``onefeed bench
catalogue`` and as a second implementation the compact ``Trie`` is tested against).

``DenseTrie`` has the same API as ``onefeed.decoding.trie.Trie`` (and ``beam_search`` takes
either); its tables grow as (nodes at a depth) x (codebook size), so at 10^6 items with a wide
disambiguation level they take gigabytes.

Depth ``j`` holds ``children[j]`` of shape (n_nodes_j, V_j): entry ``[node, code]`` is the
child node at depth ``j + 1`` (at the last depth, the item id), or -1 when ``code`` cannot
follow that prefix. From it each depth also keeps its *slot tables* (``Slots``): every node's
allowed codes as a short padded list (K_j wide, the most children of any node at that depth:
256/40/16/10 on Beauty against codebooks of 256/256/256/10), with an additive 0/-inf bias and
the child reached through each slot. The batched beam search then applies the constraint
with one row gather per table instead of masking full V-wide rows, and advances beams with
one lookup. Each slot table ends with a *dead* row (all padding) so finished-off beams need
no special case.

Items can be added and removed at run time (UniSearch §3.4: live items come and go); the
touched rows are rewritten at once. Nodes emptied by removals stay allocated but unreachable
until ``compact()``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import torch


class Slots(NamedTuple):
    """The child lists of every node at one depth, plus a last all-padding *dead* row.

    Sparse layout (``dense`` False): row = the node's allowed codes ascending, then padding.
    Dense layout (``dense`` True, used when some node may be followed by every code of the
    level): slot ``c`` is code ``c`` itself, so a beam's candidates are its whole log-prob row
    plus ``bias`` and no gather is needed.
    """

    code: torch.Tensor  # (n_nodes + 1, K) int32 code of each slot, 0 where padding
    bias: torch.Tensor  # (n_nodes + 1, K) float32 0 where allowed, -inf where padding
    next: torch.Tensor  # (n_nodes + 1, K) int32 child node (item id at the last depth);
    #                     padding -> the next depth's dead row (-1 at the last depth)
    #                     (code and next are int64 when a table has >= 2**31 entries)
    dense: bool  # K == V and slot == code

    @property
    def dead(self) -> int:
        return len(self.code) - 1


class DenseTrie:
    def __init__(self, codebook_sizes: Sequence[int]) -> None:
        self.codebook_sizes = tuple(int(v) for v in codebook_sizes)
        if not self.codebook_sizes or min(self.codebook_sizes) < 1:
            raise ValueError(f"bad codebook sizes {self.codebook_sizes}")
        self._children = [np.full((1 if j == 0 else 16, v), -1, dtype=np.int32)
                          for j, v in enumerate(self.codebook_sizes)]
        self._count = [np.zeros(len(t), dtype=np.int32) for t in self._children]
        self._n_nodes = [1] + [0] * (self.n_levels - 1)
        self._paths: dict[int, tuple[int, ...]] = {}  # item -> codes
        self._refresh()

    # ---- construction ---------------------------------------------------------------------------
    @classmethod
    def from_codes(cls, codes: np.ndarray, items: np.ndarray | None = None) -> "DenseTrie":
        """Build from (n, L) codes (row i = item ``items[i]``, default ``i``) in one pass."""
        codes = np.asarray(codes, dtype=np.int64)
        items = np.arange(len(codes)) if items is None else np.asarray(items, dtype=np.int64)
        if codes.ndim != 2 or len(items) != len(codes):
            raise ValueError(f"codes must be (n, L) with one item per row, got {codes.shape}")
        if len(np.unique(codes, axis=0)) != len(codes):
            raise ValueError("two items share a code tuple; the trie needs unique rows")
        sizes = codes.max(axis=0) + 1 if len(codes) else np.ones(codes.shape[1], dtype=np.int64)
        trie = cls(sizes)
        return trie._fill(codes, items)

    @classmethod
    def from_table(cls, codes: np.ndarray, codebook_sizes: Sequence[int]) -> "DenseTrie":
        """Build from a SidTable's codes with the table's own codebook sizes."""
        trie = cls(codebook_sizes)
        codes = np.asarray(codes, dtype=np.int64)
        if len(np.unique(codes, axis=0)) != len(codes):
            raise ValueError("two items share a code tuple; the trie needs unique rows")
        return trie._fill(codes, np.arange(len(codes)))

    def _fill(self, codes: np.ndarray, items: np.ndarray) -> "DenseTrie":
        n_levels = self.n_levels
        node = np.zeros(len(codes), dtype=np.int64)
        for j in range(n_levels):
            if j < n_levels - 1:
                key = node * self.codebook_sizes[j] + codes[:, j]
                uniq, child = np.unique(key, return_inverse=True)
                child = child.ravel()
                table = np.full((max(len(uniq), 1), self.codebook_sizes[j + 1]), -1, np.int32)
                self._children[j + 1] = table
                self._count[j + 1] = np.zeros(len(table), dtype=np.int32)
                self._n_nodes[j + 1] = len(uniq)
                value = child
            else:
                value = items
            self._children[j][node, codes[:, j]] = value
            self._count[j] = (self._children[j] >= 0).sum(axis=1).astype(np.int32)
            if j < n_levels - 1:
                node = child
        self._paths = {int(i): tuple(int(c) for c in row) for i, row in zip(items, codes)}
        self._refresh()
        return self

    def _refresh(self) -> None:
        """Torch views of the child tables (shared memory) and every depth's slot tables."""
        self.children = [torch.from_numpy(t) for t in self._children]
        self.slots = [self._build_slots(j) for j in range(self.n_levels)]

    def _dead_next(self, depth: int) -> int:
        """What a padding slot at ``depth`` leads to: the next depth's dead row, or -1."""
        return len(self._children[depth + 1]) if depth < self.n_levels - 1 else -1

    def _build_slots(self, depth: int) -> Slots:
        table = self._children[depth]
        n_codes = table.shape[1]
        valid = table >= 0
        counts = valid.sum(axis=1)
        width = max(int(counts.max()) if len(counts) else 0, 1)
        shape = (len(table) + 1, n_codes if width == n_codes else width)
        index = np.int32 if shape[0] * shape[1] < 2**31 else np.int64  # half the cache footprint
        code = np.zeros(shape, dtype=index)
        nxt = np.full(shape, self._dead_next(depth), dtype=index)
        bias = np.full(shape, -np.inf, dtype=np.float32)
        rows, cols = np.nonzero(valid)  # row-major: codes ascend within a row
        if width == n_codes:
            code[:] = np.arange(n_codes)
            pos = cols
        else:
            pos = np.arange(len(rows)) - (np.cumsum(counts) - counts)[rows]
        code[rows, pos], nxt[rows, pos], bias[rows, pos] = cols, table[rows, cols], 0.0
        return Slots(torch.from_numpy(code), torch.from_numpy(bias), torch.from_numpy(nxt),
                     width == n_codes)

    def _set(self, depth: int, node: int, code: int, value: int) -> None:
        """Write one child entry and rewrite that node's slot row (widening if needed)."""
        self._children[depth][node, code] = value
        row = self._children[depth][node]
        cols = np.flatnonzero(row >= 0)
        slots = self.slots[depth]
        if len(cols) > slots.code.shape[1]:
            self.slots[depth] = self._build_slots(depth)
            return
        pos = cols if slots.dense else np.arange(len(cols))
        if not slots.dense:
            slots.code[node] = 0
            slots.code[node, pos] = torch.from_numpy(cols).to(slots.code.dtype)
        slots.bias[node] = float("-inf")
        slots.bias[node, pos] = 0.0
        slots.next[node] = self._dead_next(depth)
        slots.next[node, pos] = torch.from_numpy(row[cols]).to(slots.next.dtype)

    # ---- run-time updates (UniSearch §3.4) ---------------------------------------------------
    def add(self, item: int, codes: Sequence[int]) -> None:
        codes = tuple(int(c) for c in codes)
        if len(codes) != self.n_levels:
            raise ValueError(f"item {item}: {len(codes)} codes, trie has {self.n_levels} levels")
        for j, (c, v) in enumerate(zip(codes, self.codebook_sizes)):
            if not 0 <= c < v:
                raise ValueError(f"item {item}: code {c} at level {j} outside codebook of {v}")
        if item in self._paths:
            raise ValueError(f"item {item} is already in the trie")
        last = self.n_levels - 1
        node = 0
        for j in range(last):
            nxt = int(self._children[j][node, codes[j]])
            if nxt < 0:
                nxt = self._new_node(j + 1)
                self._set(j, node, codes[j], nxt)
                self._count[j][node] += 1
            node = nxt
        if self._children[last][node, codes[last]] >= 0:
            other = int(self._children[last][node, codes[last]])
            raise ValueError(f"item {item}: codes {codes} already belong to item {other}")
        self._set(last, node, codes[last], item)
        self._count[last][node] += 1
        self._paths[int(item)] = codes

    def remove(self, item: int) -> None:
        if item not in self._paths:
            raise KeyError(f"item {item} is not in the trie")
        codes = self._paths.pop(item)
        nodes = [0]
        for j in range(self.n_levels - 1):
            nodes.append(int(self._children[j][nodes[-1], codes[j]]))
        for j in range(self.n_levels - 1, -1, -1):
            self._set(j, nodes[j], codes[j], -1)
            self._count[j][nodes[j]] -= 1
            if self._count[j][nodes[j]] > 0 or j == 0:
                break

    def compact(self) -> "DenseTrie":
        """A fresh trie of the live items (drops unreachable nodes, narrows slot tables)."""
        items = np.array(sorted(self._paths), dtype=np.int64)
        codes = np.array([self._paths[i] for i in items], dtype=np.int64).reshape(-1, self.n_levels)
        return DenseTrie(self.codebook_sizes)._fill(codes, items)

    def _new_node(self, depth: int) -> int:
        idx = self._n_nodes[depth]
        table = self._children[depth]
        if idx >= len(table):  # double the depth's tables (the dead rows move: rebuild all)
            grown = np.full((2 * len(table), table.shape[1]), -1, dtype=np.int32)
            grown[: len(table)] = table
            self._children[depth] = grown
            count = np.zeros(len(grown), dtype=np.int32)
            count[: len(self._count[depth])] = self._count[depth]
            self._count[depth] = count
            self._refresh()
        self._n_nodes[depth] += 1
        return idx

    # ---- queries ---------------------------------------------------------------------------
    def items(self) -> np.ndarray:
        """(n,) int64 ids of the live items, ascending."""
        return np.array(sorted(self._paths), dtype=np.int64)

    @property
    def nbytes(self) -> int:
        """Bytes of the child, count and slot arrays (the item -> codes dict not included)."""
        arrays = [*self._children, *self._count] + [t for s in self.slots
                                                    for t in (s.code, s.bias, s.next)]
        return int(sum(a.nbytes for a in arrays))

    # ---- the beam-search interface (onefeed.decoding.beam) ---------------------------------
    def root(self, n: int) -> torch.Tensor:
        """(n,) root nodes, one per user."""
        return torch.zeros(n, dtype=self.slots[0].code.dtype)

    def width(self, level: int) -> int:
        """Slots per node at ``level`` (the K of ``slot_rows``)."""
        return int(self.slots[level].code.shape[1])

    def slot_rows(self, level: int, nodes: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor]:
        """(N,) nodes -> codes (N, K) int64 (None when slot == code) and bias (N, K) 0 / -inf."""
        slots = self.slots[level]
        bias = slots.bias.index_select(0, nodes)
        return (None if slots.dense else slots.code.index_select(0, nodes).long()), bias

    def follow(self, level: int, nodes: torch.Tensor, pos: torch.Tensor
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """(M,) nodes and chosen slot positions -> (codes (M,) int64, next nodes (M,));
        after the last level the next "nodes" are item ids (-1 for padding slots)."""
        slots = self.slots[level]
        slot = pos.add(nodes.to(pos.dtype), alpha=slots.code.shape[1])
        return (slots.code.view(-1).index_select(0, slot).long(),
                slots.next.view(-1).index_select(0, slot))

    @property
    def n_levels(self) -> int:
        return len(self.codebook_sizes)

    def __len__(self) -> int:
        return len(self._paths)

    def __contains__(self, item: int) -> bool:
        return item in self._paths

    def codes_of(self, item: int) -> tuple[int, ...]:
        return self._paths[item]

    def next_mask(self, level: int, nodes: torch.Tensor) -> torch.Tensor:
        """(N,) node ids at depth ``level`` -> (N, V_level) bool: which codes may follow."""
        return self.children[level][nodes] >= 0

    def candidates(self, level: int, nodes: torch.Tensor) -> torch.Tensor:
        """(N,) nodes at depth ``level`` -> (N, K_level) allowed codes, ascending, -1 padded.

        The sparse form of ``next_mask`` (K_level: the most children of any node there).
        """
        slots = self.slots[level]
        big = self.codebook_sizes[level]
        keyed = torch.where(slots.bias[nodes] == 0, slots.code[nodes], big).sort(dim=1).values
        return torch.where(keyed < big, keyed, -1)

    def advance(self, level: int, nodes: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        """(N,) nodes, (N,) codes -> (N,) child nodes (item ids at the last level), -1 if none."""
        return self.children[level][nodes, codes].long()
