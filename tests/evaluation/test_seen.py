"""The seen-item rule over any ``Decode`` callable, against a plain loop on hand-made lists."""

import numpy as np
import pytest

from onefeed.evaluation.seen import check_seen_rule, choose_seen, decode_unseen

# each case's full ranking (best first) and scores; a "model" that returns the first k of it
RANKED = np.array([[3, 1, 4, 0, 5, 2],
                   [0, 1, 2, 3, 4, 5],
                   [5, 4, 3, 2, 1, 0]])
SCORES = -np.arange(6, dtype=np.float32)[None, :].repeat(3, 0) - np.arange(3)[:, None]
HISTORY = np.array([[-1, 3, 4],    # -1: padding / a query event
                    [-1, -1, -1],
                    [5, 4, 3]])


def _decoder(calls, cases=slice(None)):
    """Decode over ``RANKED[cases]`` (the rows it is given index those cases)."""
    def decode(rows, beam, k):
        calls.append((rows.tolist(), beam, k))
        return RANKED[cases][rows, :k], SCORES[cases][rows, :k]
    return decode


def _unseen_loop(rows, beam, k):
    """The plain version: decode beam + H items, walk them, skip history items, pad."""
    items, scores = [], []
    wide = beam + HISTORY.shape[1]
    for r in rows:
        kept = [(i, s) for i, s in zip(RANKED[r, :wide], SCORES[r, :wide])
                if i not in set(HISTORY[r])][:k]
        kept += [(-1, -np.inf)] * (k - len(kept))
        items.append([i for i, _ in kept])
        scores.append([s for _, s in kept])
    return items, scores


def test_decode_unseen_matches_a_plain_loop_and_widens_the_beam():
    calls = []
    items, scores = decode_unseen(_decoder(calls), np.arange(3), HISTORY, 2, 3)
    loop_items, loop_scores = _unseen_loop(range(3), 2, 3)
    assert items.tolist() == loop_items == [[1, 0, 5], [0, 1, 2], [2, 1, -1]]
    assert scores.tolist() == loop_scores
    assert calls == [([0, 1, 2], 5, 5)]  # beam 2 + history length 3, all of it kept
    items, _ = decode_unseen(_decoder([]), np.array([2]), HISTORY[[2]], 0, 4)
    assert items.tolist() == [[-1, -1, -1, -1]]  # 3 decoded, all seen: nothing left


def test_choose_seen_scores_both_rules_by_hand():
    # target ranks kept / excluded: case 0 (1, 0), case 1 (0, 0), case 2 (3, 0)
    targets = np.array([1, 0, 2])
    rule = choose_seen(_decoder([]), HISTORY, targets, beam=6)
    keep = (1 / np.log2(3) + 1 + 1 / np.log2(5)) / 3
    excl = (1 + 1 + 1) / 3
    assert rule["seen_valid_ndcg@10"] == {"keep": pytest.approx(keep),
                                          "exclude": pytest.approx(excl)}
    assert rule["seen"] == "exclude" and rule["seen_cases"] == 3
    # a seeded sample of the cases, the same one every time
    calls = []
    sub = choose_seen(_decoder(calls), HISTORY, targets, beam=6, max_cases=2, seed=1)
    assert sub["seen_cases"] == 2 and calls[0][0] == calls[1][0] == sorted(calls[0][0])
    again = []
    choose_seen(_decoder(again), HISTORY, targets, beam=6, max_cases=2, seed=1)
    assert again == calls


def test_seen_targets_and_ties_keep_and_unknown_rules_are_named():
    rule = choose_seen(_decoder([], [2]), HISTORY[[2]], np.array([3]), beam=6)
    assert rule["seen_valid_ndcg@10"] == {"keep": pytest.approx(0.5), "exclude": 0.0}
    assert rule["seen"] == "keep"  # the target was a history item
    rule = choose_seen(_decoder([], [1]), HISTORY[[1]], np.array([0]), beam=6)
    assert rule["seen"] == "keep"  # nothing seen: both rules score 1.0, keep wins the tie
    assert check_seen_rule("auto", "x") == "auto"
    with pytest.raises(ValueError, match="x: params.seen 'never'"):
        check_seen_rule("never", "x")
