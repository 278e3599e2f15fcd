"""Log targets for the feedback tests: a SQLite file, and a database on a real PostgreSQL server
started for the session from a temporary cluster (skipped, saying why, when PostgreSQL is not
installed: `apt-get install postgresql`, as .ci/run does)."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from feedback_helpers import free_port  # noqa: E402


def pg_bindir() -> Path | None:
    """The folder holding both initdb and pg_ctl: on PATH, else the newest
    /usr/lib/postgresql/<version>/bin (Debian keeps them off PATH)."""
    on_path = shutil.which("initdb")
    candidates = [Path(on_path).resolve().parent] if on_path else []
    candidates += sorted((Path(p) for p in glob.glob("/usr/lib/postgresql/*/bin")),
                         key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
                         reverse=True)
    for d in candidates:
        if (d / "initdb").is_file() and (d / "pg_ctl").is_file():
            return d
    return None


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory):
    """``postgresql://postgres@127.0.0.1:PORT``: a throwaway cluster, stopped at the end."""
    bindir = pg_bindir()
    if bindir is None:
        pytest.skip("PostgreSQL not found: no initdb/pg_ctl on PATH or under "
                    "/usr/lib/postgresql/*/bin (apt-get install postgresql)")
    as_root = os.geteuid() == 0
    if as_root:
        import pwd

        try:
            pg_user = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no 'postgres' user for initdb")
        if shutil.which("runuser") is None:
            pytest.skip("running as root and runuser is missing (initdb refuses root)")
        # tmp_path's parents are root-only (0700): the cluster goes in its own /tmp folder
        base = Path(tempfile.mkdtemp(prefix="onefeed-pg-"))
        os.chown(base, pg_user.pw_uid, pg_user.pw_gid)
    else:
        base = tmp_path_factory.mktemp("pg")

    def run(cmd: list[str], timeout: float = 120) -> subprocess.CompletedProcess:
        full = ["runuser", "-u", "postgres", "--", *cmd] if as_root else cmd
        return subprocess.run(full, capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL, cwd=base)  # a folder postgres can read

    data, port = base / "data", free_port()
    out = run([str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust",
               "-E", "UTF8", "--no-sync"])
    assert out.returncode == 0, f"initdb failed: {out.stderr[-2000:]}"
    options = f"-p {port} -k {base} -c listen_addresses=127.0.0.1"
    out = run([str(bindir / "pg_ctl"), "-D", str(data), "-l", str(base / "server.log"), "-w",
               "-t", "60", "-o", options, "start"])
    if out.returncode != 0:
        log = (base / "server.log").read_text() if (base / "server.log").exists() else ""
        raise RuntimeError(f"pg_ctl start failed: {out.stderr[-1000:]} {log[-2000:]}")
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}"
    finally:
        run([str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"])
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def pg_url(pg_server):
    """A fresh, empty database on the session's server (dropped afterwards)."""
    import psycopg

    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(f"{pg_server}/postgres", autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    yield f"{pg_server}/{name}"
    with psycopg.connect(f"{pg_server}/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture(params=["sqlite", "postgres"])
def target(request, tmp_path):
    """One log target per backend: the same tests run on both."""
    if request.param == "sqlite":
        return str(tmp_path / "feedback.sqlite")
    return request.getfixturevalue("pg_url")
