import json
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from scipy import sparse

from onefeed.data.schemas import DataError
from onefeed.sid import build as build_mod
from onefeed.sid.build import build, reencode
from onefeed.sid.calibrate import (CalibrationConfig, Calibrator, behaviour_graph,
                                   calibrate_level, prefix_agreement, prefix_keys)
from onefeed.sid.rq_kmeans import RQKMeans, RQKMeansConfig
from onefeed.sid.table import SidTable

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_build import cfg, dataset  # noqa: E402


def events(rows):
    return pl.DataFrame(rows, schema=["user", "item", "position", "behaviour", "query"],
                        orient="row")


def test_graph_weights_co_clicks_by_distance_and_co_searches_by_query_size():
    ev = events([(0, 0, 0, "rec_click", None), (0, 1, 1, "rec_click", None),
                 (0, 2, 2, "rec_click", None),
                 (1, 3, 0, "search_click", "Lip Gloss "), (2, 4, 0, "search_click", "lip gloss"),
                 (3, 5, 0, "search_click", "mascara"), (3, 6, 1, "search_click", "mascara"),
                 (4, 7, 0, "search_click", "mascara")])
    g = behaviour_graph(ev, 8, CalibrationConfig(window=2)).toarray()
    assert np.allclose(g, g.T) and np.all(np.diag(g) == 0)
    assert g[0, 1] == g[1, 2] == 1.0 and g[0, 2] == 0.5  # window 2: distance 2 weighs 1/2
    assert g[3, 4] == pytest.approx(1.0)  # one query (case/space-normalised) over 2 items
    # "mascara": 3 items -> 1/2 each pair; items 5, 6 are also co-clicked (user 3, distance 1)
    assert g[5, 7] == pytest.approx(0.5) and g[5, 6] == pytest.approx(1.5)
    assert g[2, 3] == 0  # different users, different queries
    no_search = behaviour_graph(ev, 8, CalibrationConfig(window=1, co_search=False)).toarray()
    assert no_search[3, 4] == 0 and no_search[0, 2] == 0
    generic = behaviour_graph(ev, 8, CalibrationConfig(window=1, max_query_items=2)).toarray()
    assert generic[5, 7] == 0 and generic[3, 4] == pytest.approx(1.0)  # 3-item query dropped


def toy_level():
    # 1-D residuals, centroids at 0 and 1; item 4 (0.45) is nearest code 0 but co-clicked with
    # items 2 and 3 (code 1). Gaps |1 - 2x| = 1, .8, .8, 1, .1 -> margin .8; moving item 4
    # costs (0.55^2 - 0.45^2) / 0.8 = 0.125 and gains weight * 2 / 3 (2 votes / (2 + 1)).
    residual = np.array([[0.0], [0.1], [0.9], [1.0], [0.45]], dtype=np.float32)
    centroids = np.array([[0.0], [1.0]], dtype=np.float32)
    code = np.array([0, 0, 1, 1, 0])
    g = sparse.coo_matrix(([1.0] * 6, ([4, 2, 4, 3, 2, 3], [2, 4, 3, 4, 3, 2])),
                          shape=(5, 5)).tocsr()
    return residual, centroids, code, g


@pytest.mark.parametrize("weight,moves", [(0.0, False), (0.18, False), (0.2, True), (5.0, True)])
def test_an_item_moves_to_its_neighbours_code_when_the_gain_beats_the_content_cost(weight, moves):
    residual, centroids, code, g = toy_level()
    new, c, info = calibrate_level(residual, centroids, code, np.zeros(5, np.int64), g,
                                   CalibrationConfig(weight=weight), seed=0)
    assert info["margin"] == pytest.approx(0.8)
    assert new.tolist() == ([0, 0, 1, 1, 1] if moves else [0, 0, 1, 1, 0])
    if moves:  # centroids re-estimated as members' means
        assert c[:, 0] == pytest.approx([0.05, (0.9 + 1.0 + 0.45) / 3])
    else:
        assert c[:, 0] == pytest.approx([(0.0 + 0.1 + 0.45) / 3, 0.95])


def test_neighbours_with_another_prefix_do_not_vote():
    residual, centroids, code, g = toy_level()
    prefix = np.array([0, 0, 1, 1, 0])  # items 2, 3 sit under another earlier-level code
    new, _, info = calibrate_level(residual, centroids, code, prefix, g,
                                   CalibrationConfig(weight=5.0), seed=0)
    assert new.tolist() == code.tolist() and info["moved"] == 0


def test_prefix_agreement_and_keys():
    codes = np.array([[0, 1], [0, 2], [1, 1]])
    g = sparse.csr_matrix(np.array([[0, 1, 3], [1, 0, 0], [3, 0, 0]], dtype=float))
    assert prefix_agreement(codes, g, 1) == pytest.approx(2 / 8)
    assert prefix_agreement(codes, g, 2) == 0.0
    assert prefix_keys(np.zeros((3, 0), np.int64)).tolist() == [0, 0, 0]
    keys = prefix_keys(codes[:, :1])
    assert keys[0] == keys[1] != keys[2]


def test_refined_codes_are_kept_with_the_codebooks(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 3)).astype(np.float32)
    g = sparse.random(40, 40, density=0.2, random_state=0, format="csr")
    g = g + g.T
    cal = Calibrator(g, CalibrationConfig(weight=20.0, levels=1), seed=0)
    q = RQKMeans.fit(x, RQKMeansConfig(levels=2, codebook_size=4, niter=5, balanced=True), cal)
    assert q.assigned.shape == (40, 2) and cal.log[0]["moved"] > 0 and len(cal.log) == 1
    assert not np.array_equal(q.assigned, q.encode_balanced(x))
    q.save(tmp_path / "q.safetensors")
    back = RQKMeans.load(tmp_path / "q.safetensors")
    assert np.array_equal(back.assigned, q.assigned)
    cold = rng.normal(size=(2, 3)).astype(np.float32)
    both = np.concatenate([x, cold])
    mask = np.r_[np.ones(40, bool), np.zeros(2, bool)]
    codes = back.encode_split(both, mask)
    assert np.array_equal(codes[:40], q.assigned) and np.array_equal(codes[40:], q.encode(cold))
    with pytest.raises(ValueError, match="fit rows"):
        back.encode_split(x[:30], np.ones(30, bool))


def test_calibrated_build_records_the_graph_and_reencodes(tmp_path):
    ds = dataset()
    plain = build(ds, cfg("strategy=collaborative"), tmp_path / "plain", progress=False)
    table = build(ds, cfg("strategy=collaborative", "calibration.weight=50",
                          "calibration.levels=1"), tmp_path / "cal", progress=False)
    assert table.is_unique()
    m = json.loads((tmp_path / "cal" / "manifest.json").read_text())
    graph = m["quantiser"]["calibration_graph"]
    assert m["leakage_check"]["co_click_graph"] == "pass" and graph["co_click_graph"] == "pass"
    assert graph["n_events"] == 21  # the train item events, no valid/test ones
    assert m["quantiser"]["main"]["calibration"][0]["level"] == 0
    g = behaviour_graph(build_mod.graph_events(ds), ds.n_items, CalibrationConfig())
    assert (prefix_agreement(table.codes, g, 1) >= prefix_agreement(plain.codes, g, 1))
    assert np.array_equal(reencode(tmp_path / "cal")["sid"], table.codes[:, :-1])
    assert np.array_equal(SidTable.load(tmp_path / "cal").codes, table.codes)


def test_a_graph_built_from_held_out_events_fails_the_leakage_check(tmp_path, monkeypatch):
    from onefeed.data.views import item_events

    monkeypatch.setattr(build_mod, "graph_events", item_events)  # every split: a leak
    with pytest.raises(DataError, match="behaviour graph"):
        build(dataset(), cfg("strategy=collaborative", "calibration.weight=1"), tmp_path / "x",
              progress=False)
    assert not (tmp_path / "x").exists()


def test_calibration_is_refused_where_it_does_not_apply(tmp_path):
    with pytest.raises(ValueError, match="calibration applies to one-part rq_kmeans"):
        build(dataset(), cfg("strategy=collaborative", "quantizer=rqvae",
                             "calibration.weight=1"), tmp_path / "x", progress=False)
