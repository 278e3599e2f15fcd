"""The request guard: body size limit, UTF-8 check and request metrics, as plain ASGI.

Every request passes here before routing. A body over ``limit`` bytes is a 413 (by its declared
``Content-Length`` before any byte is read, else as soon as the streamed body passes the
limit); a body that is not UTF-8 is a 400 naming the byte; each response is counted by endpoint
and status, and its latency observed. A JSON POST to a ``hot`` path (the model's endpoints) is
answered by the app's fast handler for it when that handler takes the body; otherwise, and for
every other request, the app routes it.

Plain ASGI rather than ``@app.middleware("http")``: Starlette's ``BaseHTTPMiddleware`` runs
every request through an anyio task group and memory streams, which cost more of the event
loop's time per request than the rest of the HTTP stack (measured with py-spy under
``onefeed bench serve``: the loop, not the model, was what saturated). The body read here is
replayed to the app as one message, so handlers parse it once.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]
Observe = Callable[[str, int, float], None]
"""(endpoint, status, seconds) -> None: record one answered request."""

WITH_BODY = frozenset({"POST", "PUT", "PATCH", "DELETE"})


Hot = Callable[[bytes], Awaitable[Any]]
"""body -> a response (an ASGI app) or None: the app's fast answer for one path."""


class RequestGuard:
    def __init__(self, app: App, limit: int, known: frozenset[str], observe: Observe,
                 hot: dict[str, Hot] | None = None) -> None:
        self.app, self.limit, self.known, self.observe = app, limit, known, observe
        self.hot = hot if hot is not None else {}

    def endpoint(self, path: str) -> str:
        name = path.strip("/").split("/")[0] or "root"
        return name if name in self.known else "other"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        endpoint = self.endpoint(scope.get("path", "/"))
        status = 500

        async def counted_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            if scope["method"] in WITH_BODY:
                body, problem = await self.read_body(scope, receive)
                if problem is not None:
                    await _reject(counted_send, *problem)
                    return
                hot = self.hot.get(scope["path"]) if scope["method"] == "POST" else None
                if hot is not None and _is_json(scope):
                    response = await hot(body)
                    if response is not None:
                        await response(scope, receive, counted_send)
                        return
                receive = _replay(body, receive)
            await self.app(scope, receive, counted_send)
        finally:
            self.observe(endpoint, status, time.perf_counter() - start)

    async def read_body(self, scope: Scope,
                        receive: Receive) -> tuple[bytes, tuple[int, str] | None]:
        """-> (body, None), or (b"", (status, message)) when the body must be refused."""
        declared = _header(scope, b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            return b"", (413, f"body: {declared} bytes is over the {self.limit}-byte limit")
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                return b"", (413, f"body: over the {self.limit}-byte limit")
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        try:
            body.decode("utf-8")
        except UnicodeDecodeError as exc:
            return b"", (400, f"body: not valid UTF-8 (byte {exc.start})")
        return body, None


def _is_json(scope: Scope) -> bool:
    kind = _header(scope, b"content-type")
    return kind is not None and kind.split(";")[0].strip().lower() == "application/json"


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return value.decode("latin-1")
    return None


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that yields the already read body once, then defers to the real one (a
    later call waits for the client's disconnect, as Starlette expects)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _reject(send: Send, status: int, message: str) -> None:
    payload = json.dumps({"error": message, "field": "body"}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(payload)).encode())]})
    await send({"type": "http.response.body", "body": payload})
