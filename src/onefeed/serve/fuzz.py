"""Schema fuzzing of a running ``onefeed serve`` with schemathesis (docs/SERVING.md).

``load_schema(url)`` reads the server's own OpenAPI document; ``run(schema, config)`` draws
``config.examples`` requests per endpoint and generation mode (positive: bodies the schema
allows; negative: bodies it forbids) from schemathesis's Hypothesis strategies, sends each one
to the server and checks the contract of docs/SERVING.md with ``problem``: no 5xx, and every
4xx is JSON ``{"error": "...", "field": "..."}`` naming the field at fault.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import quote

MODES = ("positive", "negative")


@dataclass(frozen=True)
class FuzzConfig:
    examples: int = 20  # requests per endpoint and generation mode
    modes: tuple[str, ...] = MODES
    seed: int = 0  # Hypothesis seed: the same seed sends the same requests
    timeout_s: float = 120.0  # per request (POST /items embeds text, /admin/reload loads a run)
    exclude: tuple[str, ...] = ()  # operation labels left out, "POST /feedback"
    max_failures: int = 5  # failing requests kept (per endpoint) in the report
    real_share: float = 0.5  # share of requests whose user / item ids are made real ones

    def __post_init__(self) -> None:
        if self.examples < 1:
            raise ValueError(f"examples: {self.examples}; at least 1")
        bad = [m for m in self.modes if m not in MODES]
        if bad or not self.modes:
            raise ValueError(f"modes: {list(self.modes)}; each one of {list(MODES)}")
        if not 0.0 <= self.real_share <= 1.0:
            raise ValueError(f"real_share: {self.real_share}; a share in [0, 1]")


WHO_PATHS = ("/recommend", "/feed", "/search", "/suggest")  # bodies with user / history


@dataclass(frozen=True)
class KnownIds:
    """What the served run knows. Random strings are almost never a user or an item and a
    random k is mostly over the server's ``max_k``, so without these nearly every request
    would stop at a 4xx before reaching the model."""

    users: tuple[str, ...] = ()
    items: tuple[str, ...] = ()
    max_k: int = 100  # ServeSettings.max_k of the server

    def realise(self, case: Any, rng: random.Random, share: float) -> bool:
        """Make ``case`` realistic in places, each with probability ``share``: a known
        ``user`` (in place of any value, or added, in /recommend /feed /search /suggest), known
        ``trigger_item`` and ``history[].item``, ``k`` within ``max_k``, a known ``user_id``
        path parameter. Item ids in paths are left alone (DELETE /items would empty the
        catalogue). -> whether anything changed."""
        changed = False

        def pick(pool: tuple[str, ...], value: Any, always: bool = False) -> Any:
            nonlocal changed
            if pool and (always or isinstance(value, str)) and rng.random() < share:
                changed = True
                return rng.choice(pool)
            return value

        body = case.body if isinstance(case.body, dict) else None
        if body is not None and case.operation.path in WHO_PATHS:
            user = pick(self.users, body.get("user"), always=True)  # set, null or missing
            if user is not None or "user" in body:
                body["user"] = user
            if "trigger_item" in body:
                body["trigger_item"] = pick(self.items, body["trigger_item"])
            history = body.get("history")
            for event in history if isinstance(history, list) else []:  # negative: any type
                if isinstance(event, dict) and "item" in event:
                    event["item"] = pick(self.items, event["item"])
            k = body.get("k")
            if isinstance(k, int) and not isinstance(k, bool) and k > self.max_k \
                    and rng.random() < share:
                body["k"], changed = rng.randint(1, self.max_k), True
        events = body.get("events") if body is not None and case.operation.path == \
            "/feedback" else None
        if isinstance(events, list) and rng.random() < share:  # all events of the request
            for event in events:
                if isinstance(event, dict):
                    changed |= _complete_feedback(event, rng, self)
        if isinstance(case.path_parameters, dict) and "user_id" in case.path_parameters:
            case.path_parameters["user_id"] = pick(self.users, case.path_parameters["user_id"])
        return changed


def _complete_feedback(event: dict[str, Any], rng: random.Random, known: KnownIds) -> bool:
    """Give a feedback event what its kind needs (an item, a query, dwell_ms), known ids for
    user and item: the schema cannot say so, so random events are nearly always a 422."""
    kind = event.get("kind")
    if kind not in ("impression", "click", "skip", "dwell", "query"):
        return False
    if known.users:
        event["user"] = rng.choice(known.users)
    if kind == "query":
        event["query"] = event.get("query") if isinstance(event.get("query"), str) \
            and event["query"] else "red lipstick"
    elif known.items:
        event["item"] = rng.choice(known.items)
    if kind == "dwell" and not isinstance(event.get("dwell_ms"), int):
        event["dwell_ms"] = rng.randint(0, 60000)
    return True


@dataclass
class EndpointResult:
    label: str  # "POST /recommend"
    requests: int = 0
    realised: int = 0  # requests whose ids were swapped for known ones (KnownIds)
    statuses: dict[str, int] = field(default_factory=dict)  # "422" -> count
    fields: dict[str, int] = field(default_factory=dict)  # 4xx per field named (its prefix)
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


def known_ids(base_url: str, n_users: int = 200, n_histories: int = 20) -> KnownIds:
    """Users from ``GET /users``, items from the first users' ``GET /users/{id}/history``."""
    import httpx

    base = base_url.rstrip("/")
    users = [u["user"] for u in httpx.get(f"{base}/users", params={"limit": n_users},
                                          timeout=60).raise_for_status().json()["users"]]
    items: dict[str, None] = {}
    for user in users[:n_histories]:
        events = httpx.get(f"{base}/users/{quote(user, safe='')}/history",
                           timeout=60).raise_for_status().json()["events"]
        items.update((e["item"], None) for e in events if e["item"] is not None)
    return KnownIds(tuple(users), tuple(items))


def load_schema(base_url: str, timeout_s: float = 30.0) -> Any:
    """The OpenAPI schema a live server publishes at ``/openapi.json``."""
    import schemathesis

    return schemathesis.openapi.from_url(base_url.rstrip("/") + "/openapi.json",
                                         config=schemathesis.Config(), timeout=timeout_s)


def operations(schema: Any) -> list[Any]:
    """Every operation of ``schema``, in the document's order (a broken one raises)."""
    return [result.ok() for result in schema.get_all_operations()]


def run(schema: Any, config: FuzzConfig, base_url: str | None = None,
        known: KnownIds | None = None, progress: Any = None) -> list[EndpointResult]:
    """Fuzz every operation of ``schema`` not in ``config.exclude`` (``known``: real ids to
    put into a share of the requests); ``progress(result)`` is called after each endpoint."""
    out = []
    for op in operations(schema):
        if op.label in config.exclude:
            continue
        result = EndpointResult(op.label)
        for mode in config.modes:
            _fuzz(op, mode, config, base_url, known or KnownIds(), result)
        out.append(result)
        if progress is not None:
            progress(result)
    return out


def _fuzz(op: Any, mode: str, config: FuzzConfig, base_url: str | None, known: KnownIds,
          result: EndpointResult) -> None:
    import requests
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import strategies as st
    from hypothesis import seed as hseed
    from hypothesis.errors import Unsatisfiable
    from schemathesis import GenerationMode

    statuses: Counter = Counter(result.statuses)
    session = requests.Session()

    def one(case: Any, salt: int) -> None:
        if known.realise(case, random.Random(salt), config.real_share):
            result.realised += 1
        try:
            response = case.call(base_url=base_url, session=session, timeout=config.timeout_s)
        except requests.RequestException as exc:  # the server hung up: as bad as a 5xx
            status, body = 599, f"no response: {type(exc).__name__}: {exc}".encode()
        else:
            status, body = response.status_code, response.content
        statuses[str(status)] += 1
        result.requests += 1
        why = problem(status, body)
        if why is None and 400 <= status < 500:
            name = json.loads(body)["field"].split(".")[0]
            result.fields[name] = result.fields.get(name, 0) + 1
        if why is not None:
            result.n_failures += 1
            if len(result.failures) < config.max_failures:
                result.failures.append({"mode": mode, "status": status, "problem": why,
                                        "request": case.as_curl_command()})

    test = given(op.as_strategy(generation_mode=GenerationMode(mode)),
                 st.integers(0, 2**32 - 1))(one)
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


__all__ = ["EndpointResult", "FuzzConfig", "KnownIds", "as_dict", "known_ids", "load_schema",
           "operations", "problem", "run", "summary", "unavailable"]
