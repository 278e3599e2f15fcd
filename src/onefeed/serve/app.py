"""``create_app(run_dir, settings)``: the FastAPI service over ``onefeed.predict.Predictor``.

Handlers are thin: validate (pydantic models in ``schemas``, setting-dependent bounds here),
turn the request into predictor rows, and hand them to the micro-batcher (``batching``), which
runs one batched model call per group of concurrent requests on the model thread. Every error
a client can cause is a 4xx JSON ``{"error": "...", "field": "..."}``; see docs/SERVING.md.
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from collections.abc import Awaitable, Callable
from typing import Any, Hashable

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from prometheus_client import (CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge,
                               Histogram, generate_latest)
from pydantic import BaseModel, ValidationError
from pydantic_core import to_json
from starlette.convertors import Convertor, register_url_convertor
from starlette.exceptions import HTTPException as StarletteHTTPException

from onefeed.predict import (Catalogue, CatalogueConflict, Context, Event, PredictError,
                             Predictor, UnknownItem, UnknownUser, Unsupported)
from onefeed.serve import browse
from onefeed.serve import schemas as S
from onefeed.serve.batching import MicroBatcher, ServerClosing
from onefeed.serve.guard import RequestGuard
from onefeed.serve.settings import ServeSettings

STATIC = Path(__file__).parent / "static"
BATCHED = ("recommend", "search", "suggest", "feed")
ERRORS = {400: {"model": S.ErrorResponse}, 404: {"model": S.ErrorResponse},
          409: {"model": S.ErrorResponse}, 413: {"model": S.ErrorResponse},
          422: {"model": S.ErrorResponse}}


class ServeError(Exception):
    def __init__(self, status: int, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.field = status, message, field


def _status(exc: PredictError) -> int:
    if isinstance(exc, (UnknownUser, UnknownItem)):
        return 404
    if isinstance(exc, CatalogueConflict):
        return 409
    if isinstance(exc, Unsupported):
        return 400
    return 422


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("onefeed_requests_total", "HTTP requests",
                                ["endpoint", "status"], registry=self.registry)
        self.latency = Histogram("onefeed_request_seconds", "request latency", ["endpoint"],
                                 buckets=(.001, .0025, .005, .01, .02, .03, .05, .1, .25, .5,
                                          1, 2.5, 10), registry=self.registry)
        self.depth = Gauge("onefeed_batch_queue_depth", "requests waiting for the model",
                           ["endpoint"], registry=self.registry)
        self.batch = Histogram("onefeed_batch_size", "rows per model call", ["endpoint"],
                               buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
                               registry=self.registry)
        self.feedback = Counter("onefeed_feedback_events_total", "feedback events committed",
                                registry=self.registry)
        self._answered: dict[tuple[str, int], tuple[Any, Any]] = {}

    def answered(self, endpoint: str, status: int, seconds: float) -> None:
        """Count one answered request and observe its latency (the labelled children are
        looked up once per (endpoint, status), not per request)."""
        pair = self._answered.get((endpoint, status))
        if pair is None:
            pair = (self.requests.labels(endpoint, str(status)), self.latency.labels(endpoint))
            self._answered[(endpoint, status)] = pair
        pair[0].inc()
        pair[1].observe(seconds)


class ServeState:
    """What one worker process holds: the predictor (swapped by reload), the batcher, the
    model thread, the feedback log and the metrics."""

    def __init__(self, run_dir: Path, settings: ServeSettings,
                 predictor: Predictor | None = None) -> None:
        self.run_dir, self.settings = Path(run_dir), settings
        self.predictor = predictor or self.load(self.run_dir)
        self.trigger = self.load_trigger() if settings.onebar else None
        self.metrics = Metrics()
        self.model_thread = ThreadPoolExecutor(1, thread_name_prefix="onefeed-model")
        self.io_thread = ThreadPoolExecutor(1, thread_name_prefix="onefeed-feedback")
        self.batcher = MicroBatcher(
            self.run_batch, self.model_thread, settings.batching,
            max_wait_ms=settings.max_wait_ms, max_batch=settings.max_batch,
            wait_gap_ms=settings.wait_gap_ms,
            on_batch=lambda e, n: self.metrics.batch.labels(e).observe(n))
        for endpoint in ("recommend", "search", "suggest"):  # /feed queues as recommend
            self.metrics.depth.labels(endpoint).set_function(
                lambda e=endpoint: self.batcher.depth(e))
        cache = Gauge("onefeed_state_cache", "history-state cache: rows kept, reads that hit, "
                      "rows encoded", ["what"], registry=self.metrics.registry)
        for what in ("entries", "hits", "misses"):
            cache.labels(what).set_function(lambda w=what: self.cache_stat(w))
        self.started, self.reloads = time.time(), 0
        self.reload_lock = threading.Lock()
        self._log: Any = None

    def load_trigger(self) -> Any:
        """The OneBar suggester of ``settings.onebar`` (loaded once; a bad path or method
        stops the start with the reason)."""
        from onefeed.onebar.serving import SuggestError, TriggerSuggester

        try:
            trigger = TriggerSuggester.from_dir(self.settings.onebar, self.settings.onebar_method)
        except (SuggestError, FileNotFoundError, ValueError) as exc:
            raise PredictError(f"onebar {self.settings.onebar!r}: {exc}", "onebar") from None
        _freeze_heap()  # its evidence cache is long-lived too
        return trigger

    def load(self, run_dir: Path) -> Predictor:
        pred = Predictor.from_run(run_dir, threads=self.settings.threads)
        pred.cache_states(self.settings.state_cache)
        pred.attach(Catalogue(self.settings.catalogue_path(run_dir)))
        _freeze_heap()
        return pred

    def cache_stat(self, what: str) -> float:
        cache = getattr(self.predictor.joint, "state_cache", None)
        return float(cache.stats()[what]) if cache is not None else 0.0

    # ---- feedback log (opened on first use) -------------------------------------------------
    def feedback_log(self) -> Any:
        if self._log is None:
            from onefeed.feedback import open_log

            self._log = open_log(self.settings.feedback_target(self.run_dir))
        return self._log

    # ---- the model thread ----------------------------------------------------------------------
    def run_batch(self, endpoint: str, key: Hashable, rows: list[Any]) -> list[Any]:
        pred = self.predictor  # one predictor for the whole batch, even during a reload
        pred.sync()
        s = self.settings
        k = max(r["k"] for r in rows)
        who = [r["who"] for r in rows]
        if endpoint in ("recommend", "feed"):
            (exclude_seen,) = key
            hits = pred.recommend(who, k, s.beam, exclude_seen, s.history_split)
        elif endpoint == "search":
            (fuse,) = key
            hits = pred.search([r["query"] for r in rows], who, k, s.beam, fuse, s.bm25_depth,
                               s.history_split)
        else:
            queries = pred.suggest(who, k, s.suggest_beam, s.suggest_max_words, s.history_split)
            return [q[:r["k"]] for q, r in zip(queries, rows)]
        return [{"items": h[:r["k"]], "model": pred.kind} for h, r in zip(hits, rows)]

    def close(self) -> None:
        self.model_thread.shutdown(wait=False, cancel_futures=True)
        self.io_thread.shutdown(wait=True)
        if self._log is not None:
            self._log.close()


def _freeze_heap() -> None:
    """Move everything loaded so far out of the garbage collector's reach (``gc.freeze``).

    A loaded predictor is ~200k long-lived Python objects; without this every full collection,
    which request traffic triggers every few seconds, walks them all and stops the worker for
    ~100 ms (measured: /recommend p99 at concurrency 32 fell from 158 to 38 ms). What a reload
    replaces stays frozen: the old predictor's arrays are freed by reference counting, and the
    few cyclic objects it leaves are the cost of a reload."""
    gc.collect()
    gc.freeze()


def create_app(run_dir: str | Path, settings: ServeSettings | None = None,
               predictor: Predictor | None = None) -> FastAPI:
    """The service for ``run_dir`` (a run ``Predictor.from_run`` loads). ``predictor``: an
    already loaded one (tests share one between apps)."""
    settings = settings or ServeSettings()
    state = ServeState(Path(run_dir), settings, predictor)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        await state.batcher.close()
        state.close()

    otel = settings.telemetry
    app = FastAPI(title="onefeed", version="0.1.0", lifespan=lifespan,
                  telemetry={"tracing": otel, "metrics": otel, "logs": otel},
                  description="Generative search, recommendation and query suggestion over "
                  "semantic IDs (docs/SERVING.md).")
    app.state.serve = state
    _errors(app)
    hot: dict[str, HotRoute] = {}
    _middleware(app, state, hot)
    _routes(app, state, hot if settings.hot_routes else {})
    return app


# ---- errors ------------------------------------------------------------------------------------
def _field(loc: tuple | list) -> str | None:
    parts = [str(p) for p in loc]
    if parts and parts[0] in ("body", "query", "path", "header"):  # where, not which field
        parts = parts[1:]
    # a model-level check (``give a user or ...``) sits at the location itself: name that
    return ".".join(parts) or (str(loc[0]) if len(loc) else "body")


def _error(status: int, message: str, field: str | None = None) -> JSONResponse:
    return JSONResponse({"error": message, "field": field}, status_code=status)


def _client_error(exc: ServeError | PredictError | ServerClosing) -> JSONResponse:
    if isinstance(exc, ServeError):
        return _error(exc.status, exc.message, exc.field)
    if isinstance(exc, ServerClosing):
        return _error(503, str(exc), None)
    return _error(_status(exc), str(exc), exc.field)


def _errors(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errs = exc.errors()
        first = errs[0] if errs else {"loc": (), "msg": "invalid request", "type": ""}
        if first.get("type") == "json_invalid":
            return _error(400, f"body is not valid JSON: {first.get('ctx', {}).get('error', '')}"
                          .rstrip(": "), "body")
        field = _field(first.get("loc", ()))
        msg = first.get("msg", "invalid")
        if first.get("type") == "missing" and field:
            msg = "field required"
        return _error(422, f"{field or 'body'}: {msg}", field)

    @app.exception_handler(ServeError)
    async def _serve(request: Request, exc: ServeError) -> JSONResponse:
        return _client_error(exc)

    @app.exception_handler(PredictError)
    async def _predict(request: Request, exc: PredictError) -> JSONResponse:
        return _client_error(exc)

    @app.exception_handler(ServerClosing)
    async def _closing(request: Request, exc: ServerClosing) -> JSONResponse:
        return _client_error(exc)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return _error(exc.status_code, str(exc.detail), None)

    @app.exception_handler(Exception)
    async def _any(request: Request, exc: Exception) -> JSONResponse:  # a bug, not the client
        return _error(500, f"internal error: {type(exc).__name__}: {exc}", None)


def _middleware(app: FastAPI, state: ServeState, hot: dict[str, HotRoute]) -> None:
    app.add_middleware(RequestGuard, limit=state.settings.max_body_bytes, known=_KNOWN,
                       observe=state.metrics.answered, hot=hot)


HotRoute = Callable[[bytes], Awaitable[Response | None]]


def _hot_route(model: type[BaseModel], handler: Callable[[Any], Awaitable[Response | None]]
               ) -> HotRoute:
    """A hot endpoint's body -> its answer, without FastAPI's routing and dependency
    resolution: the body is validated by the route's own request model and handed to the
    route's own handler; errors it raises answer as the exception handlers do. A body the
    model refuses, or a request the handler leaves to FastAPI (None), gives None: the request
    goes on to the FastAPI route, so every 400 / 422 is the route's own (docs/SERVING.md
    "Latency and throughput")."""

    async def answer(body: bytes) -> Response | None:
        try:
            req = model.model_validate_json(body)
        except ValidationError:
            return None
        try:
            return await handler(req)
        except (ServeError, PredictError, ServerClosing) as exc:
            return _client_error(exc)
        except Exception as exc:  # a bug, not the client: as the app's catch-all answers
            return _error(500, f"internal error: {type(exc).__name__}: {exc}", None)

    return answer


_KNOWN = frozenset({"recommend", "search", "suggest", "feed", "feedback", "items", "health",
                    "metrics", "admin", "docs", "openapi.json", "static", "root", "users"})


async def _trigger_suggest(state: ServeState, req: S.SuggestRequest) -> S.SuggestResponse:
    """OneBar: queries grounded in the watched item's evidence, or a reject ([REJECT])."""
    from onefeed.onebar.serving import SuggestError

    if req.history:
        raise ServeError(422, "history: not used with a trigger_item (the OneBar suggester "
                         "reads the user's logged queries); give user and trigger_item", "history")
    trigger = state.trigger
    loop = asyncio.get_running_loop()
    try:
        out = await loop.run_in_executor(state.model_thread, trigger.suggest, req.trigger_item,
                                         req.user, req.k)
    except SuggestError as exc:
        msg = str(exc)
        field = "user" if msg.startswith("user") else "trigger_item"
        raise ServeError(404 if "not found" in msg else 422, msg, field) from None
    return S.SuggestResponse(queries=out.queries, rejected=out.reject,
                             request_id=_request_id(), source=f"onebar:{out.method}")


# ---- routes --------------------------------------------------------------------------------------
def _who(state: ServeState, req: S.WhoRequest, extra: list[Event] | None = None) -> Any:
    """Check the request's user / history against the catalogue now (a 4xx before batching)."""
    pred, s = state.predictor, state.settings
    events = [Event(e.behaviour, e.item, e.query) for e in (req.history or [])] + (extra or [])
    if len(events) > s.max_history:
        raise ServeError(422, f"history: {len(events)} events; at most {s.max_history}",
                         "history")
    if req.user is not None:
        pred.user(req.user, "user")
    for n, e in enumerate(events):
        if e.item is not None:
            pred.item(e.item, f"history.{n}.item" if n < len(req.history or []) else
                      "trigger_item", live=False)
        if e.query is not None and len(e.query) > s.max_query_chars:
            raise ServeError(422, f"history.{n}.query: {len(e.query)} characters; at most "
                             f"{s.max_query_chars}", f"history.{n}.query")
    if not events:
        return req.user
    return Context(req.user, tuple(events))


def _k(state: ServeState, k: int) -> int:
    if k > state.settings.max_k:
        raise ServeError(422, f"k: {k} is over the limit of {state.settings.max_k}", "k")
    return k


_ID_PREFIX = uuid.uuid4().hex[:20]  # per process: ids stay unique across workers and restarts
_ID_COUNTER = itertools.count()


def _request_id() -> str:
    """32 hex characters, unique per response: a random per-process prefix and a counter
    (``uuid4`` per request cost ~4 % of the event loop's time under load)."""
    return f"{_ID_PREFIX}{next(_ID_COUNTER) & 0xFFFFFFFFFFFF:012x}"


def _json(body: dict[str, Any], status: int = 200) -> Response:
    """A hot endpoint's answer, serialised once by pydantic-core. Handlers build these dicts
    from the predictor's typed results in the shape of their declared ``response_model`` (the
    OpenAPI schema; the tests check every answer against it); returning the bytes skips FastAPI's
    second validation and serialisation of the same values, which under load was a tenth of the
    event loop's time per request."""
    return Response(to_json(body), status_code=status, media_type="application/json")


def _items(out: dict[str, Any], **extra: Any) -> Response:
    return _json({"items": [{"item": h.item, "title": h.title, "score": h.score}
                            for h in out["items"]],
                  "request_id": _request_id(), "model": out["model"], **extra})


class IdConvertor(Convertor):
    """A path segment holding any id, even one with ``/`` or a newline (``path`` stops at
    newlines), so an odd id is a 404 naming the field, never an unmatched route."""

    regex = "(?s:.*)"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("id", IdConvertor())


def _routes(app: FastAPI, state: ServeState, hot: dict[str, HotRoute]) -> None:
    """Every endpoint; the hot ones (the model's) also go into ``hot``, path -> answer."""
    s = state.settings

    @app.post("/recommend", response_model=S.ItemsResponse, responses=ERRORS)
    async def recommend(req: S.RecommendRequest) -> Response:
        """Next items for a user (their logged history) or an explicit history (NRIP)."""
        row = {"who": _who(state, req), "k": _k(state, req.k)}
        out = await state.batcher.submit("recommend", (req.exclude_seen,), row)
        return _items(out)

    @app.post("/feed", response_model=S.FeedResponse, responses=ERRORS)
    async def feed(req: S.RecommendRequest) -> Response:
        """The feed: for now plain recommendation (``source`` says so)."""
        row = {"who": _who(state, req), "k": _k(state, req.k)}
        out = await state.batcher.submit("recommend", (req.exclude_seen,), row)
        return _items(out, source="recommend")

    @app.post("/search", response_model=S.ItemsResponse, responses=ERRORS)
    async def search(req: S.SearchRequest) -> Response:
        """Items for a query, personalised by the user's history when one is given (NSIP)."""
        if not req.query.strip():
            raise ServeError(422, "query: empty (only white space)", "query")
        if len(req.query) > s.max_query_chars:
            raise ServeError(422, f"query: {len(req.query)} characters; at most "
                             f"{s.max_query_chars}", "query")
        if state.predictor.kind == "rec":
            raise Unsupported("search: this run is recommendation-only (onefeed train); serve "
                              "a joint or UniSearch run for search", "query")
        who = _who(state, req) if (req.user is not None or req.history) else None
        row = {"who": who, "k": _k(state, req.k), "query": req.query}
        out = await state.batcher.submit("search", (req.fuse_bm25,), row)
        return _items(out)

    @app.post("/suggest", response_model=S.SuggestResponse, responses=ERRORS)
    async def suggest(req: S.SuggestRequest) -> S.SuggestResponse | Response:
        """Queries the user is likely to search next (NSQP), after ``trigger_item`` if given."""
        if state.predictor.kind != "joint" and not (req.trigger_item and state.trigger):
            raise Unsupported("suggest: this run is recommendation-only (onefeed train) and "
                              "cannot generate queries; serve a joint run", "user")
        if req.trigger_item is not None and state.trigger is not None:
            return await _trigger_suggest(state, req)
        extra = [Event("rec_click", req.trigger_item)] if req.trigger_item else []
        row = {"who": _who(state, req, extra), "k": req.k}
        queries = await state.batcher.submit("suggest", (), row)
        return _json({"queries": queries, "rejected": False, "request_id": _request_id(),
                      "source": "nsqp"})

    async def suggest_hot(req: S.SuggestRequest) -> Response | None:
        if req.trigger_item is not None and state.trigger is not None:
            return None  # OneBar's answer is a response model: the route writes it
        out = await suggest(req)
        assert isinstance(out, Response)
        return out

    hot.update({"/recommend": _hot_route(S.RecommendRequest, recommend),
                "/feed": _hot_route(S.RecommendRequest, feed),
                "/search": _hot_route(S.SearchRequest, search),
                "/suggest": _hot_route(S.SuggestRequest, suggest_hot)})

    @app.post("/feedback", response_model=S.FeedbackResponse, responses=ERRORS)
    async def feedback(req: S.FeedbackRequest) -> S.FeedbackResponse:
        """Log impressions, clicks, skips, dwells and queries; ids come back after COMMIT."""
        from onefeed.feedback import FeedbackEvent

        if len(req.events) > s.max_feedback_events:
            raise ServeError(422, f"events: {len(req.events)}; at most "
                             f"{s.max_feedback_events} per request", "events")
        events = [FeedbackEvent(**e.model_dump()) for e in req.events]
        loop = asyncio.get_running_loop()
        log = await loop.run_in_executor(state.io_thread, state.feedback_log)
        ids = await loop.run_in_executor(state.io_thread, log.append, events)
        state.metrics.feedback.inc(len(ids))
        return S.FeedbackResponse(ids=[int(i) for i in ids], accepted=len(ids))

    @app.post("/items", response_model=S.ItemAdded, status_code=201, responses=ERRORS)
    async def add_item(req: S.ItemIn) -> S.ItemAdded:
        """Add an item: codes from its text's embedding, in the tries at once, journaled."""
        loop = asyncio.get_running_loop()
        pred = state.predictor
        out = await loop.run_in_executor(state.model_thread, pred.add_and_log, req.item,
                                         req.text, req.title)
        return S.ItemAdded(item=out["item"], codes=out["codes"], n_items=pred.n_live)

    @app.delete("/items/{item_id:id}", response_model=S.ItemRemoved, responses=ERRORS)
    async def remove_item(item_id: str) -> S.ItemRemoved:
        """Remove an item: no list contains it from the next request on."""
        loop = asyncio.get_running_loop()
        pred = state.predictor
        await loop.run_in_executor(state.model_thread, pred.remove_and_log, item_id)
        return S.ItemRemoved(item=item_id, removed=True, n_items=pred.n_live)

    @app.get("/health", response_model=S.Health)
    async def health() -> S.Health:
        d = state.predictor.describe()
        return S.Health(status="ok", run=d["run"], kind=d["kind"], n_items=d["n_items"],
                        n_users=d["n_users"], batching=s.batching, reloads=state.reloads,
                        uptime_s=round(time.time() - state.started, 3))

    @app.get("/metrics", response_class=Response)
    async def metrics() -> Response:
        """Prometheus text: request counts, latency histograms, queue depth, batch sizes."""
        return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.post("/admin/reload", response_model=S.ReloadResponse, responses=ERRORS)
    async def reload(req: S.ReloadRequest | None = None) -> S.ReloadResponse:
        """Load a checkpoint beside the serving one, then swap: no request fails meanwhile."""
        target = Path(req.run) if req and req.run else state.run_dir
        if not state.reload_lock.acquire(blocking=False):
            raise ServeError(409, "reload: another reload is in progress", "run")
        try:
            start = time.perf_counter()
            loop = asyncio.get_running_loop()
            try:  # loads on a plain thread: the model thread keeps serving the old predictor
                new = await loop.run_in_executor(None, state.load, target)
            except (PredictError, ValueError, OSError) as exc:  # OSError: ENAMETOOLONG too
                raise ServeError(400, f"run: {exc}", "run") from None
            state.predictor, state.run_dir = new, target
            state.reloads += 1
            return S.ReloadResponse(run=str(target), kind=new.kind, n_items=new.n_live,
                                    seconds=round(time.perf_counter() - start, 3))
        finally:
            state.reload_lock.release()

    app.include_router(browse.router(lambda: state.predictor))

    if STATIC.is_dir():
        from fastapi.staticfiles import StaticFiles

        app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", include_in_schema=False)
    async def index() -> Response:
        page = STATIC / "index.html"
        if page.is_file():
            return FileResponse(page)
        return JSONResponse({"service": "onefeed", "docs": "/docs", "health": "/health"})


__all__ = ["create_app", "ServeState"]


def app_from_env() -> FastAPI:
    """uvicorn factory for ``onefeed serve --workers N`` (each worker process builds its own
    app): the run from ``ONEFEED_SERVE_RUN``, the TOML file from ``ONEFEED_SERVE_CONFIG``."""
    import os

    from onefeed.serve.settings import load_settings

    run = os.environ.get("ONEFEED_SERVE_RUN")
    if not run:
        raise RuntimeError("ONEFEED_SERVE_RUN is not set (start the server with onefeed serve)")
    return create_app(run, load_settings(os.environ.get("ONEFEED_SERVE_CONFIG") or None))
