import itertools

import pytest
import torch

from onefeed.decoding.text import prefix_parents, text_beam_search


def toy_model(v: int, seed: int = 0):
    """log p(next | rows, prefix): a fixed table indexed by (row, length, last token)."""
    g = torch.Generator().manual_seed(seed)
    table = torch.log_softmax(torch.randn(3, 5, v + 1, v, generator=g) * 2, dim=-1)

    def next_logprobs(rows: torch.Tensor, seqs: torch.Tensor) -> torch.Tensor:
        t = seqs.shape[1]
        last = seqs[:, -1] + 1 if t else torch.zeros(len(rows), dtype=torch.long)
        return table[rows, t, last]

    return table, next_logprobs


def brute_force(table, row: int, v: int, max_len: int, k: int):
    """Every sequence of 1..max_len words (ending in EOS, or cut at max_len), scored exactly."""
    hyps = []
    for n in range(1, max_len + 1):
        for words in itertools.product(range(1, v), repeat=n):
            score, last = 0.0, 0
            for t, w in enumerate(words):
                score += float(table[row, t, last, w])
                last = w + 1
            if n < max_len:
                score += float(table[row, n, last, 0])  # EOS
            hyps.append((score, words))
    hyps.sort(key=lambda h: -h[0])
    return hyps[:k]


def test_wide_beam_matches_exhaustive_search():
    v, max_len, k = 4, 3, 5
    table, fn = toy_model(v)
    # beam = every live prefix (3 ** 2 = 9 at the last step) -> exact
    tokens, scores = text_beam_search(fn, 3, beam=27, k=k, max_len=max_len)
    for row in range(3):
        exact = brute_force(table, row, v, max_len, k)
        got = [tuple(t for t in seq if t > 0) for seq in tokens[row].tolist()]
        assert got == [w for _, w in exact]
        assert torch.allclose(scores[row], torch.tensor([s for s, _ in exact]), atol=1e-5)


def test_outputs_are_distinct_and_sorted():
    _, fn = toy_model(6, seed=1)
    tokens, scores = text_beam_search(fn, 3, beam=4, k=4, max_len=4)
    for row in range(3):
        seqs = [tuple(s) for s in tokens[row].tolist()]
        assert len(set(seqs)) == 4
        assert (scores[row][:-1] >= scores[row][1:]).all()


def plain_beam_search(table, row: int, v: int, beam: int, k: int, max_len: int,
                      length_penalty: float):
    """The textbook beam search, one row, in Python: expand every beam by every word, keep
    the best ``beam``; a beam ending (EOS) after t >= 1 words is a finished hypothesis."""
    beams, finished = [(0.0, ())], []
    for t in range(max_len):
        grown = []
        for score, words in beams:
            last = words[-1] + 1 if words else 0
            if t > 0:
                finished.append(((score + float(table[row, t, last, 0])) / t ** length_penalty,
                                 words))
            grown += [(score + float(table[row, t, last, w]), words + (w,)) for w in range(1, v)]
        beams = sorted(grown, key=lambda h: -h[0])[:beam]
    finished += [(s / max_len ** length_penalty, w) for s, w in beams]  # open at max_len
    return sorted(finished, key=lambda h: -h[0])[:k]


@pytest.mark.parametrize("length_penalty", [0.0, 1.0])
def test_narrow_beam_matches_the_textbook_beam_search(length_penalty):
    v, max_len, beam, k = 6, 4, 3, 4
    table, fn = toy_model(v, seed=2)
    tokens, scores = text_beam_search(fn, 3, beam=beam, k=k, max_len=max_len,
                                      length_penalty=length_penalty)
    for row in range(3):
        want = plain_beam_search(table, row, v, beam, k, max_len, length_penalty)
        got = [tuple(t for t in seq if t > 0) for seq in tokens[row].tolist()]
        assert got == [w for _, w in want]
        assert torch.allclose(scores[row], torch.tensor([s for s, _ in want]), atol=1e-5)


def test_only_live_beams_reach_the_model():
    """The first step feeds one beam per row (the others are empty copies), later steps at
    most ``beam`` per live row."""
    _, fn = toy_model(6, seed=1)
    sizes = []

    def counting(rows, seqs):
        sizes.append(len(rows))
        return fn(rows, seqs)

    text_beam_search(counting, 3, beam=4, k=2, max_len=4)
    assert sizes[0] == 3 and all(s <= 3 * 4 for s in sizes[1:])
    assert sizes[1] == 3 * 4  # 5 words per beam: every row fills its beam at once


def test_prefix_parents_finds_each_prefix_parent():
    prev_rows = torch.tensor([0, 0, 1])
    prev = torch.tensor([[3, 1], [3, 2], [3, 1]])
    rows = torch.tensor([1, 0, 0, 0])
    cur = torch.tensor([[3, 1, 5], [3, 2, 4], [3, 1, 4], [3, 2, 1]])
    assert prefix_parents(prev_rows, prev, rows, cur).tolist() == [2, 1, 0, 1]
    assert prefix_parents(None, prev, rows, cur) is None  # first call
    assert prefix_parents(prev_rows, prev, rows, cur[:, :2]) is None  # not one token longer
    orphan = cur.clone()
    orphan[0, 1] = 2  # row 1 never had [3, 2]
    assert prefix_parents(prev_rows, prev, rows, orphan) is None


def test_prefix_parents_never_trusts_a_hash_collision(monkeypatch):
    """With a degenerate hash every prefix of a row collides: the token check must then give
    the full pass (None) rather than a wrong parent."""
    import onefeed.decoding.text as text

    monkeypatch.setattr(text, "_HASH_BASE", 0)  # hash = row id only
    prev_rows, prev = torch.tensor([0, 0]), torch.tensor([[3, 1], [3, 2]])
    got = text.prefix_parents(prev_rows, prev, torch.tensor([0, 0]),
                              torch.tensor([[3, 2, 5], [3, 1, 4]]))
    assert got is None


@pytest.mark.parametrize("beam,k,length_penalty", [(1, 1, 0.0), (3, 4, 0.0), (4, 8, 0.0),
                                                   (3, 4, 1.0), (6, 2, 0.5)])
def test_equals_the_reference_beam_search(beam, k, length_penalty):
    """Live-beam feeding, the wide top-k and beam pruning change the work, not the outputs."""
    from onefeed.decoding.reference import reference_text_beam_search

    _, fn = toy_model(7, seed=3)
    got = text_beam_search(fn, 3, beam, k, 4, length_penalty)
    want = reference_text_beam_search(fn, 3, beam, k, 4, length_penalty)
    assert torch.equal(got[0], want[0])
    torch.testing.assert_close(got[1], want[1])
