"""RQ-VAE under torchrun (2 gloo processes): ranks end identical and match one process."""

import json

import numpy as np

from onefeed.bench import ddp


def test_rqvae_world_size_2_matches_world_size_1(tmp_path):
    one = ddp.launch("rqvae", 1, tmp_path / "w1")
    two = ddp.launch("rqvae", 2, tmp_path / "w2")
    assert two["world_size"] == 2 and two["ranks_agree"]
    diff = ddp.compare(one, two)
    assert diff["points"] == 12 and diff["max_rel_loss_diff"] < 1e-5
    assert abs(one["metric"] - two["metric"]) < 1e-4 * one["metric"]
    assert one["dead_code_resets"] == two["dead_code_resets"]
    codes = [np.load(tmp_path / d / f"codes{r}.npy") for d, r in (("w1", 0), ("w2", 0),
                                                                 ("w2", 1))]
    assert (codes[0] == codes[1]).all() and (codes[1] == codes[2]).all()
    assert json.loads((tmp_path / "w2" / "rank1.json").read_text()) == two["checksum"]
