"""Bi-encoder fine-tuning under torchrun (2 gloo processes): the whole batch's in-batch
negatives on every rank, so without dropout the loss curve is one process's within float error."""

import pytest
import torch

from onefeed.bench import ddp
from onefeed.distributed import gather_rows, split_rows


def test_biencoder_world_size_2_matches_world_size_1_without_dropout(tmp_path):
    one = ddp.launch("biencoder_nodropout", 1, tmp_path / "w1")
    two = ddp.launch("biencoder_nodropout", 2, tmp_path / "w2")
    assert two["world_size"] == 2 and two["ranks_agree"]
    diff = ddp.compare(one, two)
    assert diff["points"] == 5  # 40 pairs / batch 8
    assert diff["max_abs_loss_diff"] < 1e-5
    assert one["checksum"]["sum"] == pytest.approx(two["checksum"]["sum"], rel=1e-5)


def test_helpers_in_one_process():
    assert split_rows(5, 2) == [3, 2] and split_rows(1, 3) == [1, 0, 0]
    t = torch.arange(6.0).reshape(3, 2)
    (only,) = gather_rows(t, [3])
    assert torch.equal(only, t)
