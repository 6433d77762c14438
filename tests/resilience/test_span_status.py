"""Which otelres spans turn red: only the outermost one, and only when the caller sees the error."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from opentelemetry.trace import StatusCode

from otelres import _otel
from otelres.resilience import (
    CircuitBreaker,
    Fallback,
    Policy,
    RateLimiter,
    RateLimitExceededError,
    Retry,
)
from otelres.testing import FakeClock, TelemetryCapture

Call = Callable[[Any, Callable[[], Any]], Any]


@pytest.fixture(name="call", params=["sync", "async"])
def _call(request: pytest.FixtureRequest) -> Call:
    """Call a guard's ``call`` with a sync function, or ``call_async`` with its async twin."""
    if request.param == "sync":
        return lambda guard, fn: guard.call(fn)

    def run_async(guard: Any, fn: Callable[[], Any]) -> Any:
        async def afn() -> Any:
            return fn()

        return asyncio.run(guard.call_async(afn))

    return run_async


@pytest.fixture(name="capture")
def _capture() -> TelemetryCapture:
    from otelres.testing import capture_telemetry

    return capture_telemetry(install_global=False)


def failing(*errors: Exception) -> Callable[[], str]:
    """A function raising *errors* one per call, then returning "ok"."""
    pending = list(errors)

    def fn() -> str:
        if pending:
            raise pending.pop(0)
        return "ok"

    return fn


def retry(capture: TelemetryCapture, clock: FakeClock, **kwargs: Any) -> Retry:
    return Retry(
        "svc",
        initial_delay=0,
        clock=clock,
        sleep=clock.sleep,
        async_sleep=clock.async_sleep,
        tracer_provider=capture.tracer_provider,
        meter_provider=capture.meter_provider,
        **kwargs,
    )


@contextmanager
def request(capture: TelemetryCapture) -> Iterator[None]:
    """The application's own span around a call (attempt spans are its children)."""
    with capture.tracer_provider.get_tracer("app").start_as_current_span("request"):
        yield


def statuses(capture: TelemetryCapture, name: str) -> list[StatusCode]:
    return [span.status.status_code for span in capture.spans(name)]


def test_retried_attempts_are_not_errors(capture: TelemetryCapture, clock: FakeClock, call: Call) -> None:
    """An attempt whose error was retried keeps status UNSET, with error.type set."""
    with request(capture):
        assert call(retry(capture, clock), failing(ConnectionError(), ConnectionError())) == "ok"
    # Mode events: the first attempt runs without a span; attempts 2 (failed) and 3 (ok) get one.
    second, third = capture.spans("otelres.retry.attempt")
    assert second.status.status_code is StatusCode.UNSET
    assert second.attributes["error.type"] == "ConnectionError"
    assert third.status.status_code is StatusCode.UNSET
    assert "error.type" not in third.attributes


def test_attempt_not_retried_is_the_error(capture: TelemetryCapture, clock: FakeClock, call: Call) -> None:
    """The attempt whose error reaches the caller (here: not in retry_on) is ERROR."""
    fn = failing(ConnectionError(), ValueError())
    with pytest.raises(ValueError), request(capture):
        call(retry(capture, clock, retry_on=ConnectionError), fn)
    assert statuses(capture, "otelres.retry.attempt") == [StatusCode.ERROR]


def test_unsafe_non_idempotent_attempt_is_the_error(
    capture: TelemetryCapture, clock: FakeClock, call: Call
) -> None:
    """An attempt not retried because retry_safe said no is the ERROR the caller gets."""
    guard = retry(capture, clock, idempotent=False, retry_safe=lambda exc: False, span_mode="always")
    with pytest.raises(TimeoutError):
        call(guard, failing(TimeoutError()))
    # In mode always the attempt sits inside the otelres.retry span: only that one is red.
    assert statuses(capture, "otelres.retry.attempt") == [StatusCode.UNSET]
    assert statuses(capture, "otelres.retry") == [StatusCode.ERROR]


def test_always_mode_reds_only_the_outermost_span(
    capture: TelemetryCapture, clock: FakeClock, call: Call
) -> None:
    """With span mode always, a failed policy call has one ERROR span: otelres.policy."""
    _otel.set_span_mode("always")
    breaker = CircuitBreaker("svc", tracer_provider=capture.tracer_provider, clock=clock)
    guard = Policy("svc", retry=retry(capture, clock), breaker=breaker, tracer_provider=capture.tracer_provider)
    with pytest.raises(ConnectionError):
        call(guard, failing(*[ConnectionError() for _ in range(3)]))
    red = [s.name for s in capture.spans() if s.status.status_code is StatusCode.ERROR]
    assert red == ["otelres.policy"]
    assert all(s.attributes["error.type"] == "ConnectionError" for s in capture.spans("otelres.breaker"))


def test_fallback_answer_leaves_no_error(capture: TelemetryCapture, clock: FakeClock, call: Call) -> None:
    """When a fallback answers, no span below it is ERROR, in mode events as in always."""
    for mode in ("events", "always"):
        capture.clear()
        _otel.set_span_mode(mode)
        guard = Policy(
            "svc",
            retry=retry(capture, clock),
            fallback=Fallback("svc", value="cached"),
            tracer_provider=capture.tracer_provider,
        )
        with request(capture):
            assert call(guard, failing(*[OSError() for _ in range(3)])) == "cached"
        assert capture.spans("otelres.retry.attempt")
        assert all(s.status.status_code is StatusCode.UNSET for s in capture.spans()), mode


def test_no_attempt_spans_without_an_active_span(
    capture: TelemetryCapture, clock: FakeClock, call: Call
) -> None:
    """In mode events with no span active, retries make no orphan attempt traces."""
    assert call(retry(capture, clock), failing(ConnectionError(), ConnectionError())) == "ok"
    assert capture.spans() == []


def test_limiter_rejection_is_named_as_such_on_every_span(capture: TelemetryCapture, call: Call) -> None:
    """A limiter rejection carried past the breaker shows as RateLimitExceededError, never internals."""
    _otel.set_span_mode("always")
    limiter = RateLimiter("svc", rate=0.001, capacity=1, mode="reject")
    breaker = CircuitBreaker("svc", tracer_provider=capture.tracer_provider)
    guard = Policy("svc", breaker=breaker, limiter=limiter, tracer_provider=capture.tracer_provider)
    assert call(guard, lambda: "ok") == "ok"
    with pytest.raises(RateLimitExceededError):
        call(guard, lambda: "ok")
    kinds = {s.attributes["error.type"] for s in capture.spans() if "error.type" in s.attributes}
    assert kinds == {"RateLimitExceededError"}
    assert breaker.get_state()["metrics"]["failure_calls"] == 0
