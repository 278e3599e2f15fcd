"""Micro-batching: concurrent requests answered by one batched call.

Requests of one endpoint wait in a queue. The model thread pulls: when it is free it takes
the requests queued (up to ``max_batch``), groups them by decoding parameters (``key``: beam,
exclude_seen, ...) and makes one call of ``run`` per group — one batched beam search instead
of one per request. The event loop only enqueues requests and receives each batch's answers
(one wake-up per batch); the model thread goes on to the next batch without waiting for it.

Waiting for company (``max_wait_ms``, ``wait_gap_ms``). Before taking a batch the free model
thread may wait for more requests: at most ``max_wait_ms``, and with ``wait_gap_ms`` > 0 (the
default) only when its previous batch of that endpoint had several requests, and only while
they keep coming (it stops after ``wait_gap_ms`` without one). So a lone client waits for
nothing, and under load the burst of requests that follows a batch's answers joins one batch
instead of two. The gain is larger than the bigger batch alone explains: while the model
thread waits, the event loop has the interpreter lock to itself to answer and read requests,
and while the model runs, the loop is mostly idle, so the two stall each other less
(measured with ``onefeed bench serve``: docs/SERVING.md "Latency and throughput").
``wait_gap_ms = 0`` is a fixed wait of ``max_wait_ms`` before every batch; ``max_wait_ms = 0``
is greedy.

Every model call (batched or not, catalogue updates too) runs on one worker thread
(``executor``): the model is loaded once per process and never used by two threads at once.
``enabled=False`` is the same server with batches of one: the one-request-at-a-time server
``onefeed bench serve`` compares against, so batching is the only difference measured.

A batch that fails with a request error (``PredictError``) is retried row by row, so one bad
request cannot fail its neighbours.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import defaultdict, deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable, Hashable

from onefeed.predict import PredictError

Run = Callable[[str, Hashable, list[Any]], list[Any]]
"""(endpoint, key, payloads) -> one result per payload (same order)."""


@dataclass
class _Job:
    key: Hashable
    payload: Any
    future: asyncio.Future


class ServerClosing(RuntimeError):
    """The batcher was closed with this request still queued."""


class MicroBatcher:
    def __init__(self, run: Run, executor: ThreadPoolExecutor, enabled: bool = True,
                 max_wait_ms: float = 0.0, max_batch: int = 64, wait_gap_ms: float = 0.0,
                 on_batch: Callable[[str, int], None] | None = None) -> None:
        self.run, self.executor = run, executor
        self.max_wait = max_wait_ms / 1000.0 if enabled else 0.0
        self.max_batch = max_batch if enabled else 1
        self.gap = wait_gap_ms / 1000.0
        self.on_batch = on_batch
        self.queues: dict[str, deque[_Job]] = defaultdict(deque)
        self._cond = threading.Condition()  # guards queues and _draining; notified per request
        self._draining: set[str] = set()  # endpoints with a drain on (or bound for) the thread
        self._last_batch: dict[str, int] = defaultdict(int)  # size of each endpoint's last batch
        self._closed = False

    def depth(self, endpoint: str) -> int:
        """Requests of ``endpoint`` waiting for the model now (read by the metrics gauge at
        scrape time)."""
        return len(self.queues.get(endpoint, ()))

    async def submit(self, endpoint: str, key: Hashable, payload: Any) -> Any:
        if self._closed:
            raise ServerClosing("the server is shutting down")
        job = _Job(key, payload, asyncio.get_running_loop().create_future())
        with self._cond:
            self.queues[endpoint].append(job)
            if endpoint not in self._draining:
                self._draining.add(endpoint)
                self._send(endpoint)
            elif self.max_wait:
                self._cond.notify_all()  # a drain waiting for company counts its batch again
        return await job.future

    def _send(self, endpoint: str) -> None:
        """(Lock held.) Queue a drain of ``endpoint`` on the model thread."""
        try:
            self.executor.submit(self._drain, endpoint)
        except RuntimeError:  # the executor is shut down: nothing will answer them
            self._fail_queued(endpoint)

    def _drain(self, endpoint: str) -> None:
        """On the model thread: answer one batch of ``endpoint``, then the next one if requests
        came meanwhile (submitted behind whatever else the thread has queued, e.g. a catalogue
        update, so nothing starves), after waiting for company (``_gather``) when the
        settings say so."""
        with self._cond:
            queue = self.queues[endpoint]
            if self.max_wait and (not self.gap or self._last_batch[endpoint] > 1):
                self._gather(queue)
            jobs = [queue.popleft() for _ in range(min(len(queue), self.max_batch))]
            self._last_batch[endpoint] = len(jobs)
        try:
            answers = self._answer(endpoint, jobs)
            if answers:
                self._deliver(answers)
        finally:
            with self._cond:
                if self.queues[endpoint] and not self._closed:
                    self._send(endpoint)
                else:
                    self._draining.discard(endpoint)

    def _gather(self, queue: deque[_Job]) -> None:
        """(Lock held, on the model thread.) Wait for company: until ``max_batch`` are queued,
        ``max_wait`` has passed, or (``gap`` > 0) no request came for ``gap``."""
        now = time.perf_counter()
        deadline, last, n = now + self.max_wait, now, len(queue)
        while n < self.max_batch and not self._closed:
            until = min(deadline, last + self.gap) if self.gap else deadline
            if until <= now:
                break
            self._cond.wait(until - now)
            now = time.perf_counter()
            if len(queue) > n:
                last, n = now, len(queue)

    def _answer(self, endpoint: str, jobs: list[_Job]
                ) -> list[tuple[_Job, Any, BaseException | None]]:
        groups: dict[Hashable, list[_Job]] = defaultdict(list)
        for job in jobs:
            groups[job.key].append(job)
        out: list[tuple[_Job, Any, BaseException | None]] = []
        for key, group in groups.items():
            live = [j for j in group if not j.future.cancelled()]
            if not live:
                continue
            if self.on_batch:
                self.on_batch(endpoint, len(live))
            try:
                results = self._call(endpoint, key, [j.payload for j in live])
                out += [(j, r, None) for j, r in zip(live, results)]
            except PredictError:  # isolate the bad request(s)
                for j in live:
                    try:
                        out.append((j, self._call(endpoint, key, [j.payload])[0], None))
                    except Exception as exc:  # noqa: BLE001 - delivered to its request
                        out.append((j, None, exc))
            except Exception as exc:  # noqa: BLE001 - delivered to every request
                out += [(j, None, exc) for j in live]
        return out

    def _call(self, endpoint: str, key: Hashable, payloads: list[Any]) -> list[Any]:
        out = self.run(endpoint, key, payloads)
        if len(out) != len(payloads):
            raise RuntimeError(f"{endpoint}: {len(out)} results for {len(payloads)} requests")
        return out

    @staticmethod
    def _deliver(answers: list[tuple[_Job, Any, BaseException | None]]) -> None:
        """From any thread: the answers reach their requests on their loop (one wake-up)."""
        by_loop: dict[asyncio.AbstractEventLoop, list] = defaultdict(list)
        for answer in answers:
            by_loop[answer[0].future.get_loop()].append(answer)
        for loop, some in by_loop.items():
            try:
                loop.call_soon_threadsafe(_settle_all, some)
            except RuntimeError:  # the loop is closed: nobody is waiting any more
                pass

    def _fail_queued(self, endpoint: str) -> None:
        """(Lock held.)"""
        queue = self.queues[endpoint]
        jobs = [queue.popleft() for _ in range(len(queue))]
        self._draining.discard(endpoint)
        if jobs:
            self._deliver([(j, None, ServerClosing("the server is shutting down"))
                           for j in jobs])

    async def close(self) -> None:
        """Stop taking requests; the queued ones fail with ``ServerClosing`` (the batch on the
        model thread, if any, still gets its answers)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            for endpoint in list(self.queues):
                self._fail_queued(endpoint)


def _settle_all(answers: list[tuple[_Job, Any, BaseException | None]]) -> None:
    for job, result, error in answers:
        if job.future.done():
            continue
        if error is not None:
            job.future.set_exception(error)
        else:
            job.future.set_result(result)
