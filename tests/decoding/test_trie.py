import numpy as np
import pytest
import torch

from onefeed.decoding.dense_trie import DenseTrie
from onefeed.decoding.reference import DictTrie
from onefeed.decoding.trie import Trie

from .toy import toy_catalogue

CODES = np.array([[0, 0, 0], [0, 0, 1], [0, 2, 0], [1, 1, 1]])
KINDS = pytest.mark.parametrize("kind", [Trie, DenseTrie])


@KINDS
def test_children_by_hand(kind):
    trie = kind.from_table(CODES, (2, 3, 2))
    root = torch.tensor([0])
    assert trie.next_mask(0, root).tolist() == [[True, True]]
    n0 = trie.advance(0, root, torch.tensor([0]))
    assert trie.next_mask(1, n0).tolist() == [[True, False, True]]
    n00 = trie.advance(1, n0, torch.tensor([0]))
    assert trie.next_mask(2, n00).tolist() == [[True, True]]
    assert trie.advance(2, n00, torch.tensor([1])).tolist() == [1]
    assert trie.advance(1, n0, torch.tensor([1])).tolist() == [-1]


@KINDS
def test_rejects_duplicate_rows(kind):
    with pytest.raises(ValueError, match="share a code tuple"):
        kind.from_table(np.array([[0, 1], [0, 1]]), (2, 2))


def _check_slots(trie: DenseTrie) -> None:
    """Every node's slot rows (codes, 0/-inf bias, next node) agree with its child table row,
    padding and the dead row lead to the next depth's dead row (-1 after the last depth)."""
    for j, slots in enumerate(trie.slots):
        table = trie.children[j]
        dead_next = trie.slots[j + 1].dead if j < trie.n_levels - 1 else -1
        assert slots.dead == len(table)
        for node in range(len(table) + 1):
            row = table[node] if node < len(table) else torch.full_like(table[0], -1)
            allowed = (row >= 0).nonzero().flatten()
            open_ = slots.bias[node] == 0
            assert torch.equal(slots.code[node][open_].long(), allowed)
            assert torch.equal(slots.next[node][open_].long(), row[allowed].long())
            assert (slots.next[node][~open_] == dead_next).all()
            assert torch.isinf(slots.bias[node][~open_]).all()
            if slots.dense:
                assert torch.equal(slots.code[node].long(), torch.arange(len(row)))
            else:
                assert open_[:len(allowed)].all()  # allowed codes first, ascending


def _all_masks(trie: Trie | DenseTrie, dict_trie: DictTrie, codes: np.ndarray) -> None:
    """Fast masks == dict-trie allowed() for every prefix of every catalogue row."""
    for row in codes:
        node = torch.tensor([0])
        for level in range(len(row)):
            fast = trie.next_mask(level, node)[0].nonzero().flatten().tolist()
            assert fast == sorted(dict_trie.allowed(row[:level].tolist()))
            kids = trie.candidates(level, node)[0].tolist()
            assert [c for c in kids if c >= 0] == fast and kids[len(fast):] == [-1] * (
                len(kids) - len(fast))
            node = trie.advance(level, node, torch.tensor([int(row[level])]))
        assert int(node) == dict_trie.item(row.tolist())
    if isinstance(trie, DenseTrie):
        _check_slots(trie)


@KINDS
@pytest.mark.parametrize("sizes", [(4, 5, 3), (3, 12, 9)])  # dense / sparse layouts
def test_matches_dict_trie_and_supports_add_remove(sizes, kind):
    codes = toy_catalogue(30, sizes)
    trie, ref = kind.from_table(codes[:20], sizes), DictTrie.from_codes(codes[:20])
    _all_masks(trie, ref, codes[:20])
    for item in range(20, 30):  # grow at run time (forces table growth)
        trie.add(item, codes[item])
        ref.add(item, codes[item].tolist())
    for item in (0, 5, 25):
        trie.remove(item)
        ref.remove(codes[item].tolist())
    live = [i for i in range(30) if i not in (0, 5, 25)]
    assert len(trie) == 27 and 5 not in trie and 25 not in trie
    _all_masks(trie, ref, codes[live])
    compact = trie.compact()
    _all_masks(compact, ref, codes[live])


@KINDS
def test_add_errors(kind):
    trie = kind.from_table(CODES, (2, 3, 2))
    with pytest.raises(ValueError, match="already belong to item 0"):
        trie.add(9, [0, 0, 0])
    with pytest.raises(ValueError, match="outside codebook"):
        trie.add(9, [0, 3, 0])
    with pytest.raises(ValueError, match="item 0 is already in the trie"):
        trie.add(0, [1, 0, 0])
    with pytest.raises(ValueError, match="2 codes, trie has 3 levels"):
        trie.add(9, [1, 0])
    with pytest.raises(KeyError, match="item 42 is not in the trie"):
        trie.remove(42)


@KINDS
def test_candidates_widen_when_a_node_gains_children(kind):
    trie = kind.from_table(np.array([[0, 0], [1, 0]]), (2, 4))
    node = trie.advance(0, torch.tensor([0]), torch.tensor([0]))
    assert trie.candidates(1, node).tolist() == [[0]]
    trie.add(2, [0, 3])
    trie.add(3, [0, 2])
    assert trie.candidates(1, node).tolist() == [[0, 2, 3]]
    other = trie.advance(0, torch.tensor([0]), torch.tensor([1]))
    assert trie.candidates(1, other).tolist() == [[0, -1, -1]]
    trie.remove(3)
    assert trie.candidates(1, node).tolist() == [[0, 3, -1]]
    if kind is DenseTrie:
        assert not trie.slots[1].dense
        _check_slots(trie)
    trie.add(3, [0, 2])
    trie.add(4, [0, 1])  # the node now takes every code (DenseTrie: dense slots)
    assert trie.candidates(1, node).tolist() == [[0, 1, 2, 3]]
    if kind is DenseTrie:
        assert trie.slots[1].dense
        _check_slots(trie)


@KINDS
def test_removing_last_child_prunes_prefix(kind):
    trie = kind.from_table(CODES, (2, 3, 2))
    trie.remove(3)  # only item under code 1 at level 0
    assert trie.next_mask(0, torch.tensor([0])).tolist() == [[True, False]]
    trie.add(3, [1, 1, 1])
    assert trie.next_mask(0, torch.tensor([0])).tolist() == [[True, True]]


# ---- the compact (CSR) trie -----------------------------------------------------------------------
def test_csr_layout_by_hand():
    trie = Trie.from_table(CODES, (2, 3, 2))
    # depth 0: root -> codes 0, 1; depth 1: node 0 (prefix 0) -> 0, 2; node 1 (prefix 1) -> 1
    # (each depth ends with the dead node, which has no edges)
    assert [o.tolist() for o in trie._offsets] == [[0, 2, 2], [0, 2, 3, 3], [0, 2, 3, 4, 4]]
    assert [c[:-1].tolist() for c in trie._codes] == [[0, 1], [0, 2, 1], [0, 1, 0, 1]]
    assert [v[:-1].tolist() for v in trie._live] == [[3, 1], [2, 1, 1], [1, 1, 1, 1]]
    assert trie._items[:-1].tolist() == [0, 1, 2, 3] and trie._width == [2, 2, 2]
    assert trie._tables[0].code is None and trie._tables[1].code is not None  # dense, sparse
    code, bias = trie.slot_rows(1, torch.tensor([0, 1, 2]))  # 2: the dead node of depth 1
    assert code[0].tolist() == [0, 2] and code[1, 0] == 1
    assert (bias == 0).tolist() == [[True, True], [True, False], [False, False]]
    codes, nxt = trie.follow(2, torch.tensor([1, 1]), torch.tensor([0, 1]))
    assert codes[0] == 0 and nxt.tolist() == [2, -1]  # prefix (0, 2) has one leaf: item 2


def test_items_registry_and_compact():
    trie = Trie.from_codes(CODES, items=np.array([10, 11, 12, 13]))
    assert trie.items().tolist() == [10, 11, 12, 13] and trie.codes_of(12) == (0, 2, 0)
    trie.remove(12)
    trie.add(20, [0, 2, 0])  # reopens the base edges item 12 left closed
    trie.add(21, [1, 0, 1])  # new edges: the overlay
    assert 12 not in trie and 20 in trie and 21 in trie and len(trie) == 5
    assert trie.items().tolist() == [10, 11, 13, 20, 21] and trie.codes_of(21) == (1, 0, 1)
    with pytest.raises(KeyError):
        trie.codes_of(12)
    fresh = trie.compact()
    assert fresh._overlay[1].n_rows == 0 and fresh.items().tolist() == trie.items().tolist()
    for level, nodes in ((0, [0]), (1, [0, 1])):
        assert torch.equal(fresh.next_mask(level, torch.tensor(nodes)),
                           trie.next_mask(level, torch.tensor(nodes)))
    trie.remove(21)
    trie.add(21, [1, 0, 1])  # re-add: the overlay slots are reused, not duplicated
    assert trie._overlay[1].deg[0] == 1 and len(trie) == 5


@pytest.mark.parametrize("entries", [None, 0])  # materialised slot tables / CSR slices only
@pytest.mark.parametrize("sizes", [(4, 5, 3), (3, 12, 9)])
def test_random_updates_match_dict_trie_and_dense_trie(sizes, entries, monkeypatch):
    """Interleaved adds (under base prefixes and new ones), removals and re-adds: masks equal
    the dict trie's, and beam search equals DenseTrie's and the reference decoder's."""
    from onefeed.decoding import trie as trie_module
    from onefeed.decoding.beam import beam_search
    from onefeed.decoding.reference import reference_beam_search

    from .toy import ToyStep, toy_state

    if entries is not None:
        monkeypatch.setattr(trie_module, "TABLE_ENTRIES", entries)
    codes = toy_catalogue(int(np.prod(sizes)) // 2, sizes, seed=3)
    n_base = len(codes) // 2
    trie, dense = Trie.from_table(codes[:n_base], sizes), DenseTrie.from_table(codes[:n_base],
                                                                                sizes)
    rng = np.random.default_rng(0)
    live, spare, next_id = {i: codes[i] for i in range(n_base)}, list(codes[n_base:]), n_base
    for _ in range(60):
        if spare and (rng.random() < 0.55 or len(live) < 3):
            row = spare.pop(int(rng.integers(len(spare))))
            for t in (trie, dense):
                t.add(next_id, row)
            live[next_id], next_id = row, next_id + 1
        else:
            item = int(rng.choice(sorted(live)))
            for t in (trie, dense):
                t.remove(item)
            spare.append(live.pop(item))
    ids = np.array(sorted(live))
    rows = np.stack([live[i] for i in ids])
    assert all((t is None) == (entries == 0) for t in trie._tables)
    assert any(o.n_rows for o in trie._overlay)  # the overlay was exercised
    ref = DictTrie.from_codes(rows, ids.tolist())
    _all_masks(trie, ref, rows)
    assert trie.items().tolist() == ids.tolist() == dense.items().tolist()
    step, state = ToyStep(sizes, seed=1), toy_state(5, seed=2)
    for beam in (1, 7, 30):
        ours = beam_search(step, state, trie, 5, beam)
        other = beam_search(step, state, dense, 5, beam)
        want = reference_beam_search(step, state, ref, 5, beam)
        assert torch.equal(ours.items, want.items) and torch.equal(other.items, want.items)
        assert torch.allclose(ours.scores, want.scores)


def test_compact_trie_is_smaller_than_dense_tables():
    """A wide disambiguation level (one prefix with 500 items) costs the dense tables
    nodes x 500 entries at the last depth; the CSR trie stays O(items)."""
    rng = np.random.default_rng(0)
    head = np.unique(rng.integers(0, 64, size=(6000, 2)), axis=0)
    codes = np.concatenate([np.c_[head, np.zeros(len(head), int)],
                            np.c_[np.zeros((499, 2), int), np.arange(1, 500)]])
    codes = np.unique(codes, axis=0)
    sizes = (64, 64, 500)
    compact, dense = Trie.from_table(codes, sizes), DenseTrie.from_table(codes, sizes)
    assert compact.nbytes < 200 * len(codes)  # well under 200 bytes per item
    assert dense.nbytes > 20 * compact.nbytes
