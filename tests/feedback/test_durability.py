"""kill -9 durability: a writer is killed at random moments; every id it acknowledged (printed
after append returned, i.e. after COMMIT) is in the log afterwards, with its event, and the
SQLite file passes PRAGMA integrity_check."""

import random
import sqlite3
import subprocess
import time

from onefeed.feedback import open_log

from feedback_helpers import parse_acks, writer_cmd

KILLS = 12


def test_acknowledged_events_survive_kill_9(tmp_path):
    target = str(tmp_path / "fb.sqlite")
    rng = random.Random(17)
    acks: dict[int, str] = {}
    killed_mid_stream = 0
    for k in range(KILLS):
        proc = subprocess.Popen(writer_cmd(target, f"k{k}", 0, rng.choice([1, 3, 8])),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        first = proc.stdout.readline()  # wait until it is appending
        assert first.startswith(b"ack "), proc.stderr.read().decode()[-2000:]
        time.sleep(rng.uniform(0.0, 0.25))
        proc.kill()  # SIGKILL: no cleanup, no close
        rest, _ = proc.communicate()
        assert proc.returncode == -9
        mine = parse_acks((first + rest).decode())
        killed_mid_stream += not (first + rest).endswith(b"\n") or len(mine) > 1
        assert not set(mine) & set(acks)
        acks.update(mine)
    assert killed_mid_stream == KILLS and len(acks) > KILLS
    conn = sqlite3.connect(target)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()
    with open_log(target) as log:
        logged = {r.id: r.event.request_id for r in log.read()}
    missing = set(acks) - set(logged)
    assert not missing, f"{len(missing)} acknowledged ids lost, e.g. {sorted(missing)[:5]}"
    assert all(logged[i] == rid for i, rid in acks.items())
    # unacknowledged rows may be there (committed, killed before the print): ids still unique
    assert len(logged) >= len(acks)
