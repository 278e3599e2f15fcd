import numpy as np
import polars as pl
import pytest

from onefeed.sid.diagnostics import diagnose, leaf_coherence, plot_usage
from onefeed.sid.table import SidTable


def test_leaf_coherence_hand_case():
    # codes: {0,1,2} share code 0, {3,4} share code 1; leaves: a a b | b b
    first = np.array([0, 0, 0, 1, 1])
    leaf = np.array([0, 0, 1, 1, 1])
    c = leaf_coherence(first, leaf)
    # same-code pairs: 3 + 1 = 4, of which same leaf: (0,1) and (3,4) = 2 -> 0.5
    # random pairs: 10, same leaf: 1 + 3 = 4 -> 0.4
    assert c["p_same_code"] == pytest.approx(0.5)
    assert c["p_random"] == pytest.approx(0.4)
    assert c["ratio"] == pytest.approx(1.25)


def test_diagnose_and_plot(tmp_path):
    codes = np.array([[0, 0, 0], [0, 1, 0], [1, 0, 0], [1, 0, 1]])
    table = SidTable(codes, (2, 2, 2), {"disambiguation_level": True})
    items = pl.DataFrame({"item": [0, 1, 2, 3], "title": ["a", "b", "c", "d"],
                          "categories": [["x"], ["x"], ["y"], ["y"]]})
    report = diagnose(table, items)
    assert report["collision_rate"] == pytest.approx(25.0)
    assert report["coherence"]["same_category_path"]["ratio"] == pytest.approx(3.0)
    assert report["examples"]["prefix_1"][0]["n_items"] == 2
    assert plot_usage(table, tmp_path / "u.png").stat().st_size > 0


def test_behaviour_agreement_counts_co_clicked_and_next_item_pairs_sharing_a_prefix():
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from conftest import make_tiny_dataset
    from onefeed.sid.diagnostics import behaviour_agreement, behaviour_pairs

    # train [0, 1, 2] + valid 3 (user 0); train [0, 2, 4] + valid 6 (user 1)
    ds = make_tiny_dataset([[0, 1, 2, 3, 9], [0, 2, 4, 6, 9]], n_items=10)
    codes = np.array([[i % 2, i // 4] for i in range(10)])  # level 0 = parity
    out = behaviour_agreement(codes, behaviour_pairs(ds))
    # valid next pairs: (2, 3) differ at level 0; (4, 6) share parity and i // 4 == 1
    assert out["valid_next"] == [0.5, 0.5]
    # co-click graph (window 3, weight 1/d): user 0: 0-1 (1), 1-2 (1), 0-2 (.5); user 1: 0-2 (1),
    # 2-4 (1), 0-4 (.5). Same parity: 0-2 (.5 + 1), 2-4 (1), 0-4 (.5) = 3 of 5; also same i // 4:
    # 0-2 (1.5) only.
    assert out["train_graph"] == [0.6, 0.3]
