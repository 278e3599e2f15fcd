import numpy as np
import pytest
import torch

from onefeed.decoding.reference import DictTrie
from onefeed.decoding.trie import Trie

from .toy import toy_catalogue

CODES = np.array([[0, 0, 0], [0, 0, 1], [0, 2, 0], [1, 1, 1]])


def test_children_by_hand():
    trie = Trie.from_table(CODES, (2, 3, 2))
    root = torch.tensor([0])
    assert trie.next_mask(0, root).tolist() == [[True, True]]
    n0 = trie.advance(0, root, torch.tensor([0]))
    assert trie.next_mask(1, n0).tolist() == [[True, False, True]]
    n00 = trie.advance(1, n0, torch.tensor([0]))
    assert trie.next_mask(2, n00).tolist() == [[True, True]]
    assert trie.advance(2, n00, torch.tensor([1])).tolist() == [1]
    assert trie.advance(1, n0, torch.tensor([1])).tolist() == [-1]


def test_rejects_duplicate_rows():
    with pytest.raises(ValueError, match="share a code tuple"):
        Trie.from_table(np.array([[0, 1], [0, 1]]), (2, 2))


def _check_slots(trie: Trie) -> None:
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


def _all_masks(trie: Trie, dict_trie: DictTrie, codes: np.ndarray) -> None:
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
    _check_slots(trie)


@pytest.mark.parametrize("sizes", [(4, 5, 3), (3, 12, 9)])  # dense / sparse layouts
def test_matches_dict_trie_and_supports_add_remove(sizes):
    codes = toy_catalogue(30, sizes)
    trie, ref = Trie.from_table(codes[:20], sizes), DictTrie.from_codes(codes[:20])
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


def test_add_errors():
    trie = Trie.from_table(CODES, (2, 3, 2))
    with pytest.raises(ValueError, match="already belong to item 0"):
        trie.add(9, [0, 0, 0])
    with pytest.raises(ValueError, match="outside codebook"):
        trie.add(9, [0, 3, 0])
    with pytest.raises(KeyError):
        trie.remove(42)


def test_candidates_widen_when_a_node_gains_children():
    trie = Trie.from_table(np.array([[0, 0], [1, 0]]), (2, 4))
    node = trie.advance(0, torch.tensor([0]), torch.tensor([0]))
    assert trie.candidates(1, node).tolist() == [[0]]
    trie.add(2, [0, 3])
    trie.add(3, [0, 2])
    assert trie.candidates(1, node).tolist() == [[0, 2, 3]]
    other = trie.advance(0, torch.tensor([0]), torch.tensor([1]))
    assert trie.candidates(1, other).tolist() == [[0, -1, -1]]
    trie.remove(3)
    assert trie.candidates(1, node).tolist() == [[0, 3, -1]]
    assert not trie.slots[1].dense
    _check_slots(trie)
    trie.add(3, [0, 2])
    trie.add(4, [0, 1])  # the node now takes every code: the depth switches to dense slots
    assert trie.slots[1].dense and trie.candidates(1, node).tolist() == [[0, 1, 2, 3]]
    _check_slots(trie)


def test_removing_last_child_prunes_prefix():
    trie = Trie.from_table(CODES, (2, 3, 2))
    trie.remove(3)  # only item under code 1 at level 0
    assert trie.next_mask(0, torch.tensor([0])).tolist() == [[True, False]]
    trie.add(3, [1, 1, 1])
    assert trie.next_mask(0, torch.tensor([0])).tolist() == [[True, True]]
