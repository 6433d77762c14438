"""Bulkhead: concurrency cap, bounded queue, timeouts, cancellation, sync/async, telemetry."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from otelres import config
from otelres.resilience import Bulkhead, BulkheadFullError
from otelres.testing import TelemetryCapture, capture_telemetry


async def test_caps_concurrent_async_calls() -> None:
    """No more than max_concurrent async calls run at once; queued ones run later."""
    bulkhead = Bulkhead("svc", max_concurrent=3, max_queue=10)
    running = peak = 0

    async def work() -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.02)
        running -= 1

    await asyncio.gather(*(bulkhead.call_async(work) for _ in range(12)))
    assert peak == 3
    assert bulkhead.in_flight == 0
    assert bulkhead.queued == 0


async def test_full_queue_rejects_at_once() -> None:
    """A call beyond max_concurrent + max_queue raises BulkheadFullError without waiting."""
    bulkhead = Bulkhead("svc", max_concurrent=1, max_queue=1)
    gate = asyncio.Event()

    async def blocked() -> None:
        await gate.wait()

    first = asyncio.create_task(bulkhead.call_async(blocked))
    second = asyncio.create_task(bulkhead.call_async(blocked))
    await asyncio.sleep(0.01)
    with pytest.raises(BulkheadFullError, match="full") as info:
        await bulkhead.call_async(blocked)
    assert info.value.name == "svc"
    gate.set()
    await asyncio.gather(first, second)


async def test_queue_timeout() -> None:
    """A queued call that gets no slot within queue_timeout is refused."""
    bulkhead = Bulkhead("svc", max_concurrent=1, max_queue=1, queue_timeout=0.05)
    gate = asyncio.Event()

    async def blocked() -> None:
        await gate.wait()

    holder = asyncio.create_task(bulkhead.call_async(blocked))
    await asyncio.sleep(0)
    with pytest.raises(BulkheadFullError, match="no slot within"):
        await bulkhead.call_async(blocked)
    assert bulkhead.queued == 0
    gate.set()
    await holder
    assert bulkhead.in_flight == 0


async def test_async_waiters_are_fifo() -> None:
    """Queued async calls get slots in arrival order."""
    bulkhead = Bulkhead("svc", max_concurrent=1, max_queue=5)
    order: list[int] = []

    async def work(i: int) -> None:
        order.append(i)
        await asyncio.sleep(0.001)

    tasks = []
    for i in range(5):
        tasks.append(asyncio.create_task(bulkhead.call_async(work, i)))
        await asyncio.sleep(0)
    await asyncio.gather(*tasks)
    assert order == [0, 1, 2, 3, 4]


async def test_cancelled_waiter_loses_no_slot() -> None:
    """Cancelling a queued caller removes it; slots are neither lost nor duplicated."""
    bulkhead = Bulkhead("svc", max_concurrent=1, max_queue=3)
    gate = asyncio.Event()

    async def blocked() -> None:
        await gate.wait()

    holder = asyncio.create_task(bulkhead.call_async(blocked))
    await asyncio.sleep(0)
    waiter = asyncio.create_task(bulkhead.call_async(blocked))
    after = asyncio.create_task(bulkhead.call_async(blocked))
    await asyncio.sleep(0)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert bulkhead.queued == 1
    gate.set()
    await asyncio.gather(holder, after)
    assert (bulkhead.in_flight, bulkhead.queued) == (0, 0)


def test_caps_concurrent_threads() -> None:
    """Threads share the cap: never more than max_concurrent run, the queue absorbs the rest."""
    bulkhead = Bulkhead("svc", max_concurrent=2, max_queue=10)
    lock = threading.Lock()
    running = peak = 0

    def work() -> None:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.02)
        with lock:
            running -= 1

    threads = [threading.Thread(target=bulkhead.call, args=(work,)) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert peak == 2
    assert bulkhead.in_flight == 0


def test_sync_full_and_queue_timeout() -> None:
    """A thread beyond the queue is refused at once; a queued one times out after queue_timeout."""
    bulkhead = Bulkhead("svc", max_concurrent=1, max_queue=1, queue_timeout=0.05)
    release = threading.Event()
    holder = threading.Thread(target=bulkhead.call, args=(release.wait,))
    holder.start()
    time.sleep(0.02)
    errors: list[BaseException] = []

    def queued() -> None:
        try:
            bulkhead.call(lambda: None)
        except BulkheadFullError as exc:
            errors.append(exc)

    waiter = threading.Thread(target=queued)
    waiter.start()
    time.sleep(0.01)
    with pytest.raises(BulkheadFullError, match="full"):
        bulkhead.call(lambda: None)
    waiter.join()
    assert len(errors) == 1
    assert "no slot within" in str(errors[0])
    release.set()
    holder.join()
    assert bulkhead.in_flight == 0


async def test_threads_and_tasks_share_slots() -> None:
    """A slot released by a thread goes to a waiting task."""
    bulkhead = Bulkhead("svc", max_concurrent=1, max_queue=2)
    release = threading.Event()
    holder = threading.Thread(target=bulkhead.call, args=(release.wait,))
    holder.start()
    await asyncio.sleep(0.02)
    assert bulkhead.in_flight == 1

    async def quick() -> str:
        return "ran"

    task = asyncio.create_task(bulkhead.call_async(quick))
    await asyncio.sleep(0.01)
    assert not task.done()
    release.set()
    assert await asyncio.wait_for(task, 2.0) == "ran"
    holder.join()
    assert bulkhead.in_flight == 0


def test_error_releases_the_slot() -> None:
    """A call that raises gives its slot back."""
    bulkhead = Bulkhead("svc", max_concurrent=1)
    with pytest.raises(ZeroDivisionError):
        bulkhead.call(lambda: 1 / 0)
    assert bulkhead.call(lambda: "ok") == "ok"


def test_decorator_settings_and_validation() -> None:
    """Decorator keeps names; from_settings reads [resilience.bulkheads.<name>]; bad limits are refused."""
    bulkhead = Bulkhead("svc", max_concurrent=1)

    @bulkhead
    async def fetch() -> int:
        return 1

    assert asyncio.run(fetch()) == 1
    assert fetch.__name__ == "fetch"
    cfg = config.config_from_dict(
        {
            "resilience": {
                "bulkheads": {"orders": {"max_concurrent": 4, "max_queue": 8, "queue_timeout_seconds": 2}}
            }
        }
    )
    built = Bulkhead.from_settings("orders", cfg.resilience.bulkheads["orders"])
    assert (built.max_concurrent, built.max_queue, built.queue_timeout) == (4, 8, 2)
    with pytest.raises(ValueError, match="max_concurrent"):
        Bulkhead("svc", max_concurrent=0)


async def test_telemetry() -> None:
    """In-flight and limit gauges, rejection counter, and a rejection event on the active span."""
    capture: TelemetryCapture = capture_telemetry(install_global=False)
    bulkhead = Bulkhead("orders", max_concurrent=1, meter_provider=capture.meter_provider)
    tracer = capture.tracer_provider.get_tracer("test")
    gate = asyncio.Event()

    async def blocked() -> None:
        await gate.wait()

    holder = asyncio.create_task(bulkhead.call_async(blocked))
    await asyncio.sleep(0)
    assert capture.value("otelres.bulkhead.in_flight", **{"bulkhead.name": "orders"}) == 1
    assert capture.value("otelres.bulkhead.limit", **{"bulkhead.name": "orders"}) == 1
    with tracer.start_as_current_span("request"), pytest.raises(BulkheadFullError):
        await bulkhead.call_async(blocked)
    gate.set()
    await holder
    assert capture.value("otelres.bulkhead.rejections", **{"bulkhead.name": "orders"}) == 1
    assert capture.value("otelres.bulkhead.in_flight", **{"bulkhead.name": "orders"}) == 0
    (event,) = capture.spans("request")[0].events
    assert event.name == "otelres.bulkhead.rejected"


async def test_context_managers() -> None:
    """``with`` and ``async with`` hold a slot for the block and give it back, even on error."""
    bulkhead = Bulkhead("svc", max_concurrent=1)
    with bulkhead:
        assert bulkhead.in_flight == 1
        with pytest.raises(BulkheadFullError):
            bulkhead.acquire()
    seen: list[int] = []

    async def fails_inside() -> None:
        async with bulkhead:
            seen.append(bulkhead.in_flight)
            raise KeyError("inside")

    with pytest.raises(KeyError):
        await fails_inside()
    assert seen == [1]
    assert bulkhead.in_flight == 0


async def test_random_cancellations_never_leak_slots() -> None:
    """Under many callers with random cancellations and queue timeouts, the cap holds and every slot comes back."""
    import random

    rng = random.Random(7)
    bulkhead = Bulkhead("svc", max_concurrent=3, max_queue=50, queue_timeout=0.05)
    running = peak = 0

    async def work() -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        try:
            await asyncio.sleep(rng.uniform(0, 0.01))
        finally:
            running -= 1

    tasks = [asyncio.create_task(bulkhead.call_async(work)) for _ in range(80)]
    for _ in range(25):
        await asyncio.sleep(rng.uniform(0, 0.004))
        rng.choice(tasks).cancel()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    kinds = {type(r).__name__ for r in results}
    assert kinds <= {"NoneType", "CancelledError", "BulkheadFullError"}
    assert peak <= 3
    assert (bulkhead.in_flight, bulkhead.queued) == (0, 0)
    assert await bulkhead.call_async(asyncio.sleep, 0) is None


def test_slot_handed_to_an_interrupted_waiter_is_not_lost() -> None:
    """A thread interrupted (KeyboardInterrupt) just as a slot was handed to it passes the slot on."""
    bulkhead = Bulkhead("interrupted", max_concurrent=1, max_queue=1)
    bulkhead.acquire()  # the holder

    class HandOverThenInterrupt:
        """The wait of the queued thread: the holder releases (a hand-over), then Ctrl-C lands."""

        def wait(self, timeout: float | None = None) -> bool:
            bulkhead._sync_grants += 1  # what the holder's release() does for a queued thread
            raise KeyboardInterrupt

        def notify(self) -> None:
            pass

    bulkhead._cond = HandOverThenInterrupt()  # type: ignore[assignment]
    with pytest.raises(KeyboardInterrupt):
        bulkhead.acquire()
    assert bulkhead.in_flight == 0
    assert bulkhead.queued == 0
    bulkhead.acquire()  # the slot is free again, at once
    assert bulkhead.in_flight == 1
