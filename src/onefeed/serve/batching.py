"""Micro-batching: concurrent requests answered by one batched call.

Requests of one endpoint wait in a queue. A batch is every request queued when the model
thread is free (up to ``max_batch``; ``max_wait_ms`` > 0 makes the first one also wait that
long for company), grouped by decoding parameters (``key``: beam, exclude_seen, ...); each
group is one call of ``run`` on the model thread — one batched beam search instead of one per
request. While that call runs, new requests queue up and form the next batch, so under load
batches fill without waiting, and an idle server adds no latency (the default, greedy
``max_wait_ms = 0``: a fixed wait only delays the lone request and, measured, bought no
throughput).

Every model call (batched or not, catalogue updates too) runs on one worker thread
(``model_executor``): the model is loaded once per process and never used by two threads at
once. ``enabled=False`` sends each request alone through the same thread: the
one-request-at-a-time server ``onefeed bench serve`` compares against.

A batch that fails with a request error (``PredictError``) is retried row by row, so one bad
request cannot fail its neighbours.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Hashable

from onefeed.predict import PredictError

Run = Callable[[str, Hashable, list[Any]], list[Any]]
"""(endpoint, key, payloads) -> one result per payload (same order)."""


@dataclass
class _Job:
    key: Hashable
    payload: Any
    future: asyncio.Future
    queued: float = field(default_factory=time.perf_counter)


class MicroBatcher:
    def __init__(self, run: Run, executor: ThreadPoolExecutor, enabled: bool = True,
                 max_wait_ms: float = 0.0, max_batch: int = 64,
                 on_batch: Callable[[str, int], None] | None = None) -> None:
        self.run, self.executor, self.enabled = run, executor, enabled
        self.max_wait, self.max_batch = max_wait_ms / 1000.0, max_batch
        self.on_batch = on_batch
        self.queues: dict[str, asyncio.Queue] = {}
        self.workers: dict[str, asyncio.Task] = {}
        self.pending: dict[str, int] = defaultdict(int)

    def depth(self, endpoint: str) -> int:
        """Requests of ``endpoint`` waiting for the model now (read by the metrics gauge at
        scrape time, so counting costs a request nothing more than an addition)."""
        return self.pending[endpoint]

    def _depth_changed(self, endpoint: str, delta: int) -> None:
        self.pending[endpoint] += delta

    async def submit(self, endpoint: str, key: Hashable, payload: Any) -> Any:
        loop = asyncio.get_running_loop()
        if not self.enabled:
            self._depth_changed(endpoint, 1)
            try:
                out = await loop.run_in_executor(self.executor, self._call, endpoint, key,
                                                 [payload])
            finally:
                self._depth_changed(endpoint, -1)
            if self.on_batch:
                self.on_batch(endpoint, 1)
            return out[0]
        if endpoint not in self.queues:
            self.queues[endpoint] = asyncio.Queue()
        if endpoint not in self.workers or self.workers[endpoint].done():
            self.workers[endpoint] = asyncio.create_task(self._worker(endpoint))
        job = _Job(key, payload, loop.create_future())
        self._depth_changed(endpoint, 1)
        await self.queues[endpoint].put(job)
        return await job.future

    def _call(self, endpoint: str, key: Hashable, payloads: list[Any]) -> list[Any]:
        out = self.run(endpoint, key, payloads)
        if len(out) != len(payloads):
            raise RuntimeError(f"{endpoint}: {len(out)} results for {len(payloads)} requests")
        return out

    async def _collect(self, queue: asyncio.Queue) -> list[_Job]:
        jobs = [await queue.get()]
        deadline = time.perf_counter() + self.max_wait
        while len(jobs) < self.max_batch:
            try:
                jobs.append(queue.get_nowait())
                continue
            except asyncio.QueueEmpty:
                pass
            left = deadline - time.perf_counter()
            if left <= 0:
                break
            try:
                jobs.append(await asyncio.wait_for(queue.get(), left))
            except asyncio.TimeoutError:
                break
        return jobs

    async def _worker(self, endpoint: str) -> None:
        loop = asyncio.get_running_loop()
        queue = self.queues[endpoint]
        while True:
            jobs = await self._collect(queue)
            groups: dict[Hashable, list[_Job]] = defaultdict(list)
            for job in jobs:
                groups[job.key].append(job)
            for key, group in groups.items():
                live = [j for j in group if not j.future.cancelled()]
                self._depth_changed(endpoint, -len(group))
                if not live:
                    continue
                if self.on_batch:
                    self.on_batch(endpoint, len(live))
                try:
                    out = await loop.run_in_executor(self.executor, self._call, endpoint, key,
                                                     [j.payload for j in live])
                except PredictError:  # isolate the bad request(s)
                    for j in live:
                        try:
                            one = await loop.run_in_executor(self.executor, self._call,
                                                             endpoint, key, [j.payload])
                            _settle(j, result=one[0])
                        except Exception as exc:  # noqa: BLE001 - delivered to its request
                            _settle(j, error=exc)
                    continue
                except Exception as exc:  # noqa: BLE001 - delivered to every request
                    for j in live:
                        _settle(j, error=exc)
                    continue
                for j, res in zip(live, out):
                    _settle(j, result=res)

    async def close(self) -> None:
        for task in self.workers.values():
            task.cancel()
        for task in self.workers.values():
            try:
                await task
            except (asyncio.CancelledError, Exception):  # noqa: BLE001
                pass
        self.workers.clear()


def _settle(job: _Job, result: Any = None, error: BaseException | None = None) -> None:
    if job.future.done():
        return
    if error is not None:
        job.future.set_exception(error)
    else:
        job.future.set_result(result)
