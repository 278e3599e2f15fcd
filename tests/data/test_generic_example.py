"""Issue 19: the shipped generic example prepares from any working directory, and an over-strict
k-core names the option that lowers it."""

from pathlib import Path

import pytest
from typer.testing import CliRunner

from onefeed.cli import app
from onefeed.data.prepare import load_config, prepare
from onefeed.data.schemas import DataError, Dataset

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "configs" / "prepare" / "example-generic.toml"


def test_example_generic_config_prepares_from_another_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # relative paths resolve against the files, not the cwd
    res = CliRunner().invoke(app, ["data", "prepare", "--config", str(CONFIG),
                                   "--out", str(tmp_path / "data")])
    assert res.exit_code == 0, res.output
    ds = Dataset.load(tmp_path / "data")
    assert ds.n_users == 40 and ds.n_items == 24
    assert set(ds.events["behaviour"].unique()) == {"rec_click", "search_query", "search_click"}


def test_k_core_that_leaves_nothing_names_the_option():
    cfg = load_config(CONFIG, ["k_core=1000"])
    with pytest.raises(DataError, match=r"no events left after 1000-core .*k_core"):
        prepare(cfg)
