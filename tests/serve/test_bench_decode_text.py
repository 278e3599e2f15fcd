"""``onefeed bench decode-text`` and the cached text decoding it measures, on the tiny joint run
(the fixture lives with the service tests)."""

import json

import torch
from typer.testing import CliRunner

from onefeed.cli import app
from onefeed.decoding.reference import reference_text_beam_search
from onefeed.decoding.text import text_beam_search
from onefeed.evaluation.joint import TextSteps, full_prefix_logits


def test_cached_decoding_returns_the_reference_queries(joint_pred):
    jp, model = joint_pred.joint, joint_pred.joint.model
    users = [str(u) for u in joint_pred.ds.users["user_id"].to_list()]
    mini, idx = joint_pred._joint_rows(users, "all")
    with torch.inference_mode():
        cond, cont = jp._states(idx, "NSQP", mini, None), jp._continuation_pieces()
        for beam, k in [(1, 1), (5, 8), (20, 20)]:
            got = text_beam_search(TextSteps(model, cond, cont), len(users), beam, k, 6)
            want = reference_text_beam_search(full_prefix_logits(model, cond, cont),
                                              len(users), beam, k, 6)
            assert torch.equal(got[0], want[0])
            torch.testing.assert_close(got[1], want[1], atol=1e-4, rtol=1e-5)


def test_bench_decode_text_writes_both_sides(runs, tmp_path):
    out = tmp_path / "dt"
    result = CliRunner().invoke(app, ["bench", "decode-text", "--run", str(runs["joint"]),
                                      "--users", "6", "--batches", "1,4", "--beam", "5",
                                      "--k", "3", "--out", str(out)])
    assert result.exit_code == 0, result.output
    doc = json.loads(out.with_suffix(".json").read_text())
    assert [r["batch"] for r in doc["throughput"]] == [1, 4]
    for row in doc["throughput"]:
        assert row["identical_tokens"] == 1.0
        assert row["ours"]["beam_rows_fed"] < row["reference"]["beam_rows_fed"]
        assert row["speedup"] == row["reference"]["seconds"] / row["ours"]["seconds"]
    assert "| 4 | 6 |" in out.with_suffix(".md").read_text()
    assert doc["hypotheses"] == 12  # max(beam, 4 k) as /suggest keeps


def test_bench_decode_text_refuses_a_rec_only_run(runs, tmp_path):
    result = CliRunner().invoke(app, ["bench", "decode-text", "--run", str(runs["rec"]),
                                      "--out", str(tmp_path / "x")])
    assert result.exit_code != 0
    assert "not a joint run" in result.output
