"""Timeout: async work is cancelled, sync callers stop waiting, breakers count it, telemetry."""

from __future__ import annotations

import asyncio
import contextvars
import threading
import time

import pytest

from otelres.resilience import CallTimeoutError, CircuitBreaker, Timeout
from otelres.testing import TelemetryCapture, capture_telemetry


async def test_async_work_is_cancelled() -> None:
    """An async call past its timeout is cancelled and the caller gets CallTimeoutError."""
    cleaned_up = asyncio.Event()

    async def slow() -> None:
        try:
            await asyncio.sleep(10)
        finally:
            cleaned_up.set()

    started = time.monotonic()
    with pytest.raises(CallTimeoutError) as info:
        await Timeout("svc", 0.05).call_async(slow)
    assert time.monotonic() - started < 1.0
    assert cleaned_up.is_set()
    assert isinstance(info.value, TimeoutError)
    assert info.value.timeout == 0.05
    assert info.value.name == "svc"


async def test_async_in_time_returns() -> None:
    """A call that finishes in time returns its result; its own errors pass unchanged."""

    async def quick() -> str:
        return "ok"

    async def fails() -> None:
        raise KeyError("k")

    timeout = Timeout("svc", 1.0)
    assert await timeout.call_async(quick) == "ok"
    with pytest.raises(KeyError):
        await timeout.call_async(fails)


async def test_functions_own_timeout_error_is_not_ours() -> None:
    """A TimeoutError raised by the function itself propagates as is, not as CallTimeoutError."""

    async def own() -> None:
        raise TimeoutError("socket")

    with pytest.raises(TimeoutError) as info:
        await Timeout("svc", 1.0).call_async(own)
    assert not isinstance(info.value, CallTimeoutError)


async def test_outer_cancellation_is_not_a_timeout() -> None:
    """Cancelling the caller raises CancelledError, not a timeout."""
    started = asyncio.Event()

    async def slow() -> None:
        started.set()
        await asyncio.sleep(10)

    task = asyncio.create_task(Timeout("svc", 5.0).call_async(slow))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


def test_sync_caller_stops_waiting_work_goes_on() -> None:
    """A sync call past its timeout raises CallTimeoutError at once; the work finishes in the background."""
    finished = threading.Event()

    def slow() -> None:
        time.sleep(0.3)
        finished.set()

    timeout = Timeout("svc", 0.05)
    started = time.monotonic()
    with pytest.raises(CallTimeoutError):
        timeout.call(slow)
    assert time.monotonic() - started < 0.25
    assert not finished.is_set()
    assert finished.wait(2.0)
    timeout.shutdown()


def test_sync_result_exception_and_context() -> None:
    """A sync call in time returns its result or raises its error, and sees the caller's context."""
    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")
    var.set("caller")
    timeout = Timeout("svc", 1.0)
    assert timeout.call(var.get) == "caller"
    assert timeout.call(lambda x: x + 1, 1) == 2
    with pytest.raises(ZeroDivisionError):
        timeout.call(lambda: 1 / 0)
    timeout.shutdown()


def test_sync_call_rejects_coroutine_functions() -> None:
    """Passing a coroutine function to the sync call is a clear error."""

    async def coro() -> None:
        return None

    with pytest.raises(TypeError, match="call_async"):
        Timeout("svc", 1.0).call(coro)


def test_decorator_and_validation() -> None:
    """The decorator keeps names for sync and async functions; a non-positive timeout is refused."""
    timeout = Timeout("svc", 1.0)

    @timeout
    def sync_fn() -> int:
        return 1

    @timeout
    async def async_fn() -> int:
        return 2

    assert sync_fn() == 1
    assert asyncio.run(async_fn()) == 2
    assert async_fn.__name__ == "async_fn"
    with pytest.raises(ValueError, match="seconds"):
        Timeout("svc", 0)
    timeout.shutdown()


async def test_breaker_counts_a_timeout_as_failure() -> None:
    """A breaker around the timeout records the timeout as a failure and opens."""
    breaker = CircuitBreaker("timeout-svc", failure_threshold=2)
    timeout = Timeout("svc", 0.01)

    async def hangs() -> None:
        await asyncio.sleep(1)

    for _ in range(2):
        with pytest.raises(CallTimeoutError):
            await breaker.call_async(timeout.call_async, hangs)
    assert breaker.get_state()["metrics"]["failure_calls"] == 2
    assert breaker.state.value == "open"


async def test_telemetry() -> None:
    """A timeout is counted with name and error type and becomes an event on the active span."""
    capture: TelemetryCapture = capture_telemetry(install_global=False)
    timeout = Timeout("svc", 0.01, meter_provider=capture.meter_provider)
    tracer = capture.tracer_provider.get_tracer("test")

    async def hangs() -> None:
        await asyncio.sleep(1)

    with tracer.start_as_current_span("request"), pytest.raises(CallTimeoutError):
        await timeout.call_async(hangs)
    assert capture.value("otelres.timeouts", **{"timeout.name": "svc", "error.type": "CallTimeoutError"}) == 1
    (event,) = capture.spans("request")[0].events
    assert event.name == "otelres.timeout"
    assert event.attributes["timeout.seconds"] == 0.01


def test_unused_timeout_releases_its_threads() -> None:
    """When a Timeout is garbage collected, the idle worker threads of its pool exit."""
    import gc

    timeout = Timeout("gc-me", 1.0)
    assert timeout.call(lambda: 1) == 1

    def workers() -> list[threading.Thread]:
        return [t for t in threading.enumerate() if t.name.startswith("otelres-timeout-gc-me")]

    assert workers()
    del timeout
    gc.collect()
    deadline = time.monotonic() + 5.0
    while workers() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert workers() == []
