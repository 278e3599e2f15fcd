"""Helpers shared by the feedback tests and tests/serve/test_feedback_kill.py (plain functions:
the test modules put this folder on sys.path)."""

from __future__ import annotations

import sys
from pathlib import Path

WRITER = Path(__file__).resolve().parent / "writer.py"


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])



def writer_cmd(target: str, tag: str, batches: int, batch: int, start_at: float = 0.0
               ) -> list[str]:
    return [sys.executable, str(WRITER), target, tag, str(batches), str(batch), str(start_at)]


def parse_acks(text: str) -> dict[int, str]:
    """``{log id: request_id}`` of every complete ``ack`` line a writer printed."""
    acks: dict[int, str] = {}
    for line in text.split("\n")[:-1]:  # the last piece has no newline: not acknowledged
        if line.startswith("ack "):
            for pair in line[4:].split():
                i, rid = pair.split("=", 1)
                assert int(i) not in acks, f"id {i} acknowledged twice"
                acks[int(i)] = rid
    return acks
