"""Schema fuzzing of a running ``onefeed serve`` with schemathesis (docs/SERVING.md).

``load_schema(url)`` reads the server's own OpenAPI document; ``run(schema, config)`` draws
``config.examples`` requests per endpoint and generation mode (positive: bodies the schema
allows; negative: bodies it forbids) from schemathesis's Hypothesis strategies, sends each one
to the server and checks the contract of docs/SERVING.md with ``problem``: no 5xx, and every
4xx is JSON ``{"error": "...", "field": "..."}`` naming the field at fault.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

MODES = ("positive", "negative")


@dataclass(frozen=True)
class FuzzConfig:
    examples: int = 20  # requests per endpoint and generation mode
    modes: tuple[str, ...] = MODES
    seed: int = 0  # Hypothesis seed: the same seed sends the same requests
    timeout_s: float = 120.0  # per request (POST /items embeds text, /admin/reload loads a run)
    exclude: tuple[str, ...] = ()  # operation labels left out, "POST /feedback"
    max_failures: int = 5  # failing requests kept (per endpoint) in the report

    def __post_init__(self) -> None:
        if self.examples < 1:
            raise ValueError(f"examples: {self.examples}; at least 1")
        bad = [m for m in self.modes if m not in MODES]
        if bad or not self.modes:
            raise ValueError(f"modes: {list(self.modes)}; each one of {list(MODES)}")


@dataclass
class EndpointResult:
    label: str  # "POST /recommend"
    requests: int = 0
    statuses: dict[str, int] = field(default_factory=dict)  # "422" -> count
    failures: list[dict[str, Any]] = field(default_factory=list)  # the first max_failures
    n_failures: int = 0
    skipped: dict[str, str] = field(default_factory=dict)  # mode -> why nothing was generated


def problem(status: int, body: bytes) -> str | None:
    """Why a response breaks the service's error contract, or None if it keeps it."""
    if status >= 500:
        return f"server error {status}: {body[:300].decode('utf-8', 'replace')}"
    if not 400 <= status < 500:
        return None
    try:
        data = json.loads(body)
    except ValueError:
        return f"{status} body is not JSON: {body[:120]!r}"
    if not isinstance(data, dict) or not isinstance(data.get("error"), str):
        return f"{status} body has no 'error' string: {str(data)[:120]}"
    if not isinstance(data.get("field"), str) or not data["field"]:
        return f"{status} body names no field: {data['error'][:160]!r}"
    return None


def unavailable() -> dict[str, str]:
    """Operations this build cannot serve, label -> why (left out of a fuzz run, reported)."""
    import importlib.util

    if importlib.util.find_spec("onefeed.feedback") is None:  # the log lands in its own issue
        return {"POST /feedback": "onefeed.feedback (the feedback log) is not in this build"}
    return {}


def load_schema(base_url: str, timeout_s: float = 30.0) -> Any:
    """The OpenAPI schema a live server publishes at ``/openapi.json``."""
    import schemathesis

    return schemathesis.openapi.from_url(base_url.rstrip("/") + "/openapi.json",
                                         config=schemathesis.Config(), timeout=timeout_s)


def operations(schema: Any) -> list[Any]:
    """Every operation of ``schema``, in the document's order (a broken one raises)."""
    return [result.ok() for result in schema.get_all_operations()]


def run(schema: Any, config: FuzzConfig, base_url: str | None = None,
        progress: Any = None) -> list[EndpointResult]:
    """Fuzz every operation of ``schema`` not in ``config.exclude``; ``progress(result)`` is
    called after each endpoint."""
    out = []
    for op in operations(schema):
        if op.label in config.exclude:
            continue
        result = EndpointResult(op.label)
        for mode in config.modes:
            _fuzz(op, mode, config, base_url, result)
        out.append(result)
        if progress is not None:
            progress(result)
    return out


def _fuzz(op: Any, mode: str, config: FuzzConfig, base_url: str | None,
          result: EndpointResult) -> None:
    import requests
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import seed as hseed
    from hypothesis.errors import Unsatisfiable
    from schemathesis import GenerationMode

    statuses: Counter = Counter(result.statuses)
    session = requests.Session()

    def one(case: Any) -> None:
        try:
            response = case.call(base_url=base_url, session=session, timeout=config.timeout_s)
        except requests.RequestException as exc:  # the server hung up: as bad as a 5xx
            status, body = 599, f"no response: {type(exc).__name__}: {exc}".encode()
        else:
            status, body = response.status_code, response.content
        statuses[str(status)] += 1
        result.requests += 1
        why = problem(status, body)
        if why is not None:
            result.n_failures += 1
            if len(result.failures) < config.max_failures:
                result.failures.append({"mode": mode, "status": status, "problem": why,
                                        "request": case.as_curl_command()})

    test = given(op.as_strategy(generation_mode=GenerationMode(mode)))(one)
    test = settings(max_examples=config.examples, phases=[Phase.generate], database=None,
                    deadline=None, suppress_health_check=list(HealthCheck),
                    derandomize=False)(test)
    test = hseed(config.seed)(test)
    try:
        test()
    except Unsatisfiable as exc:
        result.skipped[mode] = f"no {mode} example: {str(exc)[:200]}"
    except Exception as exc:  # schemathesis cannot build this mode (e.g. nothing to negate)
        if type(exc).__module__.startswith("schemathesis"):
            result.skipped[mode] = f"{type(exc).__name__}: {str(exc)[:200]}"
        else:
            raise
    finally:
        session.close()
    result.statuses = dict(sorted(statuses.items()))


def summary(results: list[EndpointResult]) -> dict[str, Any]:
    total: Counter = Counter()
    for r in results:
        total.update(r.statuses)
    return {"endpoints": len(results), "requests": sum(r.requests for r in results),
            "failures": sum(r.n_failures for r in results),
            "server_errors": sum(n for s, n in total.items() if int(s) >= 500),
            "statuses": dict(sorted(total.items()))}


def as_dict(results: list[EndpointResult]) -> dict[str, Any]:
    return {r.label: asdict(r) for r in results}


__all__ = ["EndpointResult", "FuzzConfig", "as_dict", "load_schema", "operations", "problem",
           "run", "summary", "unavailable"]
