"""Every command turns bad input into one ``error:`` line on stderr and a non-zero exit.

Families: missing file, bad config value, unknown key, corrupt input, bad option value. Runs
``onefeed.cli.main`` in-process against a real prepared dataset + SID table and fake runs
(``fuzzing.command_fixture``).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from onefeed import fuzzing
from onefeed.cli import main, one_line
from onefeed.config import ConfigError


@pytest.fixture(scope="module")
def fx(tmp_path_factory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("fixture")
    out = fuzzing.command_fixture(root)
    garbage = root / "garbage"
    (garbage / "best").mkdir(parents=True)
    for name in ("manifest.json", "sid_table.json"):
        (garbage / name).write_bytes(b"{not json")
    (root / "bad.toml").write_text("a = = 1\n")
    (root / "unknown.toml").write_text("colour = 'red'\n")
    return {**out, "garbage": str(garbage), "bad": str(root / "bad.toml"),
            "unknown": str(root / "unknown.toml"), "missing": str(root / "missing"),
            "tmp": str(root / "out")}


def run(capsys, argv: list[str], fx: dict[str, str]) -> str:
    argv = [a.format(**fx) for a in argv]
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    out, err = capsys.readouterr()
    assert exit_.value.code not in (0, None), out + err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert "Traceback" not in out + err
    assert lines and lines[-1].startswith("error: "), err
    return lines[-1]


CASES = [
    # (argv, expected part of the message)
    (["data", "prepare", "--config", "{missing}"], "config file not found"),
    (["data", "prepare", "--set", "k_core=-3"], "k_core = -3: must be >= 0"),
    (["data", "prepare", "--set", "colour=red"], "unknown key(s) ['colour']"),
    (["data", "prepare", "--config", "{bad}"], "not valid TOML"),
    (["data", "stats", "{missing}"], "no manifest.json"),
    (["data", "stats", "{garbage}"], "unreadable prepared dataset"),
    (["data", "check", "{garbage}"], "unreadable prepared dataset"),
    (["sid", "build", "--data", "{missing}", "--quiet"], "no manifest.json"),
    (["sid", "build", "--data", "{data}", "--set", "levels=0"], "levels = 0: must be >= 1"),
    (["sid", "build", "--data", "{data}", "--set", "codebook_size=0"], "must be >= 2"),
    (["sid", "build", "--data", "{data}", "--config", "{unknown}"], "unknown key(s)"),
    (["sid", "inspect", "/nonexistent"], "not a SID table dir"),
    (["sid", "inspect", "{garbage}"], "unreadable SID table"),
    (["train", "--data", "{data}", "--sid", "{missing}"], "not a SID table dir"),
    (["train", "--data", "{missing}", "--sid", "{sid}"], "not a prepared dataset"),
    (["train", "--data", "{data}", "--sid", "{sid}", "--set", "train.bogus=1"],
     "train: unknown key(s) ['bogus']"),
    (["train", "--data", "{data}", "--sid", "{sid}", "--set", "train.batch_size=0"],
     "train.batch_size = 0: must be >= 1"),
    (["train", "--data", "{data}", "--sid", "{garbage}", "--out", "{tmp}"],
     "unreadable SID table"),
    (["evaluate", "--run", "{missing}"], "no trained run here"),
    (["evaluate", "--run", "{run}", "--split", "bogus"], "expected valid or test"),
    (["evaluate", "--run", "{joint}"], "this is a joint run (onefeed joint train) and"),
    (["evaluate", "--run", "{garbage}"], "not a readable manifest"),
    (["recommend", "--run", "{run}", "--user", "u1", "-k", "-5"], "-k"),
    # recommend serves a joint run through the joint predictor: this one has no weights
    (["recommend", "--run", "{joint}", "--user", "u1"], "joint/best/model.safetensors"),
    (["joint", "train", "--data", "{data}", "--sid", "{sid}", "--set", "tasks.nsqp=-1"],
     "tasks.nsqp = -1.0: must be >= 0"),
    (["joint", "train", "--data", "{data}", "--sid", "{missing}"], "not a SID table dir"),
    (["joint", "recommend", "--run", "{run}", "--user", "u1"], "expected 'joint-generative'"),
    (["joint", "recommend", "--run", "{joint}", "--user", "u1", "--split", "bogus"],
     "'bogus' is not one of"),
    (["joint", "search", "--run", "{joint}", "--user", "u1", "--query", "caf\udce9"],
     "query is not valid UTF-8"),
    (["joint", "search", "--run", "{garbage}", "--user", "u1", "--query", "red"],
     "not a readable manifest"),
    (["joint", "suggest", "--run", "{joint}", "--user", "u1", "-k", "0"], "-k"),
    (["bench", "no-such-suite"], "No such command 'no-such-suite'"),
    (["bench", "quick", "--set", "threads=0"], "threads = 0: must be >= 1"),
    (["bench", "quick", "--set", "train.lr=1"], "unknown key(s) ['train']"),
    (["run", "--config", "{missing}"], "config file not found"),
    (["run", "--config", "{bad}"], "not valid TOML"),
]


@pytest.mark.parametrize("argv,expected", CASES, ids=[" ".join(c[0][:3]) for c in CASES])
def test_bad_input_is_one_clean_line(capsys, fx, argv, expected):
    assert expected in run(capsys, argv, fx)


def test_every_command_is_covered():
    covered = {" ".join(a for a in argv[:2] if not a.startswith(("-", "{", "/")))
               for argv, _ in CASES}
    for name in ("data prepare", "data stats", "data check", "sid build", "sid inspect",
                 "train", "evaluate", "recommend", "joint train", "joint recommend",
                 "joint search", "joint suggest", "run"):
        assert name in covered, name


def test_markup_like_text_is_printed_verbatim(capsys, fx, tmp_path):
    (tmp_path / "events.csv").write_text("u,i,t\na,x,tuesday\n")
    (tmp_path / "m.toml").write_text('[events]\nfile = "events.csv"\nuser = "u"\nitem = "i"\n'
                                     'timestamp = "t"\n')
    line = run(capsys, ["data", "prepare", "--set", "dataset=generic", "--set",
                        f"options.config={tmp_path / 'm.toml'}", "--out", "{tmp}"], fx)
    assert "set [events] timestamp_format" in line


def test_debug_env_reraises(monkeypatch, fx):
    monkeypatch.setenv("ONEFEED_DEBUG", "1")
    with pytest.raises(ConfigError, match="levels"):
        main(["sid", "build", "--data", fx["data"], "--set", "levels=0"])


def test_one_line_joins_and_shortens():
    assert one_line("a\n\n  b  \nc") == "a; b; c"
    assert len(one_line("x" * 1000, limit=50)) == 50


def test_help_still_exits_zero(capsys):
    assert main(["data", "--help"]) == 0
    assert "prepare" in capsys.readouterr().out


def test_fixture_runs_point_at_real_inputs(fx):
    manifest = json.loads((Path(fx["run"]) / "manifest.json").read_text())
    assert Path(manifest["data"], "manifest.json").is_file()


def test_degenerate_sid_levels_are_warned(caplog):
    from onefeed.cli.sid import warn_degenerate

    with caplog.at_level("WARNING", logger="onefeed.sid"):
        assert warn_degenerate([19, 1, 1, 1], 19, 256)
    assert "SID levels [1, 2, 3] have a single code" in caplog.text
    assert not warn_degenerate([4, 6], 24, 256)


def test_zero_test_search_queries_are_warned(caplog, tmp_path):
    from onefeed.data.prepare import load_config, prepare

    cfg = load_config(None, ["dataset=generic", "k_core=0", 'queries.min_chars=1000',
                             f"options.config={example_mapping()}"])
    with caplog.at_level("WARNING", logger="onefeed.data.prepare"):
        prepare(cfg)
    assert "0 test search queries" in caplog.text and "queries.min_chars" in caplog.text


def example_mapping() -> Path:
    from onefeed.paths import REPO

    return REPO / "configs" / "datasets" / "example" / "mapping.toml"
