"""``onefeed bench closed-loop``: the quick run writes json + md + png; bad input is one line."""

import json

import pytest

from onefeed.cli import main


def test_quick_run_writes_the_record(tmp_path, capsys):
    out = tmp_path / "res" / "loop"
    try:
        main(["bench", "closed-loop", "--quick", "--rounds", "1", "--set", "finetune_steps=2",
              "--out", str(out), "--work", str(tmp_path / "work")])
    except SystemExit as exc:  # typer's standalone mode exits 0
        assert exc.code in (0, None)
    doc = json.loads(out.with_suffix(".json").read_text())
    assert doc["kind"] == "bench-closed-loop" and doc["seeds"] == [0]
    assert doc["config"]["rounds"] == 1 and doc["config"]["finetune_steps"] == 2
    assert set(doc["summary"]) == {"feedback", "clicks-only", "control", "frozen"}
    assert len(doc["summary"]["feedback"]["hit_rate"]) == 2
    assert {"machine", "commit", "config"} <= set(doc)
    assert out.with_suffix(".png").read_bytes()[:4] == b"\x89PNG"
    assert "| feedback |" in out.with_suffix(".md").read_text()


@pytest.mark.parametrize("argv, message", [
    (["--seeds", "0,x"], "give integers like 0,1,2"),
    (["--set", "world.n_phases=1"], "n_phases must be >= 2"),
])
def test_bad_input_is_one_line(tmp_path, capsys, argv, message):
    with pytest.raises(SystemExit) as exc:
        main(["bench", "closed-loop", "--quick", "--out", str(tmp_path / "x"), *argv])
    assert exc.value.code not in (0, None)
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
