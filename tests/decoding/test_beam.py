import pytest
import torch

from onefeed.decoding import beam as beam_module
from onefeed.decoding.beam import beam_search
from onefeed.decoding.reference import (DictTrie, exact_topk, greedy_constrained,
                                        reference_beam_search)
from onefeed.decoding.dense_trie import DenseTrie
from onefeed.decoding.trie import Trie

from .toy import ToyStep, toy_catalogue, toy_state

SIZES = (6, 5, 4)  # 60 items: dense slot layouts at depths 0-1, sparse at depth 2
WIDE = (8, 16, 12)  # 60 items leave most codes unused: sparse layouts past the root


def setup(n_items=60, n_users=7, seed=0, sizes=SIZES):
    codes = toy_catalogue(n_items, sizes, seed)
    return codes, ToyStep(sizes, seed=seed), toy_state(n_users, seed=seed + 1)


def test_toy_catalogues_cover_both_slot_layouts():
    dense = [s.dense for s in DenseTrie.from_table(toy_catalogue(60, SIZES), SIZES).slots]
    sparse = [s.dense for s in DenseTrie.from_table(toy_catalogue(60, WIDE), WIDE).slots]
    assert dense == [True, True, False] and sparse == [True, False, False]


@pytest.mark.parametrize("kind", [Trie, DenseTrie, "csr"])  # "csr": Trie, no slot tables
@pytest.mark.parametrize("sizes", [SIZES, WIDE])
def test_fast_beam_equals_reference_beam(sizes, kind, monkeypatch):
    from onefeed.decoding import trie as trie_module

    if kind == "csr":
        monkeypatch.setattr(trie_module, "TABLE_ENTRIES", 0)
        kind = Trie
    codes, step, state = setup(sizes=sizes)
    for beam in (1, 3, 10, 20, 50):
        fast = beam_search(step, state, kind.from_table(codes, sizes), 7, beam)
        ref = reference_beam_search(step, state, DictTrie.from_codes(codes), 7, beam)
        assert torch.equal(fast.items, ref.items)
        assert torch.allclose(fast.scores, ref.scores)
        assert torch.equal(fast.codes, ref.codes)


class TupleStep:
    """ToyStep with a (h, steps taken) state that the step replaces (not passes through)."""

    def __init__(self, sizes):
        self.toy = ToyStep(sizes)

    def __call__(self, state, prefix, level):
        h, taken = state
        assert torch.equal(taken, torch.full_like(taken, level))  # rows stay aligned
        return self.toy(h, prefix, level)[0], (h, taken + 1)


@pytest.mark.parametrize("sizes", [SIZES, WIDE])
def test_blocked_steps_equal_one_step(sizes, monkeypatch):
    codes, step, state = setup(sizes=sizes)
    trie = Trie.from_table(codes, sizes)
    whole = beam_search(step, state, trie, 7, 20)
    tuple_state = (state, torch.zeros(7))
    whole_tuple = beam_search(TupleStep(sizes), tuple_state, trie, 7, 20)
    monkeypatch.setattr(beam_module, "BLOCK_BYTES", 4 * max(sizes) * 3)  # 3-row blocks
    calls = step.calls
    blocked = beam_search(step, state, trie, 7, 20)
    assert step.calls - calls > 3 * len(sizes)  # the step really ran in blocks
    blocked_tuple = beam_search(TupleStep(sizes), tuple_state, trie, 7, 20)
    calls = step.calls  # a custom reorder may not index beams on dim 0: no blocking
    custom = beam_search(step, state, trie, 7, 20, reorder=lambda s, i: s.index_select(0, i))
    assert step.calls - calls == len(sizes) and torch.equal(custom.items, whole.items)
    for a, b in ((whole, blocked), (whole, whole_tuple), (whole, blocked_tuple)):
        assert torch.equal(a.items, b.items) and torch.allclose(a.scores, b.scores, atol=1e-5)


@pytest.mark.parametrize("sizes", [SIZES, WIDE])
def test_wide_beam_equals_exact_enumeration(sizes):
    codes, step, state = setup(n_items=40, sizes=sizes)
    fast = beam_search(step, state, Trie.from_table(codes, sizes), 7, beam=40, k=15)
    items, scores = exact_topk(step, state, codes, 7, k=15)
    assert torch.equal(fast.items, items)
    assert torch.allclose(fast.scores, scores, atol=1e-5)


def test_beam_one_equals_greedy():
    codes, step, state = setup()
    fast = beam_search(step, state, Trie.from_table(codes, SIZES), 7, beam=1)
    items, scores = greedy_constrained(step, state, DictTrie.from_codes(codes), 7)
    assert torch.equal(fast.items[:, 0], items)
    assert torch.allclose(fast.scores[:, 0], scores, atol=1e-5)


def test_decoded_items_exist_distinct_and_match_codes():
    codes, step, state = setup()
    res = beam_search(step, state, Trie.from_table(codes, SIZES), 7, beam=20)
    assert (res.items >= 0).all() and (res.items < len(codes)).all()
    for row in res.items.tolist():
        assert len(set(row)) == len(row)
    assert torch.equal(res.codes, torch.as_tensor(codes)[res.items])
    assert (res.scores[:, :-1] >= res.scores[:, 1:]).all()


@pytest.mark.parametrize("sizes", [SIZES, WIDE])
def test_removed_items_never_returned_added_items_can_be(sizes):
    codes, step, state = setup(n_items=60, sizes=sizes)
    trie = Trie.from_table(codes[:40], sizes)
    before = beam_search(step, state, trie, 7, beam=20)
    top = sorted(set(before.items[:, 0].tolist()))
    for item in top:
        trie.remove(item)
    after = beam_search(step, state, trie, 7, beam=40)
    assert not set(top) & set(after.items.flatten().tolist())
    for item in range(40, 60):
        trie.add(item, codes[item])
    grown = beam_search(step, state, trie, 7, beam=60)
    returned = set(grown.items.flatten().tolist())
    assert returned & set(range(40, 60))
    live = (set(range(60)) - set(top))
    assert returned <= live | {-1}
    exact, _ = exact_topk(step, state, codes[sorted(live)], 7, k=10)
    assert torch.equal(grown.items[:, :10], torch.tensor(sorted(live))[exact])


def test_small_catalogue_pads_with_minus_one():
    codes = toy_catalogue(5, SIZES)
    res = beam_search(ToyStep(SIZES), toy_state(2), Trie.from_table(codes, SIZES), 2, beam=8)
    assert (res.items[:, :5] >= 0).all() and (res.items[:, 5:] == -1).all()
    assert torch.isinf(res.scores[:, 5:]).all()
    assert sorted(res.items[0, :5].tolist()) == list(range(5))


def test_profile_records_mask_share():
    codes, step, state = setup()
    prof: dict[str, float] = {}
    beam_search(step, state, Trie.from_table(codes, SIZES), 7, beam=5, profile=prof)
    assert 0 < prof["mask"] < prof["total"] and 0 < prof["step"] < prof["total"]
