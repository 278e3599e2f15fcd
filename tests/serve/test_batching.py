"""MicroBatcher on a fake model: what forms a batch, waiting for company, bad rows, closing."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from onefeed.predict import PredictError
from onefeed.serve.batching import MicroBatcher, ServerClosing


class FakeModel:
    """Doubles its payloads; records every call; the first call can be held until released."""

    def __init__(self, hold_first: bool = False) -> None:
        self.calls: list[list] = []
        self.log: list[str] = []
        self.started, self.release = threading.Event(), threading.Event()
        if not hold_first:
            self.release.set()

    def __call__(self, endpoint: str, key, payloads: list) -> list:
        self.calls.append(list(payloads))
        self.log.append(f"call{len(self.calls)}")
        self.started.set()
        self.release.wait(10)
        if "bad" in payloads:
            raise PredictError("bad payload", "user")
        return [2 * p for p in payloads]


def _batcher(model: FakeModel, **kw) -> tuple[MicroBatcher, ThreadPoolExecutor]:
    pool = ThreadPoolExecutor(1)
    return MicroBatcher(model, pool, **kw), pool


async def _until(event: threading.Event) -> None:
    while not event.is_set():
        await asyncio.sleep(0.001)


def test_a_batch_is_what_queued_while_the_model_was_busy():
    model = FakeModel(hold_first=True)
    b, pool = _batcher(model, max_wait_ms=0)

    async def go():
        first = asyncio.ensure_future(b.submit("rec", (), 1))
        await _until(model.started)
        rest = [asyncio.ensure_future(b.submit("rec", (), p)) for p in (2, 3, 4, 5)]
        await asyncio.sleep(0.01)
        assert b.depth("rec") == 4  # queued behind the running call
        model.release.set()
        return await first, await asyncio.gather(*rest)

    assert asyncio.run(go()) == (2, [4, 6, 8, 10])
    assert model.calls == [[1], [2, 3, 4, 5]] and b.depth("rec") == 0
    pool.shutdown()


def test_groups_by_key_and_caps_at_max_batch():
    model = FakeModel(hold_first=True)
    b, pool = _batcher(model, max_batch=2)

    async def go():
        first = asyncio.ensure_future(b.submit("rec", "a", 0))
        await _until(model.started)
        rest = [asyncio.ensure_future(b.submit("rec", k, p))
                for k, p in (("a", 1), ("b", 2), ("a", 3))]
        await asyncio.sleep(0.01)
        model.release.set()
        return [await first] + list(await asyncio.gather(*rest))

    assert asyncio.run(go()) == [0, 2, 4, 6]
    assert model.calls == [[0], [1], [2], [3]]  # max 2 taken: keys a, b -> two calls; then a
    pool.shutdown()


def test_unbatched_answers_one_request_per_call():
    model = FakeModel()
    b, pool = _batcher(model, enabled=False, max_wait_ms=500)

    async def go():
        return await asyncio.gather(*(b.submit("rec", (), p) for p in range(6)))

    t = time.perf_counter()
    assert asyncio.run(go()) == [0, 2, 4, 6, 8, 10]
    assert time.perf_counter() - t < 0.4  # batches of one never wait for company
    assert sorted(map(len, model.calls)) == [1] * 6
    pool.shutdown()


def test_a_fixed_wait_gathers_requests_that_come_later():
    model = FakeModel()
    b, pool = _batcher(model, max_wait_ms=300, wait_gap_ms=0)

    async def go():
        first = asyncio.ensure_future(b.submit("rec", (), 1))
        await asyncio.sleep(0.05)
        later = [asyncio.ensure_future(b.submit("rec", (), p)) for p in (2, 3)]
        return await first, await asyncio.gather(*later)

    assert asyncio.run(go()) == (2, [4, 6])
    assert model.calls == [[1, 2, 3]]
    pool.shutdown()


def test_the_gap_wait_skips_lone_requests_and_stops_when_requests_stop():
    model = FakeModel(hold_first=True)
    b, pool = _batcher(model, max_wait_ms=5000, wait_gap_ms=500)

    async def go():
        t = time.perf_counter()
        first = asyncio.ensure_future(b.submit("rec", (), 1))
        await _until(model.started)
        lone = time.perf_counter() - t  # no batch before: no wait at all
        pair = [asyncio.ensure_future(b.submit("rec", (), p)) for p in (2, 3)]
        await asyncio.sleep(0.01)
        model.release.set()
        await first
        await asyncio.gather(*pair)  # [2, 3]: the previous batch was one, so no wait
        t = time.perf_counter()
        d = asyncio.ensure_future(b.submit("rec", (), 4))  # after a batch of two: waits...
        await asyncio.sleep(0.1)
        e = asyncio.ensure_future(b.submit("rec", (), 5))  # ...so this one joins it
        out = await d, await e
        return lone, out, time.perf_counter() - t

    lone, out, waited = asyncio.run(go())
    assert lone < 0.25 and out == (8, 10)  # a wait would have been the 0.5 s gap
    assert model.calls == [[1], [2, 3], [4, 5]]
    assert 0.55 < waited < 3.0  # ~0.1 + 0.5 s gap, far below max_wait's 5 s
    pool.shutdown()


def test_a_bad_request_fails_alone():
    model = FakeModel()
    b, pool = _batcher(model, max_wait_ms=200, wait_gap_ms=0)

    async def go():
        return await asyncio.gather(*(b.submit("rec", (), p) for p in (1, "bad", 3)),
                                    return_exceptions=True)

    good1, bad, good3 = asyncio.run(go())
    assert (good1, good3) == (2, 6)
    assert isinstance(bad, PredictError) and bad.field == "user"
    assert model.calls[0] == [1, "bad", 3] and sorted(map(len, model.calls[1:])) == [1, 1, 1]
    pool.shutdown()


def test_other_model_work_runs_between_batches():
    model = FakeModel(hold_first=True)
    b, pool = _batcher(model)

    async def go():
        first = asyncio.ensure_future(b.submit("rec", (), 1))
        await _until(model.started)
        second = asyncio.ensure_future(b.submit("rec", (), 2))
        await asyncio.sleep(0.01)
        update = asyncio.get_running_loop().run_in_executor(pool, model.log.append, "update")
        model.release.set()
        await asyncio.gather(first, second, update)

    asyncio.run(go())
    assert model.log == ["call1", "update", "call2"]  # a stream of batches cannot starve it
    pool.shutdown()


def test_close_fails_queued_requests_and_refuses_new_ones():
    model = FakeModel(hold_first=True)
    b, pool = _batcher(model)

    async def go():
        first = asyncio.ensure_future(b.submit("rec", (), 1))
        await _until(model.started)
        queued = [asyncio.ensure_future(b.submit("rec", (), p)) for p in (2, 3)]
        await asyncio.sleep(0.01)
        await b.close()
        outs = await asyncio.gather(*queued, return_exceptions=True)
        with pytest.raises(ServerClosing, match="shutting down"):
            await b.submit("rec", (), 4)
        model.release.set()
        return await first, outs

    first, outs = asyncio.run(go())
    assert first == 2 and all(isinstance(o, ServerClosing) for o in outs)
    assert model.calls == [[1]]
    pool.shutdown()
