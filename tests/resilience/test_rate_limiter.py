"""Rate limiter: token bucket arithmetic, wait and reject modes, fairness, cancellation, telemetry."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from otelres import config
from otelres.resilience import (
    LimiterStats,
    LocalTokenBucket,
    RateLimiter,
    RateLimitExceededError,
    TokenBucketBackend,
    all_limiters,
)
from otelres.resilience import _rate_limiter as limiter_module
from otelres.testing import FakeClock, TelemetryCapture, capture_telemetry


def fake(clock: FakeClock, **kwargs: Any) -> RateLimiter:
    kwargs.setdefault("rate", 10.0)
    return RateLimiter("svc", clock=clock, sleep=clock.sleep, async_sleep=clock.async_sleep, **kwargs)


def assert_within_budget(stamps: list[float], rate: float, capacity: float) -> None:
    """No window [t_i, t_j] holds more grants than capacity + rate x (t_j - t_i)."""
    stamps = sorted(stamps)
    slack = 0.02  # scheduling jitter of the timestamps themselves, in seconds
    for i in range(len(stamps)):
        for j in range(i, len(stamps)):
            granted = j - i + 1
            allowed = capacity + rate * (stamps[j] - stamps[i] + slack)
            assert granted <= allowed + 1e-9, (i, j, granted, allowed)


# ---------------------------------------------------------------------------- bucket
def test_starts_full_by_default(clock: FakeClock) -> None:
    """A new limiter grants its whole capacity at once, then has no tokens left."""
    limiter = fake(clock, capacity=5, mode="reject")
    assert all(limiter.try_acquire() for _ in range(5))
    assert not limiter.try_acquire()
    assert limiter.available() == pytest.approx(0.0)


def test_start_empty_fills_at_rate(clock: FakeClock) -> None:
    """With start_full=False the bucket starts empty and fills at the rate."""
    limiter = fake(clock, capacity=5, start_full=False, mode="reject")
    assert not limiter.try_acquire()
    clock.advance(0.25)
    assert limiter.try_acquire(2)
    assert not limiter.try_acquire()


def test_refill_never_exceeds_capacity(clock: FakeClock) -> None:
    """An idle limiter accumulates at most capacity tokens."""
    limiter = fake(clock, capacity=3)
    clock.advance(3600)
    assert limiter.available() == 3.0


def test_default_capacity_is_one_second_of_rate() -> None:
    """Without capacity the burst is one second of rate, and at least one token."""
    assert RateLimiter("a", rate=7).capacity == 7
    assert RateLimiter("b", rate=0.2).capacity == 1


def test_weighted_cost(clock: FakeClock) -> None:
    """acquire(cost) takes cost tokens at once."""
    limiter = fake(clock, capacity=10, mode="reject")
    limiter.acquire(7)
    assert limiter.available() == pytest.approx(3)
    with pytest.raises(RateLimitExceededError):
        limiter.acquire(4)
    assert limiter.available() == pytest.approx(3)


@pytest.mark.parametrize("cost", [0, -1, 11])
def test_impossible_cost_is_a_clear_error(clock: FakeClock, cost: float) -> None:
    """A cost of zero, below zero or above capacity raises ValueError naming the cost."""
    limiter = fake(clock, capacity=10)
    with pytest.raises(ValueError, match="cost"):
        limiter.acquire(cost)
    with pytest.raises(ValueError, match="cost"):
        asyncio.run(limiter.acquire_async(cost))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"rate": 0}, "rate"),
        ({"rate": 1, "capacity": -1}, "capacity"),
        ({"rate": 1, "mode": "drop"}, "mode"),
        ({"rate": 1, "max_wait": -1}, "max_wait"),
        ({}, "rate"),
    ],
)
def test_bad_arguments_are_named(kwargs: dict[str, Any], message: str) -> None:
    """Invalid arguments raise at construction with a message naming the argument."""
    with pytest.raises((ValueError, TypeError), match=message):
        RateLimiter("svc", **kwargs)


# ---------------------------------------------------------------------------- modes
def test_reject_mode_raises_with_retry_after(clock: FakeClock) -> None:
    """Reject mode raises at once, saying when the tokens will be there."""
    limiter = fake(clock, rate=2, capacity=1, mode="reject")
    limiter.acquire()
    with pytest.raises(RateLimitExceededError) as info:
        limiter.acquire()
    assert info.value.retry_after == pytest.approx(0.5)
    assert info.value.name == "svc"


def test_sync_wait_mode_sleeps_for_tokens(clock: FakeClock) -> None:
    """Wait mode sleeps until the tokens exist and returns the seconds waited."""
    limiter = fake(clock, rate=4, capacity=1)
    assert limiter.acquire() == 0.0
    assert limiter.acquire() == pytest.approx(0.25)
    assert limiter.acquire() == pytest.approx(0.25)
    assert clock.slept == pytest.approx([0.25, 0.25])


def test_sync_wait_beyond_max_wait_rejects_at_once(clock: FakeClock) -> None:
    """A wait longer than max_wait raises at once, without sleeping and without taking tokens."""
    limiter = fake(clock, rate=1, capacity=2, max_wait=1.5)
    limiter.acquire(2)
    with pytest.raises(RateLimitExceededError) as info:
        limiter.acquire(2)
    assert info.value.retry_after == pytest.approx(2.0)
    assert clock.slept == []
    assert limiter.acquire(1) == pytest.approx(1.0)


def test_interrupted_sync_wait_refunds(clock: FakeClock) -> None:
    """A thread interrupted while sleeping for its tokens gives them back."""

    def interrupted(seconds: float) -> None:
        raise KeyboardInterrupt

    limiter = RateLimiter("svc", rate=1, capacity=1, clock=clock, sleep=interrupted)
    limiter.acquire()
    with pytest.raises(KeyboardInterrupt):
        limiter.acquire()
    assert limiter.available() == pytest.approx(0.0)


async def test_async_wait_and_reject_modes(clock: FakeClock) -> None:
    """acquire_async waits in wait mode and raises in reject mode, like the sync API."""
    waiting = fake(clock, rate=4, capacity=1)
    assert await waiting.acquire_async() == 0.0
    assert await waiting.acquire_async() == pytest.approx(0.25)
    rejecting = fake(clock, rate=4, capacity=1, mode="reject")
    await rejecting.acquire_async()
    with pytest.raises(RateLimitExceededError):
        await rejecting.acquire_async()


async def test_async_max_wait_counts_the_queue() -> None:
    """A newcomer whose turn would come after max_wait, given the queue ahead, is rejected at once."""
    limiter = RateLimiter("svc", rate=10, capacity=1, max_wait=0.25)
    limiter.acquire()
    first = asyncio.create_task(limiter.acquire_async())
    second = asyncio.create_task(limiter.acquire_async())
    await asyncio.sleep(0)
    started = time.monotonic()
    with pytest.raises(RateLimitExceededError):
        await limiter.acquire_async()
    # two tokens are queued ahead of us: our turn comes after 0.1 + 0.1 + 0.1 > 0.25 s
    assert time.monotonic() - started < 0.05
    await asyncio.gather(first, second)


# ---------------------------------------------------------------------------- fairness
async def test_async_waiters_are_served_in_arrival_order() -> None:
    """Queued async callers get their tokens first come, first served, even a big one first."""
    limiter = RateLimiter("svc", rate=100, capacity=3, start_full=False)
    order: list[str] = []

    async def take(label: str, cost: float) -> None:
        await limiter.acquire_async(cost)
        order.append(label)

    tasks = []
    for label, cost in [("big", 3), ("a", 1), ("b", 1), ("c", 1)]:
        tasks.append(asyncio.create_task(take(label, cost)))
        await asyncio.sleep(0)
    await asyncio.gather(*tasks)
    assert order == ["big", "a", "b", "c"]


async def test_cancelled_waiter_gives_its_place_back() -> None:
    """Cancelling a queued waiter lets the next one move up and consumes no tokens."""
    limiter = RateLimiter("svc", rate=5, capacity=1, start_full=False)
    started = time.monotonic()
    first = asyncio.create_task(limiter.acquire_async())
    await asyncio.sleep(0)
    second = asyncio.create_task(limiter.acquire_async())
    await asyncio.sleep(0.05)
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    await second
    elapsed = time.monotonic() - started
    # the second waiter got the first token (0.2 s), not the second (0.4 s)
    assert 0.15 < elapsed < 0.35
    assert limiter.stats().waiting == 0
    assert limiter.available() < 0.5


async def test_concurrent_tasks_never_exceed_the_budget() -> None:
    """200 tasks against 50/s never get more than capacity + rate x elapsed in any window."""
    rate, capacity = 50.0, 50.0
    limiter = RateLimiter("svc", rate=rate, capacity=capacity)
    stamps: list[float] = []

    async def worker() -> None:
        await limiter.acquire_async()
        stamps.append(time.monotonic())

    started = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(200)))
    elapsed = time.monotonic() - started
    assert len(stamps) == 200
    assert_within_budget(stamps, rate, capacity)
    # and it is not merely slow: (200 - 50) / 50 = 3 s of refill
    assert 2.9 < elapsed < 4.5


async def test_200_tasks_with_cancellations_respect_budget() -> None:
    """Mixed arrivals and cancellations still keep every window within budget, and cancelled ones take nothing."""
    rate, capacity = 50.0, 10.0
    limiter = RateLimiter("svc", rate=rate, capacity=capacity)
    stamps: list[float] = []

    async def worker() -> None:
        await limiter.acquire_async()
        stamps.append(time.monotonic())

    tasks = [asyncio.create_task(worker()) for _ in range(200)]
    await asyncio.sleep(0.3)
    for task in tasks[100:150]:
        task.cancel()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    cancelled = sum(isinstance(r, asyncio.CancelledError) for r in results)
    assert cancelled == 50
    assert len(stamps) == 150
    assert_within_budget(stamps, rate, capacity)


def test_sync_threads_never_exceed_the_budget() -> None:
    """Eight threads hammering one limiter never exceed capacity + rate x elapsed."""
    rate, capacity = 200.0, 20.0
    limiter = RateLimiter("svc", rate=rate, capacity=capacity)
    stamps: list[float] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(30):
            limiter.acquire()
            with lock:
                stamps.append(time.monotonic())

    started = time.monotonic()
    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    assert len(stamps) == 240
    assert_within_budget(stamps, rate, capacity)
    assert elapsed > (240 - capacity) / rate * 0.95
    stats = limiter.stats()
    assert stats.acquired + stats.waited == 240


# ---------------------------------------------------------------------------- calls
def test_call_and_decorator_take_one_token(clock: FakeClock) -> None:
    """call() and the decorator take a token per call, sync and async alike."""
    limiter = fake(clock, capacity=4, mode="reject")

    @limiter
    def sync_fn(x: int) -> int:
        return x * 2

    @limiter
    async def async_fn(x: int) -> int:
        return x * 3

    assert sync_fn(2) == 4
    assert limiter.call(lambda: "c") == "c"
    assert asyncio.run(async_fn(2)) == 6

    async def coro() -> str:
        return "a"

    assert asyncio.run(limiter.call_async(coro)) == "a"
    with pytest.raises(RateLimitExceededError):
        sync_fn(1)
    assert sync_fn.__name__ == "sync_fn"


def test_stats_and_registry(clock: FakeClock) -> None:
    """stats() is a frozen snapshot; all_limiters() lists live limiters."""
    limiter = fake(clock, capacity=2, mode="reject")
    limiter.acquire()
    limiter.try_acquire()
    limiter.try_acquire()
    stats = limiter.stats()
    assert isinstance(stats, LimiterStats)
    assert (stats.acquired, stats.rejected, stats.waited, stats.capacity) == (2, 1, 0, 2)
    assert limiter in all_limiters()
    with pytest.raises(AttributeError):
        stats.acquired = 3  # type: ignore[misc]


def test_custom_backend_plugs_in(clock: FakeClock) -> None:
    """Any TokenBucketBackend can hold the tokens; rate and capacity come from it."""
    bucket = LocalTokenBucket(3, 6, clock=clock)
    assert isinstance(bucket, TokenBucketBackend)
    limiter = RateLimiter("svc", backend=bucket, mode="reject")
    assert (limiter.rate, limiter.capacity) == (3, 6)
    limiter.acquire(6)
    assert bucket.available() == 0
    with pytest.raises(ValueError, match="differs"):
        RateLimiter("svc", backend=bucket, rate=4)


def test_from_config() -> None:
    """from_config reads the seed's [resilience.rate_limits], burst, mode and max_wait."""
    cfg = config.config_from_dict(
        {
            "resilience": {
                "rate_limits": {"kraken": 10, "default": 2},
                "rate_limit_burst_seconds": 3,
                "rate_limit_mode": "reject",
                "rate_limit_max_wait_seconds": 4,
            }
        }
    )
    config.set_current(cfg)
    kraken = RateLimiter.from_config("kraken")
    assert (kraken.rate, kraken.capacity, kraken.mode, kraken.max_wait) == (10, 30, "reject", 4)
    assert RateLimiter.from_config("other").rate == 2
    config.set_current(config.Config())
    with pytest.raises(LookupError, match="rate_limits"):
        RateLimiter.from_config("kraken")


def test_backend_factory_is_used_by_from_config() -> None:
    """set_backend_factory makes from_config build its bucket through the factory."""
    built: list[tuple[str, float, float]] = []

    def factory(name: str, rate: float, capacity: float) -> LocalTokenBucket:
        built.append((name, rate, capacity))
        return LocalTokenBucket(rate, capacity)

    config.set_current(config.config_from_dict({"resilience": {"rate_limits": {"kraken": 5}}}))
    limiter_module.set_backend_factory(factory)
    try:
        limiter = RateLimiter.from_config("kraken")
    finally:
        limiter_module.set_backend_factory(None)
    assert built == [("kraken", 5.0, 5.0)]
    assert limiter.rate == 5


# ---------------------------------------------------------------------------- telemetry
@pytest.fixture(name="capture")
def _capture() -> TelemetryCapture:
    return capture_telemetry(install_global=False)


def test_telemetry(capture: TelemetryCapture, clock: FakeClock) -> None:
    """Outcomes are counted, waits recorded in a histogram and as span events, tokens gauged."""
    limiter = fake(clock, rate=2, capacity=2, meter_provider=capture.meter_provider)
    tracer = capture.tracer_provider.get_tracer("test")
    limiter.acquire()
    limiter.acquire()
    assert capture.points("otelres.limiter.wait.duration") == []
    with tracer.start_as_current_span("request"):
        limiter.acquire()
    by_outcome = {
        outcome: capture.value(
            "otelres.limiter.acquisitions", **{"limiter.name": "svc", "limiter.outcome": outcome}
        )
        for outcome in ("acquired", "waited", "rejected")
    }
    assert by_outcome["acquired"] == 2
    assert by_outcome["waited"] == 1
    (wait,) = capture.points("otelres.limiter.wait.duration", **{"limiter.name": "svc"})
    assert wait.count == 1
    assert wait.sum == pytest.approx(0.5)
    events = [e.name for e in capture.spans("request")[0].events]
    assert "otelres.limiter.wait" in events
    assert capture.points("otelres.limiter.available_tokens", **{"limiter.name": "svc"})


def test_rejection_event_and_count(capture: TelemetryCapture, clock: FakeClock) -> None:
    """A rejection is counted and becomes an otelres.limiter.rejected event on the active span."""
    limiter = RateLimiter(
        "rej", rate=1, capacity=1, mode="reject", clock=clock, meter_provider=capture.meter_provider
    )
    tracer = capture.tracer_provider.get_tracer("test")
    limiter.acquire()
    with tracer.start_as_current_span("request"), pytest.raises(RateLimitExceededError):
        limiter.acquire()
    assert (
        capture.value(
            "otelres.limiter.acquisitions", **{"limiter.name": "rej", "limiter.outcome": "rejected"}
        )
        == 1
    )
    (event,) = capture.spans("request")[0].events
    assert event.name == "otelres.limiter.rejected"
    assert event.attributes["limiter.name"] == "rej"


def test_waiters_on_two_event_loops_share_one_budget() -> None:
    """Tasks of two event loops in two threads queue on one limiter and stay within its budget."""
    rate, capacity = 40.0, 1.0
    limiter = RateLimiter("svc", rate=rate, capacity=capacity)
    stamps: list[float] = []
    lock = threading.Lock()

    async def many() -> None:
        async def one() -> None:
            await limiter.acquire_async()
            with lock:
                stamps.append(time.monotonic())

        await asyncio.wait_for(asyncio.gather(*(one() for _ in range(8))), 10)

    threads = [threading.Thread(target=asyncio.run, args=(many(),)) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(stamps) == 16
    assert_within_budget(stamps, rate, capacity)
    assert limiter.stats().waiting == 0


@settings(max_examples=60, deadline=None)
@given(
    rate=st.floats(0.5, 50),
    capacity=st.floats(1, 20),
    start_full=st.booleans(),
    steps=st.lists(st.tuples(st.sampled_from(["advance", "try", "reserve"]), st.floats(0, 3)), max_size=40),
)
def test_bucket_never_grants_more_than_its_budget(
    rate: float, capacity: float, start_full: bool, steps: list[tuple[str, float]]
) -> None:
    """Whatever the sequence, tokens granted never exceed initial tokens + rate x elapsed."""
    clock = FakeClock()
    bucket = LocalTokenBucket(rate, capacity, start_full=start_full, clock=clock)
    granted = 0.0
    for action, amount in steps:
        cost = max(0.01, min(capacity, amount))
        if action == "advance":
            clock.advance(amount)
        elif action == "try":
            wait = bucket.try_acquire(cost)
            if wait == 0.0:
                granted += cost
            else:
                assert wait == pytest.approx((cost - bucket.available()) / rate, rel=1e-6, abs=1e-9)
        else:
            wait = bucket.reserve(cost, max_wait=2.0)
            if wait is not None:
                assert wait <= 2.0
                granted += cost
                clock.advance(wait)  # the reserving caller sleeps until its tokens exist
        elapsed = clock() - 1000.0
        initial = capacity if start_full else 0.0
        assert granted <= initial + rate * elapsed + 1e-6
        assert bucket.available() <= capacity + 1e-9


class _UnreadableBucket(LocalTokenBucket):
    """A bucket whose store cannot report its level (like a shared store that is down)."""

    def available(self) -> float:
        raise ConnectionError("store down")


def test_unreadable_backend_leaves_stats_and_metrics_working(clock: FakeClock) -> None:
    """A backend that cannot report its tokens gives NaN in stats() and no gauge point, and grants go on."""
    import math

    capture = capture_telemetry(install_global=False)
    limiter = RateLimiter(
        "unreadable", backend=_UnreadableBucket(5, 5, clock=clock), meter_provider=capture.meter_provider
    )
    assert limiter.acquire() == 0.0
    stats = limiter.stats()
    assert math.isnan(stats.available)
    assert stats.acquired == 1
    assert capture.points("otelres.limiter.available_tokens", **{"limiter.name": "unreadable"}) == []
    assert (
        capture.value(
            "otelres.limiter.acquisitions", **{"limiter.name": "unreadable", "limiter.outcome": "acquired"}
        )
        == 1
    )


class _SharedBucket:
    """A TokenBucketBackend that is not in-process (as Redis is): it records which calls it got."""

    def __init__(self, rate: float, capacity: float, clock: FakeClock | None = None) -> None:
        self.inner = LocalTokenBucket(rate, capacity, **({"clock": clock} if clock else {}))
        self.calls: list[str] = []

    @property
    def rate(self) -> float:
        return self.inner.rate

    @property
    def capacity(self) -> float:
        return self.inner.capacity

    def try_acquire(self, cost: float) -> float:
        self.calls.append("try_acquire")
        return self.inner.try_acquire(cost)

    def reserve(self, cost: float, max_wait: float | None) -> float | None:
        self.calls.append("reserve")
        return self.inner.reserve(cost, max_wait)

    def refund(self, cost: float) -> None:
        self.calls.append("refund")
        self.inner.refund(cost)

    def available(self) -> float:
        return self.inner.available()

    async def try_acquire_async(self, cost: float) -> float:
        self.calls.append("try_acquire_async")
        return self.inner.try_acquire(cost)

    async def reserve_async(self, cost: float, max_wait: float | None) -> float | None:
        self.calls.append("reserve_async")
        return self.inner.reserve(cost, max_wait)


async def test_shared_backend_async_waiters_reserve_and_refund() -> None:
    """With a shared backend, async waiters reserve in the shared bucket; a cancelled one refunds."""
    shared = _SharedBucket(rate=10, capacity=1)
    assert isinstance(shared, TokenBucketBackend)
    limiter = RateLimiter("shared", backend=shared, max_wait=5)
    assert await limiter.acquire_async() == 0.0
    waiter = asyncio.create_task(limiter.acquire_async())
    await asyncio.sleep(0.02)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert shared.calls == ["reserve_async", "reserve_async", "refund"]
    assert await limiter.acquire_async() == pytest.approx(0.1, abs=0.05)
    rejecting = RateLimiter("shared-reject", backend=_SharedBucket(rate=1, capacity=1), mode="reject")
    await rejecting.acquire_async()
    with pytest.raises(RateLimitExceededError):
        await rejecting.acquire_async()


async def test_context_managers(clock: FakeClock) -> None:
    """``with`` and ``async with`` take one token for the block."""
    limiter = fake(clock, capacity=2, mode="reject")
    with limiter:
        pass
    async with limiter:
        pass
    with pytest.raises(RateLimitExceededError):
        async with limiter:
            pass
    assert limiter.stats().acquired == 2
