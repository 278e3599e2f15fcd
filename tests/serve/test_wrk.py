"""The wrk client: its report line parsed into the bench's summary, and a real run against a
tiny HTTP server (non-2xx answers counted as errors, bodies cycled in order)."""

import json
import shutil
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from onefeed.serve.wrk import MARK, drive_wrk, parse_report


def test_parse_report_converts_units_and_counts_errors():
    line = MARK + json.dumps({"requests": 1000, "duration_us": 2_000_000, "p50_us": 1500,
                              "p95_us": 4000, "p99_us": 12345, "connect": 0, "read": 1,
                              "write": 0, "status": 10, "timeout": 2})
    out = parse_report("Running 2s test\n" + line + "\n")
    # 990 answered with 2xx over 2 s; errors = read 1 + status 10 + timeout 2
    assert out == {"p50_ms": 1.5, "p95_ms": 4.0, "p99_ms": 12.345, "rps": 495.0,
                   "requests": 990, "errors": 13}


def test_parse_report_without_the_line_names_the_problem():
    with pytest.raises(RuntimeError, match="no report line"):
        parse_report("unable to connect to 127.0.0.1:1 Connection refused\n")


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk not installed (apt-get install wrk)")
def test_drive_wrk_against_a_real_server():
    seen: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self):  # noqa: N802 - http.server's name
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            seen.append(body)
            status = 500 if body["n"] == 1 else 200
            payload = b"{}"
            self.send_response(status)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        out = drive_wrk(url, "/x", [{"n": 0}, {"n": 1}, {"n": 2}, {"n": 3}], 1, 1.0)
    finally:
        server.shutdown()
    ns = [b["n"] for b in seen]
    assert len(ns) > 8 and all(b == (a + 1) % 4 for a, b in zip(ns, ns[1:]))  # cycled in order
    total = out["requests"] + out["errors"]
    assert total >= len(seen) - 1 and out["errors"] >= 1  # every n == 1 answer is a 500
    assert abs(out["errors"] - len(seen) / 4) <= 1
    assert out["rps"] > 0 and 0 < out["p50_ms"] <= out["p99_ms"]
