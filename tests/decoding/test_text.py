import itertools

import torch

from onefeed.decoding.text import text_beam_search


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
