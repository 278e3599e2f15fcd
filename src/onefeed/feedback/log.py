"""The durable feedback log: ``open_log(target)`` -> ``SqliteLog`` or ``PostgresLog``.

    log = open_log("runs/x.feedback.sqlite")          # or "postgresql://user@host/db"
    ids = log.append([FeedbackEvent("u1", "click", 1.7e9, item="i3")])   # after COMMIT
    for row in log.read():                             # LoggedEvent(id, received_at, event)
        ...

Durability: ``append`` writes all its events in one transaction and returns their ids only
after the COMMIT has returned, so an id a caller saw survives a ``kill -9`` of the writer at
any moment (tests/feedback/test_durability.py kills writers and ``onefeed serve`` mid-stream).

SQLite: WAL journal, ``synchronous=FULL`` (the WAL is fsynced at every commit, so a power loss
after the ack loses nothing either), ``BEGIN IMMEDIATE`` per append and a 30 s busy timeout,
so several worker processes append to one file at once, taking turns for the write lock.
Ids come from ``AUTOINCREMENT``: never reused, increasing in commit order.

PostgreSQL (psycopg 3): table ``onefeed_feedback`` (``BIGSERIAL`` ids, unique; concurrent
writers may commit out of id order). A connection that died while idle (a server restart) is
reopened when the next append's BEGIN fails; an append that failed after that point is never
retried (its outcome is unknown: the caller gets the error).

Both create their table if it is missing and refuse one with other columns.
"""

from __future__ import annotations

import contextlib
import random
import re
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple, Protocol

from onefeed.feedback.events import FIELDS, FeedbackError, FeedbackEvent

TABLE = "onefeed_feedback"
# database column for each FeedbackEvent field ("user" is reserved in PostgreSQL)
COLUMNS: dict[str, str] = {"user": "user_id", "kind": "kind", "timestamp": "ts",
                           "item": "item_id", "query": "query", "position": "position",
                           "dwell_ms": "dwell_ms", "request_id": "request_id"}
BUSY_TIMEOUT_MS = 30_000
READ_BATCH = 10_000


class LoggedEvent(NamedTuple):
    id: int
    received_at: float  # unix seconds, when the writer committed it (server clock)
    event: FeedbackEvent


class FeedbackLog(Protocol):
    target: str

    def append(self, events: list[FeedbackEvent]) -> list[int]: ...
    def read(self, after_id: int = 0) -> Iterator[LoggedEvent]: ...
    def count(self) -> int: ...
    def close(self) -> None: ...
    def __iter__(self) -> Iterator[LoggedEvent]: ...


def is_postgres(target: str) -> bool:
    return target.startswith(("postgresql://", "postgres://"))


def redact(target: str) -> str:
    """``target`` with any password of a URL replaced by ``***`` (for messages, manifests)."""
    return re.sub(r"^([A-Za-z][A-Za-z0-9+.-]*://[^:/@]*):[^@/]*@", r"\1:***@", target)


def open_log(target: str | Path, create: bool = True) -> "SqliteLog | PostgresLog":
    """The log at ``target``: a SQLite file path or a ``postgresql://`` URL. ``create=False``
    refuses a missing SQLite file (export must not make an empty log)."""
    target = str(target)
    if not target:
        raise FeedbackError("feedback log: empty target (give a SQLite path or a "
                            "postgresql:// URL)")
    if is_postgres(target):
        return PostgresLog(target, create)
    if "://" in target:
        raise FeedbackError(f"{redact(target)}: unknown log URL scheme (use a SQLite file path "
                            "or postgresql://...)")
    return SqliteLog(target, create)


def _check_events(events: list[FeedbackEvent]) -> list[tuple[Any, ...]]:
    if not isinstance(events, (list, tuple)):
        raise FeedbackError(f"events: expected a list of FeedbackEvent, got "
                            f"{type(events).__name__}")
    rows = []
    for n, e in enumerate(events):
        if not isinstance(e, FeedbackEvent):
            raise FeedbackError(f"events.{n}: expected a FeedbackEvent, got {type(e).__name__}")
        rows.append(tuple(getattr(e, f) for f in FIELDS))
    return rows


def _event(row: tuple[Any, ...]) -> LoggedEvent:
    try:
        return LoggedEvent(int(row[0]), float(row[1]), FeedbackEvent(*row[2:]))
    except FeedbackError as exc:  # a row changed by hand since it was appended
        raise FeedbackError(f"log id {row[0]}: {exc}") from None


def _expected_columns() -> list[str]:
    return ["id", "received_at", *COLUMNS.values()]


def _check_columns(found: list[str], where: str) -> None:
    if found != _expected_columns():
        raise FeedbackError(f"{where}: table {TABLE} has columns {found}, expected "
                            f"{_expected_columns()} (not an onefeed feedback log)")


_SELECT = f"SELECT id, received_at, {', '.join(COLUMNS.values())} FROM {TABLE}"


def _retry_locked(fn, budget_s: float = BUSY_TIMEOUT_MS / 1000) -> None:
    """Run ``fn`` again while SQLite says the file is locked, up to the busy timeout.

    Switching a new file to WAL needs an exclusive lock, and SQLite answers that request with
    SQLITE_BUSY at once, without its busy handler, when another process is opening the same new
    file (seen with 4 writer processes starting together: tests/feedback/test_log.py)."""
    deadline = time.monotonic() + budget_s
    delay = 0.005
    while True:
        try:
            fn()
            return
        except sqlite3.OperationalError as exc:
            locked = "locked" in str(exc) or "busy" in str(exc)
            if not locked or time.monotonic() + delay > deadline:
                raise
            time.sleep(delay * (1 + random.random()))
            delay = min(delay * 2, 0.2)


class SqliteLog:
    """A SQLite file in WAL mode; one connection, used under a lock (any thread)."""

    def __init__(self, path: str | Path, create: bool = True) -> None:
        self.path = Path(path)
        self.target = str(path)
        if self.path.is_dir():
            raise FeedbackError(f"{path}: is a directory, not a SQLite feedback log")
        if not self.path.exists():
            if not create:
                raise FeedbackError(f"{path}: no feedback log here (file not found)")
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        try:
            self.conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000,
                                        isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise FeedbackError(f"{path}: cannot open the SQLite feedback log ({exc})") from None
        try:
            _retry_locked(lambda: self._setup(create))
        except (sqlite3.DatabaseError, FeedbackError) as exc:
            self.conn.close()
            if isinstance(exc, FeedbackError):
                raise
            raise FeedbackError(f"{path}: not a usable SQLite feedback log ({exc})") from None

    def _setup(self, create: bool) -> None:
        c = self.conn
        c.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        if not create and c.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND "
                                    "name = ?", (TABLE,)).fetchone() is None:
            raise FeedbackError(f"{self.target}: no table {TABLE} (not an onefeed feedback log)")
        mode = c.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise sqlite3.DatabaseError(f"journal_mode is {mode}, WAL could not be enabled")
        c.execute("PRAGMA synchronous = FULL")
        cols = ", ".join(f"{n} {t}" for n, t in zip(COLUMNS.values(), (
            "TEXT NOT NULL", "TEXT NOT NULL", "REAL NOT NULL", "TEXT", "TEXT", "INTEGER",
            "INTEGER", "TEXT")))
        c.execute(f"CREATE TABLE IF NOT EXISTS {TABLE} (id INTEGER PRIMARY KEY AUTOINCREMENT, "
                  f"received_at REAL NOT NULL, {cols})")
        found = [r[1] for r in c.execute(f"PRAGMA table_info({TABLE})")]
        _check_columns(found, self.target)

    def append(self, events: list[FeedbackEvent]) -> list[int]:
        rows = _check_events(events)
        if not rows:
            return []
        sql = (f"INSERT INTO {TABLE} (received_at, {', '.join(COLUMNS.values())}) "
               f"VALUES ({', '.join('?' * (len(COLUMNS) + 1))})")
        with self._lock:
            c = self.conn
            c.execute("BEGIN IMMEDIATE")  # the write lock now (busy timeout), not mid-way
            try:
                now = time.time()
                ids = [int(c.execute(sql, (now, *r)).lastrowid) for r in rows]
                c.execute("COMMIT")
            except BaseException:
                if c.in_transaction:
                    c.execute("ROLLBACK")
                raise
        return ids

    def read(self, after_id: int = 0) -> Iterator[LoggedEvent]:
        """Every committed event with id > ``after_id``, by id: one snapshot (one read
        transaction), read in batches."""
        with self._lock:
            reader = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000,
                                     isolation_level=None)
        try:
            reader.execute("BEGIN")
            last = after_id
            while True:
                batch = reader.execute(f"{_SELECT} WHERE id > ? ORDER BY id LIMIT ?",
                                       (last, READ_BATCH)).fetchall()
                if not batch:
                    break
                for row in batch:
                    yield _event(row)
                last = batch[-1][0]
            reader.execute("COMMIT")
        finally:
            reader.close()

    def count(self) -> int:
        with self._lock:
            return int(self.conn.execute(f"SELECT count(*) FROM {TABLE}").fetchone()[0])

    def integrity_check(self) -> str:
        with self._lock:
            return str(self.conn.execute("PRAGMA integrity_check").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self.conn.close()

    def __iter__(self) -> Iterator[LoggedEvent]:
        return self.read()

    def __enter__(self) -> "SqliteLog":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class PostgresLog:
    """A table in a PostgreSQL database (psycopg 3), one connection used under a lock."""

    def __init__(self, url: str, create: bool = True) -> None:
        try:
            import psycopg
        except ImportError as exc:  # pragma: no cover - a dependency of onefeed
            raise FeedbackError(f"{redact(url)}: psycopg is not installed ({exc})") from None
        self.psycopg = psycopg
        self.target = url
        self._lock = threading.Lock()
        self.conn = self._connect()
        try:
            self._setup(create)
        except (psycopg.Error, FeedbackError) as exc:
            self.conn.close()
            if isinstance(exc, FeedbackError):
                raise
            raise FeedbackError(f"{redact(url)}: cannot create or check table {TABLE} "
                                f"({str(exc).strip()})") from None

    def _connect(self) -> Any:
        try:
            return self.psycopg.connect(self.target, connect_timeout=10, autocommit=True)
        except self.psycopg.Error as exc:
            raise FeedbackError(f"{redact(self.target)}: cannot connect to PostgreSQL "
                                f"({str(exc).strip().splitlines()[0]})") from None

    def _setup(self, create: bool) -> None:
        types = ("TEXT NOT NULL", "TEXT NOT NULL", "DOUBLE PRECISION NOT NULL", "TEXT", "TEXT",
                 "BIGINT", "BIGINT", "TEXT")
        cols = ", ".join(f"{n} {t}" for n, t in zip(COLUMNS.values(), types))
        with self.conn.transaction(), self.conn.cursor() as cur:
            # concurrent CREATE TABLE IF NOT EXISTS can collide in the catalogue: take turns
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (0x0FEED,))
            if create:
                cur.execute(f"CREATE TABLE IF NOT EXISTS {TABLE} (id BIGSERIAL PRIMARY KEY, "
                            f"received_at DOUBLE PRECISION NOT NULL, {cols})")
            cur.execute("SELECT column_name FROM information_schema.columns WHERE "
                        "table_name = %s AND table_schema = current_schema() "
                        "ORDER BY ordinal_position", (TABLE,))
            found = [r[0] for r in cur.fetchall()]
        if not found:
            raise FeedbackError(f"{redact(self.target)}: no table {TABLE} (not an onefeed "
                                "feedback log)")
        _check_columns(found, redact(self.target))

    def append(self, events: list[FeedbackEvent]) -> list[int]:
        rows = _check_events(events)
        if not rows:
            return []
        sql = (f"INSERT INTO {TABLE} (received_at, {', '.join(COLUMNS.values())}) "
               f"VALUES ({', '.join(['%s'] * (len(COLUMNS) + 1))}) RETURNING id")
        psycopg = self.psycopg
        with self._lock:
            if self.conn.closed or self.conn.broken:
                self.conn = self._connect()
            conn = self.conn
            try:
                conn.execute("BEGIN")
            except psycopg.OperationalError:  # died while idle (server restart): nothing was
                conn.close()                  # sent, so one fresh connection may try again
                conn = self.conn = self._connect()
                conn.execute("BEGIN")
            try:
                now = time.time()
                with conn.cursor() as cur:
                    cur.executemany(sql, [(now, *r) for r in rows], returning=True)
                    ids = []
                    while True:
                        ids.append(int(cur.fetchone()[0]))
                        if not cur.nextset():
                            break
                conn.execute("COMMIT")  # a failure here is reported, never retried
            except BaseException:
                if not conn.broken and not conn.closed:
                    with contextlib.suppress(psycopg.Error):
                        conn.execute("ROLLBACK")
                raise
        return ids

    def read(self, after_id: int = 0) -> Iterator[LoggedEvent]:
        """Every committed event with id > ``after_id``, by id, from one REPEATABLE READ
        snapshot on its own connection."""
        psycopg = self.psycopg
        with psycopg.connect(self.target, connect_timeout=10, autocommit=True) as conn:
            conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            with conn.transaction(), conn.cursor() as cur:
                last = after_id
                while True:
                    cur.execute(f"{_SELECT} WHERE id > %s ORDER BY id LIMIT %s",
                                (last, READ_BATCH))
                    batch = cur.fetchall()
                    if not batch:
                        break
                    for row in batch:
                        yield _event(row)
                    last = batch[-1][0]

    def count(self) -> int:
        with self._lock, self.conn.transaction(), self.conn.cursor() as cur:
            cur.execute(f"SELECT count(*) FROM {TABLE}")
            return int(cur.fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self.conn.close()

    def __iter__(self) -> Iterator[LoggedEvent]:
        return self.read()

    def __enter__(self) -> "PostgresLog":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
