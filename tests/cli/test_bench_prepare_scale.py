"""``onefeed bench prepare --scale``: scale parsing, target verdicts, and real subprocess runs."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from onefeed.cli import app
from onefeed.cli import bench_prepare_scale as bps


def test_parse_scale_accepts_suffixes_and_names_a_bad_part():
    assert bps.parse_scale("1M, 10M,50k,2000") == [1_000_000, 10_000_000, 50_000, 2000]
    with pytest.raises(ValueError, match="'ten' is not a count"):
        bps.parse_scale("1M,ten")
    res = CliRunner().invoke(app, ["bench", "prepare", "--scale", "1G"])
    assert res.exit_code != 0 and "is not a count" in res.output


def _run(events, seconds, peak, completed=True, reason=None):
    r = {"completed": completed, "raw_events": events, "seconds": seconds, "peak_rss_gib": peak}
    return r if completed else {"completed": False, "reason": reason, "peak_rss_gib": peak}


def test_targets_are_computed_from_the_numbers():
    runs = {"1000000": _run(1_000_000, 10.0, 0.4), "10000000": _run(10_000_000, 99.0, 2.4),
            "50000000": _run(None, None, 9.1, completed=False, reason="killed by the watchdog")}
    t = bps.targets(runs)
    assert t["peak_10M_lt_2.5GiB"] == {"status": "met", "peak_rss_gib": 2.4}
    assert t["time_growth_1M_10M_at_most_linear"] == {"status": "met", "events_ratio": 10.0,
                                                      "seconds_ratio": 9.9}
    assert t["50M_completes_within_24GiB"] == {"status": "not completed",
                                               "why": "killed by the watchdog"}
    runs["10000000"] = _run(10_000_000, 101.0, 2.5)
    t = bps.targets(runs)
    assert t["peak_10M_lt_2.5GiB"]["status"] == "missed"  # 2.5 is not < 2.5
    assert t["time_growth_1M_10M_at_most_linear"]["status"] == "missed"
    assert bps.targets({})["50M_completes_within_24GiB"] == {"status": "not run"}


def test_a_small_scale_runs_in_subprocesses_and_the_watchdog_kills(tmp_path):
    res = CliRunner().invoke(app, ["bench", "prepare", "--scale", "6000", "--out",
                                   str(tmp_path), "--tmp", str(tmp_path)])
    assert res.exit_code == 0, res.output
    report = json.loads((tmp_path / "prepare-scale.json").read_text())
    run = report["runs"]["6000"]
    assert run["completed"] and 5000 < run["raw_events"] < 7000
    assert 0 < run["peak_rss_gib"] < 2 and run["seconds"] > 0
    assert set(run["leakage"].values()) == {"pass"}
    assert report["config"]["memory_budget_gib"] == 2.0
    assert "| 6,000 |" in (tmp_path / "prepare-scale.md").read_text()
    assert [p.name for p in tmp_path.iterdir() if p.is_dir()] == []  # generated files removed
    killed = bps.run_scale(6000, tmp_path / "w", 2.0, limit_gib=0.01)
    assert killed["completed"] is False and "killed by the watchdog" in killed["reason"]
    assert "seconds" not in killed  # a stopped run has no time (here generate was stopped)


def test_without_gnu_time_the_peak_comes_from_the_process_itself(tmp_path, monkeypatch):
    monkeypatch.setattr(bps, "TIME", str(tmp_path / "no-such-time"))
    gen = bps.run_measured(["generate", str(tmp_path / "g"), json.dumps(
        {"n_users": 100, "n_items": 50})], None)
    assert gen["completed"] and gen["events_written"] > 0
    assert gen["peak_rss_gib"] >= gen["self_peak_rss_gib"] > 0.05
