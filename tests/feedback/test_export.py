"""Log -> export -> ``onefeed data prepare`` end to end (both backends), the export's rules on
a hand-made log, and the CLI's refusals (foreign folders, the log itself, existing exports)."""

import json
import sqlite3
import sys
from pathlib import Path

import polars as pl
import pytest

from onefeed.cli import main
from onefeed.data.schemas import Dataset
from onefeed.feedback import FeedbackEvent, open_log
from onefeed.feedback.export import log_frame, split_log

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tasks"))
from joint_toy import make_world  # noqa: E402


def session_log() -> list[FeedbackEvent]:
    """4 users x 5 responses: an impression of 2 items, a click on one; u0 also dwells on its
    first click (same request: folded) and on an item it never clicked (its own event); every
    user searches "red" and clicks a result with the query; u3 skips once."""
    ev = []
    t = 1.7e9
    for u in range(4):
        for r in range(5):
            rid = f"r{u}-{r}"
            a, b = f"i{(u + r) % 12}", f"i{(u + r + 6) % 12}"
            ev += [FeedbackEvent(f"u{u}", "impression", t, item=a, position=0, request_id=rid),
                   FeedbackEvent(f"u{u}", "impression", t, item=b, position=1, request_id=rid),
                   FeedbackEvent(f"u{u}", "click", t + 1, item=a, position=0, request_id=rid)]
            t += 10
        ev += [FeedbackEvent(f"u{u}", "query", t, query="red lipstick"),
               FeedbackEvent(f"u{u}", "click", t + 1, item=f"i{u}", query="red lipstick",
                             position=0, request_id=f"s{u}")]
        t += 10
    ev += [FeedbackEvent("u0", "dwell", t, item="i0", dwell_ms=4000, request_id="r0-0"),
           FeedbackEvent("u0", "dwell", t + 1, item="i0", dwell_ms=500, request_id="r0-0"),
           FeedbackEvent("u0", "dwell", t + 2, item="i11", dwell_ms=900),
           FeedbackEvent("u3", "skip", t + 3, item="i2", position=4, request_id="r3-9")]
    return ev


def test_split_rules_hand_counted():
    ev = session_log()
    rows = [type("R", (), {"id": i + 1, "received_at": 0.0, "event": e}) for i, e in
            enumerate(ev)]
    events, negatives, folded = split_log(log_frame(rows))
    assert folded == 2  # u0's two dwells on its click of i0 in r0-0
    by = dict(events.group_by("behaviour").len().iter_rows())
    assert by == {"rec_click": 4 * 5 + 1, "search_query": 4, "search_click": 4}
    click = events.filter((pl.col("request_id") == "r0-0") & (pl.col("kind") == "click"))
    assert click["strength"].to_list() == [4500.0]  # 4000 + 500 folded
    alone = events.filter(pl.col("kind") == "dwell")
    assert alone["item_id"].to_list() == ["i11"] and alone["strength"].to_list() == [900.0]
    assert events.filter(pl.col("kind") == "click")["strength"].null_count() == 4 * 6 - 1
    assert events["timestamp"].is_sorted()
    assert negatives.height == 4 * 5 * 2 + 1
    assert negatives["id"].to_list() == sorted(negatives["id"].to_list())  # time, then id
    assert negatives["clicked"].sum() == 4 * 5  # position-0 impressions were clicked
    assert negatives.filter(pl.col("kind") == "skip")["clicked"].to_list() == [False]
    assert set(events.columns) >= {"user_id", "item_id", "timestamp", "behaviour", "query",
                                   "strength"}


def _prepare(export_dir: Path, out: Path, *sets: str) -> Dataset:
    code = main(["data", "prepare", "--config", str(export_dir / "prepare.toml"), "--out",
                 str(out), "--set", "k_core=0", "--set", "search_share=0", *sets])
    assert code == 0
    return Dataset.load(out)


def test_append_export_prepare_end_to_end(target, tmp_path, capsys):
    with open_log(target) as log:
        ids = log.append(session_log())
    assert ids == list(range(1, len(session_log()) + 1))
    out = tmp_path / "export"
    assert main(["feedback", "export", "--log", target, "--out", str(out)]) == 0
    said = capsys.readouterr().out
    assert "29 events (21 rec_click, 4 search_click, 4 search_query), 41 negatives" in said
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["kind"] == "feedback-export"
    assert manifest["counts"]["logged"] == len(session_log())
    assert manifest["counts"]["max_id"] == len(session_log())
    assert sorted(manifest["files"]) == ["events.parquet", "mapping.toml", "negatives.parquet",
                                         "prepare.toml"]
    ds = _prepare(out, tmp_path / "data")
    assert ds.n_users == 4 and ds.name == "feedback"
    by = dict(ds.events.group_by("behaviour").len().iter_rows())
    assert by == {"rec_click": 21, "search_query": 4, "search_click": 4}
    assert ds.manifest["source"]["name"] == "feedback"
    assert set(ds.events["split"]) == {"train", "valid", "test"}
    # u0's folded dwell survives as strength on the prepared event
    assert sorted(ds.events["strength"].drop_nulls().to_list()) == [900.0, 4500.0]


def test_export_with_item_table_from_a_prepared_dataset(tmp_path):
    world = tmp_path / "world"
    make_world(n_users=4).save(world)
    log_path = tmp_path / "fb.sqlite"
    with open_log(str(log_path)) as log:
        log.append(session_log())
    out = tmp_path / "export"
    assert main(["feedback", "export", "--log", str(log_path), "--out", str(out), "--data",
                 str(world), "--name", "fb-world"]) == 0
    assert pl.read_parquet(out / "items.parquet").height == 12
    ds = _prepare(out, tmp_path / "data")
    assert ds.name == "fb-world"
    titles = dict(zip(ds.items["item_id"], ds.items["title"]))
    assert titles["i0"] == "red lipstick number 0"
    assert ds.queries.height > 0  # weak queries from the titles


def test_export_refusals(tmp_path, capsys):
    log_path = tmp_path / "logs" / "fb.sqlite"
    with open_log(str(log_path)) as log:
        log.append(session_log())
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")

    def fails(*args: str) -> str:
        with pytest.raises(SystemExit) as exc:
            main(["feedback", "export", "--log", *args])
        assert exc.value.code == 1
        return capsys.readouterr().err.replace("\n", " ")

    msg = fails(str(log_path), "--out", str(foreign))
    assert "already exists and is not a onefeed feedback-export: refusing to write" in msg
    assert (foreign / "notes.txt").read_text() == "keep me"
    assert "holds the feedback log" in fails(str(log_path), "--out", str(tmp_path / "logs"))
    assert "no feedback log here (file not found)" in fails(str(tmp_path / "nope.sqlite"),
                                                            "--out", str(tmp_path / "e"))
    assert not (tmp_path / "nope.sqlite").exists() and not (tmp_path / "e").exists()
    other_db = tmp_path / "other.sqlite"
    sqlite3.connect(other_db).execute("CREATE TABLE notes (x TEXT)")
    assert "no table onefeed_feedback (not an onefeed feedback log)" in fails(
        str(other_db), "--out", str(tmp_path / "e"))
    with sqlite3.connect(other_db) as conn:  # export added nothing to someone else's file
        assert [r[0] for r in conn.execute("SELECT name FROM sqlite_master")] == ["notes"]
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    assert "no manifest.json" in fails(str(log_path), "--out", str(tmp_path / "e"), "--data",
                                       str(foreign))
    file_out = tmp_path / "file.parquet"
    file_out.write_text("x")
    assert "is a file, not a directory" in fails(str(log_path), "--out", str(file_out))
    empty = tmp_path / "empty.sqlite"
    with open_log(str(empty)) as log:
        log.append([FeedbackEvent("u", "impression", 1, item="i")])
    assert "no click, dwell or query events among 1 logged" in fails(
        str(empty), "--out", str(tmp_path / "e2"))

    out = tmp_path / "export"
    assert main(["feedback", "export", "--log", str(log_path), "--out", str(out)]) == 0
    assert "pass --force to replace it" in fails(str(log_path), "--out", str(out))
    assert main(["feedback", "export", "--log", str(log_path), "--out", str(out),
                 "--force"]) == 0
