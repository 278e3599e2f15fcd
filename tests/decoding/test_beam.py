import numpy as np
import torch

from onefeed.decoding.beam import beam_search
from onefeed.decoding.reference import (DictTrie, exact_topk, greedy_constrained,
                                        reference_beam_search)
from onefeed.decoding.trie import Trie

from .toy import ToyStep, toy_catalogue, toy_state

SIZES = (6, 5, 4)


def setup(n_items=60, n_users=7, seed=0):
    codes = toy_catalogue(n_items, SIZES, seed)
    return codes, ToyStep(SIZES, seed=seed), toy_state(n_users, seed=seed + 1)


def test_fast_beam_equals_reference_beam():
    codes, step, state = setup()
    for beam in (1, 3, 10, 20):
        fast = beam_search(step, state, Trie.from_table(codes, SIZES), 7, beam)
        ref = reference_beam_search(step, state, DictTrie.from_codes(codes), 7, beam)
        assert torch.equal(fast.items, ref.items)
        assert torch.allclose(fast.scores, ref.scores)
        assert torch.equal(fast.codes, ref.codes)


def test_wide_beam_equals_exact_enumeration():
    codes, step, state = setup(n_items=40)
    fast = beam_search(step, state, Trie.from_table(codes, SIZES), 7, beam=40, k=15)
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


def test_removed_items_never_returned_added_items_can_be():
    codes, step, state = setup(n_items=60)
    trie = Trie.from_table(codes[:40], SIZES)
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
    assert 0 < prof["mask"] < prof["total"]
