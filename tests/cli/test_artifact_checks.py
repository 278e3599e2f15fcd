"""Issue 19 end to end: a dataset re-prepared (``--force``) under a trained run makes every command
that pairs the run's SID table with the data stop with a clear message, not wrong titles."""

import json
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from onefeed.cli import app
from onefeed.data.schemas import dataset_fingerprint
from onefeed.sid.table import SidTable

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tasks"))
from joint_toy import make_world, sid_dir  # noqa: E402

SMALL = ["model.d_model=16", "model.n_heads=2", "model.d_ff=32", "model.max_len=8",
         "train.batch_size=8", "train.eval_every=1"]
EXTRA = {"joint": ["train.max_steps=2", "train.eval_beam=5", "tasks.desc_batch=8"],
         "gen": ["train.epochs=1", "train.eval_beam=20"]}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("issue19")
    data = make_world(n_users=8).save(tmp / "data")
    toy = SidTable.load(sid_dir(tmp))  # the toy codes, recording the dataset they belong to
    SidTable(toy.codes, toy.codebook_sizes,
             dict(toy.meta, data_sha256=dataset_fingerprint(data))).save(tmp / "sid-fp")
    runner = CliRunner()
    for cmd in ("joint", "gen"):
        args = (["joint", "train"] if cmd == "joint" else ["train"]) + [
            "--data", str(data), "--sid", str(tmp / "sid-fp"), "--out", str(tmp / cmd)]
        for s in SMALL + EXTRA[cmd]:
            args += ["--set", s]
        res = runner.invoke(app, args)
        assert res.exit_code == 0, res.output
    # a different world with the same 12 items replaces the dataset (prepare --force)
    make_world(n_users=8, seed=1).save(data, replace=True)
    return tmp


def test_joint_commands_refuse_the_replaced_dataset(runs):
    res = CliRunner(env={"COLUMNS": "300"}).invoke(app, ["joint", "suggest", "--run",
                                                         str(runs / "joint"), "--user", "u0"])
    assert res.exit_code != 0 and "the data was re-prepared" in res.output
    assert "Traceback" not in res.output


def test_recommend_and_evaluate_refuse_the_replaced_dataset(runs):
    r = CliRunner(env={"COLUMNS": "300"})
    for args in (["recommend", "--run", str(runs / "gen"), "--user", "u0"],
                 ["evaluate", "--run", str(runs / "gen")]):
        res = r.invoke(app, args)
        assert res.exit_code != 0 and "the data was re-prepared" in res.output, res.output
    manifest = json.loads((runs / "gen" / "manifest.json").read_text())
    assert manifest["sid"] == str(runs / "sid-fp")


def test_a_run_refuses_rebuilt_sids_and_the_sid_check_still_guards_the_pair(runs, tmp_path):
    import shutil

    from onefeed.artifacts import ArtifactError
    from onefeed.checkpoint import check_trained_on
    from onefeed.sid.table import check_dataset

    manifest = json.loads((runs / "gen" / "manifest.json").read_text())
    assert manifest["data_sha256"] and manifest["sid_sha256"]
    # the SID dir rebuilt in place with other codes: the model's codes no longer mean its items
    sid = tmp_path / "sid"
    shutil.copytree(runs / "sid-fp", sid)
    toy = SidTable.load(sid)
    SidTable(toy.codes[::-1].copy(), toy.codebook_sizes, toy.meta).save(sid)
    with pytest.raises(ArtifactError, match="the SIDs were rebuilt"):
        check_trained_on(runs / "gen", manifest, runs / "data", sid)
    # without the run's records, the SID table's own dataset check still refuses the new world
    with pytest.raises(ArtifactError, match="rebuild the SIDs"):
        check_dataset(runs / "sid-fp", runs / "data")
