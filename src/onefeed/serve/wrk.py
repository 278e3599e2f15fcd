"""wrk as the load client of ``onefeed bench serve``: C, so the client's share of the 2 cores
stays small and what is measured is the server.

``drive_wrk`` keeps ``concurrency`` keep-alive connections busy for ``seconds`` (one request in
flight per connection), POSTing the JSON ``payloads`` in turn, and returns the same summary as
``loadgen.summarise``: p50 / p95 / p99 in ms from wrk's latency histogram, completed requests
per second, and errors (socket errors, timeouts and non-2xx answers). Not installed: an error
saying how to install it (``apt-get install wrk``), never a silent switch to another client.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

# The Lua side: requests cycle through the bodies file; done() prints one JSON line.
SCRIPT = """
local bodies = {}
for line in io.lines(os.getenv("ONEFEED_WRK_BODIES")) do bodies[#bodies + 1] = line end
local path = os.getenv("ONEFEED_WRK_PATH")
local n = 0
request = function()
  n = n + 1
  return wrk.format("POST", path, {["Content-Type"] = "application/json"},
                    bodies[(n - 1) % #bodies + 1])
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'ONEFEED_WRK {"requests": %d, "duration_us": %d, "p50_us": %d, "p95_us": %d, ' ..
    '"p99_us": %d, "connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(95),
    latency:percentile(99), e.connect, e.read, e.write, e.status, e.timeout))
end
"""
MARK = "ONEFEED_WRK "


def wrk_binary() -> str:
    path = shutil.which("wrk")
    if path is None:
        raise RuntimeError("wrk is not installed: apt-get install wrk (Debian's package), or "
                           "run onefeed bench serve --client httpx")
    return path


def parse_report(stdout: str) -> dict[str, Any]:
    """The ``done()`` line of a wrk run -> the ``loadgen.summarise`` summary."""
    lines = [ln for ln in stdout.splitlines() if ln.startswith(MARK)]
    if not lines:
        raise RuntimeError(f"wrk printed no report line: {stdout.strip()[-300:]!r}")
    r = json.loads(lines[-1][len(MARK):])
    errors = r["connect"] + r["read"] + r["write"] + r["timeout"] + r["status"]
    ok = max(r["requests"] - r["status"], 0)  # non-2xx answers are counted in both
    seconds = r["duration_us"] / 1e6
    return {"p50_ms": round(r["p50_us"] / 1000, 3), "p95_ms": round(r["p95_us"] / 1000, 3),
            "p99_ms": round(r["p99_us"] / 1000, 3),
            "rps": round(ok / seconds, 2) if seconds > 0 else 0.0,
            "requests": int(ok), "errors": int(errors)}


def drive_wrk(base_url: str, path: str, payloads: list[dict], concurrency: int,
              seconds: float, timeout_s: float = 10.0) -> dict[str, Any]:
    binary = wrk_binary()
    with tempfile.TemporaryDirectory(prefix="onefeed-wrk-") as tmp:
        bodies, script = Path(tmp) / "bodies.jsonl", Path(tmp) / "post.lua"
        bodies.write_text("".join(json.dumps(p, separators=(",", ":")) + "\n" for p in payloads))
        script.write_text(SCRIPT)
        cmd = [binary, "-t1", f"-c{concurrency}", f"-d{max(seconds, 1.0):g}s",
               f"--timeout={timeout_s:g}s", "-s", str(script), base_url]
        env = {"ONEFEED_WRK_BODIES": str(bodies), "ONEFEED_WRK_PATH": path, "PATH": "/usr/bin"}
        out = subprocess.run(cmd, capture_output=True, text=True, env=env,
                             timeout=seconds + timeout_s + 30)
    if out.returncode != 0:
        raise RuntimeError(f"wrk exited with {out.returncode}: {out.stderr.strip()[-300:]}")
    return parse_report(out.stdout)
