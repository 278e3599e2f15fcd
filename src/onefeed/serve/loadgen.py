"""The load generator of ``onefeed bench serve``: a bounded asyncio client over loopback.

``drive`` keeps exactly ``concurrency`` requests in flight (one coroutine each, one keep-alive
connection each) until ``n_requests`` have completed, cycling through ``payloads``; latency is
measured per request from send to the parsed response. ``Server`` starts a real
``onefeed serve`` process and waits for ``/health``.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def summarise(latencies_s: list[float], wall_s: float, errors: int) -> dict[str, Any]:
    """p50 / p95 / p99 in ms (numpy's linear interpolation) and completed requests per second."""
    lat = np.asarray(latencies_s, dtype=np.float64) * 1000.0
    q = np.percentile(lat, [50, 95, 99]) if len(lat) else [float("nan")] * 3
    return {"p50_ms": round(float(q[0]), 3), "p95_ms": round(float(q[1]), 3),
            "p99_ms": round(float(q[2]), 3),
            "rps": round(len(lat) / wall_s, 2) if wall_s > 0 else 0.0,
            "requests": int(len(lat)), "errors": int(errors)}


async def drive(base_url: str, path: str, payloads: list[dict], concurrency: int,
                n_requests: int, timeout: float = 60.0) -> dict[str, Any]:
    import httpx

    latencies: list[float] = []
    errors = 0
    counter = iter(range(n_requests))
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)

    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=timeout) as client:
        async def one_worker() -> None:
            nonlocal errors
            for i in counter:
                body = payloads[i % len(payloads)]
                t0 = time.perf_counter()
                try:
                    r = await client.post(path, json=body)
                    r.json()
                    ok = r.status_code == 200
                except httpx.HTTPError:
                    ok = False
                if ok:
                    latencies.append(time.perf_counter() - t0)
                else:
                    errors += 1

        start = time.perf_counter()
        await asyncio.gather(*(one_worker() for _ in range(concurrency)))
        wall = time.perf_counter() - start
    return summarise(latencies, wall, errors)


class Server:
    """``onefeed serve`` in a child process (its own session, so ``stop`` ends it alone)."""

    def __init__(self, run: Path, settings: list[str], port: int | None = None,
                 env: dict[str, str] | None = None) -> None:
        self.run, self.settings, self.port = Path(run), settings, port or free_port()
        self.env = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 120.0) -> "Server":
        import httpx

        cmd = [sys.executable, "-c", "from onefeed.cli import main; raise SystemExit(main())",
               "serve", "--run", str(self.run), "--port", str(self.port)]
        for s in self.settings:
            cmd += ["--set", s]
        self.proc = subprocess.Popen(cmd, env=self.env, start_new_session=True,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode(errors="replace") if self.proc.stderr else ""
                raise RuntimeError(f"onefeed serve exited with {self.proc.returncode}: "
                                   f"{err.strip()[-500:]}")
            try:
                if httpx.get(self.url + "/health", timeout=1.0).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"onefeed serve did not answer /health within {timeout:.0f} s")

    def kill(self) -> None:
        """SIGKILL, no shutdown of any kind (the crash test)."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()

    def __enter__(self) -> "Server":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
