"""``ServeSettings``: the typed config of ``onefeed serve`` (TOML file, then environment).

    onefeed serve --run RUN --config serve.toml       # [serve] table or top-level keys
    ONEFEED_SERVE_BATCHING=false onefeed serve ...    # any field, as ONEFEED_SERVE_<NAME>

Environment values parse as JSON where they can (``false``, ``2.5``), else as strings; ranges
are checked like every other onefeed config (``config.RANGES``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from pathlib import Path
from typing import ClassVar, Literal

from onefeed import config as config_lib

ENV_PREFIX = "ONEFEED_SERVE_"


@dataclass(frozen=True)
class ServeSettings:
    batching: bool = True  # False: one request at a time (the comparison server)
    max_wait_ms: float = 3.0  # longest wait of the free model thread for company; 0 = greedy
    max_batch: int = 64  # rows per batched beam search
    wait_gap_ms: float = 0.3  # > 0: wait only after a batch of several, and only while requests
    # keep coming (stop after this long without one); 0: always wait the whole max_wait_ms
    beam: int = 20  # beam of /recommend and /search (widened to at least k)
    suggest_beam: int = 20  # beam of /suggest (next-query generation)
    suggest_max_words: int = 10
    max_k: int = 100  # largest k a request may ask for
    max_query_chars: int = 500
    max_history: int = 200  # events of an explicit history
    max_body_bytes: int = 262144  # larger request bodies get 413
    max_feedback_events: int = 1000  # events per POST /feedback
    history_split: Literal["all", "valid", "test"] = "all"  # where a logged user's history ends
    bm25_depth: int = 100  # BM25 candidates re-scored with fuse_bm25
    threads: int = 1  # torch threads per worker
    state_cache: int = 100000  # encoded histories kept for reuse (LRU); 0 = encode every time
    feedback: str = ""  # SQLite path or postgresql:// URL; "" = <run>.feedback.sqlite
    catalogue: str = ""  # item journal; "" = <run>.catalogue.jsonl (beside the run)
    onebar: str = ""  # OneBar artifact (onefeed onebar build): /suggest with a trigger_item
    onebar_method: str = "anchor-cascade"  # its suggester: a baseline name or "model"
    hot_routes: bool = True  # /recommend, /feed, /search, /suggest bodies answered before
    # FastAPI's routing (same models, handlers, errors); false = every request routed
    telemetry: bool = False  # FastAPI's OpenTelemetry spans / metrics / logs (with a configured
    # provider); off, no request pays for the check. /metrics (Prometheus) is always on.

    RANGES: ClassVar[dict[str, str]] = {
        "max_wait_ms": "[0, 1000]", "max_batch": "[1, 4096]", "wait_gap_ms": "[0, 1000]",
        "beam": "[1, 1000]",
        "suggest_beam": "[1, 200]", "suggest_max_words": "[1, 64]", "max_k": "[1, 1000]",
        "max_query_chars": "[1, 100000]", "max_history": "[1, 100000]",
        "max_body_bytes": ">= 1024", "max_feedback_events": "[1, 100000]",
        "bm25_depth": "[1, 10000]", "threads": "[1, 256]",
        "state_cache": "[0, 100000000]"}

    def feedback_target(self, run_dir: Path) -> str:
        if self.feedback:
            return self.feedback
        run_dir = Path(run_dir).resolve()
        return str(run_dir.parent / f"{run_dir.name}.feedback.sqlite")

    def catalogue_path(self, run_dir: Path) -> Path:
        from onefeed.predict import catalogue_path

        return Path(self.catalogue) if self.catalogue else catalogue_path(run_dir)


def load_settings(path: str | Path | None = None, overrides: list[str] | None = None,
                  env: dict[str, str] | None = None) -> ServeSettings:
    """Defaults, then the TOML file (its ``[serve]`` table if it has one), then
    ``ONEFEED_SERVE_*`` variables, then ``overrides`` (``key=value``)."""
    env = os.environ if env is None else env
    data = config_lib.to_dict(ServeSettings())
    if path is not None:
        file_data = config_lib.read_toml(path)
        file_data = file_data.get("serve", file_data) if isinstance(file_data, dict) else {}
        data.update(file_data)
    names = {f.name for f in fields(ServeSettings)}
    env_over = [f"{k[len(ENV_PREFIX):].lower()}={v}" for k, v in sorted(env.items())
                if k.startswith(ENV_PREFIX) and k[len(ENV_PREFIX):].lower() in names]
    data = config_lib.apply_overrides(data, env_over + list(overrides or []))
    return config_lib.from_dict(ServeSettings, data, "serve.")
