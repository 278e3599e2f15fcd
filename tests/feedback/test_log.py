"""The log on both backends (a SQLite file; a real PostgreSQL server when installed): append
returns committed ids, read gives them back, concurrent writer processes lose nothing."""

import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from onefeed.feedback import FeedbackError, FeedbackEvent, open_log
from onefeed.feedback.log import redact

from feedback_helpers import parse_acks, writer_cmd


def events(n: int, tag: str = "r") -> list[FeedbackEvent]:
    return [FeedbackEvent(f"u{i % 3}", "click", 100.0 + i, item=f"i{i}", position=i,
                          request_id=f"{tag}{i}") for i in range(n)]


def test_append_then_read_round_trips(target):
    with open_log(target) as log:
        assert log.append([]) == []
        first = log.append(events(3))
        more = [FeedbackEvent("u9", "query", 7.5, query="red shoes"),
                FeedbackEvent("u9", "dwell", 8, item="i1", dwell_ms=1200, request_id="q")]
        second = log.append(more)
        assert first == [1, 2, 3] and second == [4, 5]
        assert log.count() == 5
        rows = list(log.read())
        assert [r.id for r in rows] == [1, 2, 3, 4, 5]
        assert [r.event for r in rows] == events(3) + more
        assert all(r.received_at > 1.6e9 for r in rows)
        assert [r.id for r in log.read(after_id=3)] == [4, 5]
        assert list(log) == rows
    with open_log(target) as again:  # reopened: the table is there, ids go on
        assert again.append(events(1, "z")) == [6]


def test_append_refuses_what_is_not_an_event(target):
    with open_log(target) as log:
        with pytest.raises(FeedbackError, match=r"^events\.1: expected a FeedbackEvent, got "
                                                r"dict$"):
            log.append([events(1)[0], {"user": "u"}])
        with pytest.raises(FeedbackError, match="^events: expected a list of FeedbackEvent, "
                                                "got str$"):
            log.append("click")
        assert log.count() == 0  # nothing of the refused batch was written


def test_sqlite_is_wal_with_full_sync(tmp_path):
    path = tmp_path / "fb.sqlite"
    with open_log(str(path)) as log:
        log.append(events(2))
        assert log.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert log.conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
        assert log.conn.execute("PRAGMA busy_timeout").fetchone()[0] == 30000
    assert (sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0]) == "wal"


def test_bad_targets_are_one_line(tmp_path):
    junk = tmp_path / "junk.sqlite"
    junk.write_text("not a database at all, just text" * 10)
    with pytest.raises(FeedbackError, match=f"^{junk}: not a usable SQLite feedback log "
                                            r"\(file is not a database\)$"):
        open_log(str(junk))
    other = tmp_path / "other.sqlite"
    sqlite3.connect(other).execute("CREATE TABLE onefeed_feedback (id INTEGER, x TEXT)")
    with pytest.raises(FeedbackError, match=r"table onefeed_feedback has columns \['id', 'x'\]"
                                            r", expected \['id', 'received_at', 'user_id'"):
        open_log(str(other))
    with pytest.raises(FeedbackError, match=f"^{tmp_path}: is a directory"):
        open_log(str(tmp_path))
    with pytest.raises(FeedbackError, match="^mysql://u:\\*\\*\\*@h/db: unknown log URL scheme"):
        open_log("mysql://u:secret@h/db")
    with pytest.raises(FeedbackError, match="^feedback log: empty target"):
        open_log("")
    with pytest.raises(FeedbackError, match="no feedback log here"):
        open_log(str(tmp_path / "missing.sqlite"), create=False)
    assert not (tmp_path / "missing.sqlite").exists()


def test_export_side_open_never_creates(target):
    """open_log(create=False), as export uses it, refuses a database without the table and
    leaves it without one."""
    missing = "no feedback log here" if target.endswith(".sqlite") else "no table onefeed_feedback"
    for _ in range(2):  # and the first refusal created nothing
        with pytest.raises(FeedbackError, match=missing):
            open_log(target, create=False)
    if target.endswith(".sqlite"):
        assert not Path(target).exists()
    with open_log(target) as log:
        log.append(events(1))
    with open_log(target, create=False) as log:
        assert log.count() == 1


def test_postgres_connection_failure_hides_the_password():
    from feedback_helpers import free_port

    url = f"postgresql://bob:hunter2@127.0.0.1:{free_port()}/nodb"
    with pytest.raises(FeedbackError) as exc:
        open_log(url)
    text = str(exc.value)
    assert text.startswith(f"postgresql://bob:***@127.0.0.1:{url.split(':')[3]}: cannot connect "
                           "to PostgreSQL (")
    assert "hunter2" not in text
    assert redact("postgresql://a@h/db") == "postgresql://a@h/db"


def test_concurrent_writer_processes_lose_nothing(target):
    """4 processes append 25 batches of 4 at the same moment (the log does not exist yet when
    they start: schema creation races too): every id unique, every event there, as sent."""
    n_proc, batches, batch = 4, 25, 4
    start_at = time.time() + 2.0
    procs = [subprocess.Popen(writer_cmd(target, f"w{p}", batches, batch, start_at),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for p in range(n_proc)]
    acks: dict[int, str] = {}
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err[-2000:]
        mine = parse_acks(out)
        assert len(mine) == batches * batch
        assert not set(mine) & set(acks), "an id was given to two writers"
        acks.update(mine)
    assert len(acks) == n_proc * batches * batch
    with open_log(target) as log:
        logged = {r.id: r.event.request_id for r in log.read()}
    assert logged == acks


def test_a_row_edited_by_hand_is_named_on_read(tmp_path):
    path = tmp_path / "fb.sqlite"
    with open_log(str(path)) as log:
        log.append(events(2))
        log.conn.execute("UPDATE onefeed_feedback SET kind = 'look' WHERE id = 2")
        with pytest.raises(FeedbackError, match="^log id 2: kind: 'look' is not one of "):
            list(log.read())


def test_postgres_reconnects_after_its_connection_is_killed(pg_url):
    import psycopg

    with open_log(pg_url) as log:
        assert log.append(events(1)) == [1]
        pid = log.conn.info.backend_pid
        with psycopg.connect(pg_url, autocommit=True) as admin:
            assert admin.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone()[0]
        time.sleep(0.2)
        assert log.append(events(2, "again")) == [2, 3]  # BEGIN failed: reconnected, once
        assert log.conn.info.backend_pid != pid
        assert [r.event.request_id for r in log.read()] == ["r0", "again0", "again1"]


def test_setup_is_retried_while_sqlite_says_locked():
    """A new file switched to WAL by several processes at once gets SQLITE_BUSY without the
    busy handler; opening retries that (and only that) within the busy timeout."""
    import sqlite3

    from onefeed.feedback.log import _retry_locked

    calls = []

    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise sqlite3.OperationalError("database is locked")

    _retry_locked(flaky)
    assert len(calls) == 3
    calls.clear()

    def broken():
        calls.append(1)
        raise sqlite3.OperationalError("no such table: x")

    with pytest.raises(sqlite3.OperationalError, match="no such table"):
        _retry_locked(broken)
    assert len(calls) == 1  # not a lock: no retry

    def always_locked():
        raise sqlite3.OperationalError("database is locked")

    with pytest.raises(sqlite3.OperationalError, match="locked"):
        _retry_locked(always_locked, budget_s=0.05)
