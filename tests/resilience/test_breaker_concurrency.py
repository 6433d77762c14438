"""The breaker never serializes calls, limits probes exactly, and loses no counts under threads."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable

import pybreaker
import pytest

from otelres.resilience import CircuitBreakerOpenError
from otelres.resilience._breaker import BreakerState, CircuitBreaker
from otelres.testing import FakeClock


def _parallel(call: Callable[[], object], threads: int = 8) -> float:
    """Run *call* once in each of *threads* threads started together; the wall time taken."""
    barrier = threading.Barrier(threads + 1)
    errors: list[BaseException] = []

    def worker() -> None:
        barrier.wait()
        try:
            call()
        except BaseException as exc:
            errors.append(exc)

    workers = [threading.Thread(target=worker) for _ in range(threads)]
    for t in workers:
        t.start()
    barrier.wait()
    start = time.perf_counter()
    for t in workers:
        t.join()
    elapsed = time.perf_counter() - start
    assert errors == []
    return elapsed


def test_eight_slow_calls_run_in_parallel_through_one_closed_breaker() -> None:
    """8 threads each making a 100 ms call finish together, where pybreaker serializes them."""
    breaker = CircuitBreaker("parallel")
    ours = _parallel(lambda: breaker.call(time.sleep, 0.1))
    shared = pybreaker.CircuitBreaker()
    serialized = _parallel(lambda: shared.call(time.sleep, 0.1))
    assert ours < 0.4, f"8 parallel 100 ms calls took {ours:.3f} s"
    assert serialized > 0.75, f"pybreaker took {serialized:.3f} s (expected it to serialize)"
    assert ours < serialized
    assert breaker.get_state()["metrics"]["success_calls"] == 8


async def test_hundred_async_callers_on_half_open_run_exactly_the_allowed_probes() -> None:
    """Of 100 concurrent callers on a half-open breaker, exactly half_open_max_calls run."""
    clock = FakeClock()
    breaker = CircuitBreaker(
        "probes", failure_threshold=1, reset_timeout=5, half_open_max_calls=3, clock=clock,
        success_threshold=3,
    )
    with pytest.raises(ZeroDivisionError):
        breaker.call(lambda: 1 / 0)
    clock.advance(5)
    running = 0
    release = asyncio.Event()

    async def probe() -> str:
        nonlocal running
        running += 1
        await release.wait()
        return "ok"

    tasks = [asyncio.ensure_future(breaker.call_async(probe)) for _ in range(100)]
    done, pending = await asyncio.wait(tasks, timeout=0.2)
    # Every rejected caller finished without waiting for the probes, which still run.
    assert running == 3
    assert len(pending) == 3
    assert len(done) == 97
    assert all(isinstance(t.exception(), CircuitBreakerOpenError) for t in done)
    release.set()
    assert [await t for t in pending] == ["ok"] * 3
    assert breaker.state is BreakerState.CLOSED
    assert breaker.get_state()["metrics"]["rejected_calls"] == 97


def test_half_open_threads_get_exactly_the_allowed_probes() -> None:
    """With threads too, only half_open_max_calls probes run; the others are rejected at once."""
    clock = FakeClock()
    breaker = CircuitBreaker(
        "thread-probes", failure_threshold=1, reset_timeout=5, half_open_max_calls=2, clock=clock
    )
    with pytest.raises(ZeroDivisionError):
        breaker.call(lambda: 1 / 0)
    clock.advance(5)
    entered = threading.Semaphore(0)
    release = threading.Event()
    outcomes: list[str] = []
    lock = threading.Lock()

    def probe() -> str:
        entered.release()
        assert release.wait(5)
        return "ok"

    def caller() -> None:
        try:
            breaker.call(probe)
            result = "ran"
        except CircuitBreakerOpenError:
            result = "rejected"
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=caller) for _ in range(20)]
    for t in threads:
        t.start()
    for _ in range(2):
        assert entered.acquire(timeout=5)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        with lock:
            if len(outcomes) == 18:
                break
        time.sleep(0.005)
    with lock:
        assert outcomes == ["rejected"] * 18
    release.set()
    for t in threads:
        t.join()
    assert outcomes.count("ran") == 2


def test_counts_are_exact_under_thread_contention() -> None:
    """Success and failure counts lose no increments when many threads call at once."""
    breaker = CircuitBreaker("contention", failure_threshold=10**9)

    def many() -> None:
        for i in range(5000):
            if i % 10 == 0:
                try:
                    breaker.call(_fail)
                except KeyError:
                    pass
            else:
                breaker.call(int)

    _parallel(many, threads=8)
    metrics = breaker.get_state()["metrics"]
    assert metrics["success_calls"] == 8 * 4500
    assert metrics["failure_calls"] == 8 * 500


def _fail() -> None:
    raise KeyError("x")


def test_concurrent_failures_trip_exactly_once() -> None:
    """When many threads fail at once the breaker opens once and listeners hear it once."""
    opened: list[object] = []
    breaker = CircuitBreaker(
        "storm", failure_threshold=5, listeners=[opened.append], reset_timeout=60
    )
    start = threading.Barrier(16)

    def failing() -> None:
        start.wait()
        try:
            breaker.call(_fail)
        except (KeyError, CircuitBreakerOpenError):
            pass

    threads = [threading.Thread(target=failing) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert breaker.state is BreakerState.OPEN
    assert len(opened) == 1
