"""Retry: backoff, what is retried and what never is, deadlines, server delays, hooks, telemetry."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import pytest
from opentelemetry.trace import StatusCode

from otelres import _otel, config
from otelres.resilience import (
    CircuitBreakerOpenError,
    RateLimitExceededError,
    Retry,
    RetryDetails,
    no_backoff,
)
from otelres.testing import FakeClock, TelemetryCapture, capture_telemetry


class Flaky(Exception):
    """A transient failure."""


class Fatal(Exception):
    """A failure that retrying cannot fix."""


class Script:
    """A function that raises or returns the scripted outcomes in order, then returns "ok"."""

    def __init__(self, *outcomes: Any, clock: FakeClock | None = None, takes: float = 0.0) -> None:
        self.outcomes = list(outcomes)
        self.calls = 0
        self.clock = clock
        self.takes = takes

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        if self.clock is not None and self.takes:
            self.clock.advance(self.takes)
        if not self.outcomes:
            return "ok"
        outcome = self.outcomes.pop(0)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome


Call = Callable[..., Any]


@pytest.fixture(name="call", params=["sync", "async"])
def _call(request: pytest.FixtureRequest) -> Call:
    """Run a (sync) script through ``retry.call`` or through ``retry.call_async`` on a fresh loop."""

    def run(retry: Retry, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if request.param == "sync":
            return retry.call(fn, *args, **kwargs)

        async def afn(*a: Any, **k: Any) -> Any:
            await asyncio.sleep(0)
            return fn(*a, **k)

        return asyncio.run(retry.call_async(afn, *args, **kwargs))

    return run


def make(clock: FakeClock, **kwargs: Any) -> Retry:
    kwargs.setdefault("initial_delay", 1.0)
    kwargs.setdefault("jitter", "none")
    return Retry("svc", clock=clock, sleep=clock.sleep, async_sleep=clock.async_sleep, **kwargs)


# ---------------------------------------------------------------------------- basics
def test_success_first_time(clock: FakeClock, call: Call) -> None:
    """A call that succeeds at once is made once, returns its result, and never sleeps."""
    retry = make(clock)
    fn = Script("value")
    assert call(retry, fn, 1, key="x") == "value"
    assert fn.calls == 1
    assert clock.slept == []
    assert retry.stats()["success_without_retry"] == 1


def test_retries_until_success(clock: FakeClock, call: Call) -> None:
    """Transient failures are retried with exponential backoff until the call succeeds."""
    retry = make(clock, max_attempts=4, multiplier=2.0)
    fn = Script(Flaky(), Flaky(), Flaky())
    assert call(retry, fn) == "ok"
    assert fn.calls == 4
    assert clock.slept == [1.0, 2.0, 4.0]
    assert retry.stats()["success_with_retry"] == 1


def test_reraises_last_exception_unwrapped(clock: FakeClock, call: Call) -> None:
    """When attempts run out, the last exception itself is re-raised, not a wrapper."""
    retry = make(clock, max_attempts=3)
    last = Flaky("third")
    fn = Script(Flaky("first"), Flaky("second"), last)
    with pytest.raises(Flaky) as info:
        call(retry, fn)
    assert info.value is last
    assert fn.calls == 3
    assert retry.stats()["failed_with_retry"] == 1


def test_not_listed_exception_is_not_retried(clock: FakeClock, call: Call) -> None:
    """An exception outside ``retry_on`` propagates after one attempt."""
    retry = make(clock, retry_on=Flaky)
    fn = Script(Fatal())
    with pytest.raises(Fatal):
        call(retry, fn)
    assert fn.calls == 1
    assert retry.stats()["failed_without_retry"] == 1


def test_retry_on_predicate(clock: FakeClock, call: Call) -> None:
    """A predicate decides per exception whether to retry."""
    retry = make(clock, retry_on=lambda exc: "again" in str(exc))
    fn = Script(Flaky("again"), Flaky("stop"))
    with pytest.raises(Flaky, match="stop"):
        call(retry, fn)
    assert fn.calls == 2


def test_raising_predicate_means_no_retry(
    clock: FakeClock, call: Call, caplog: pytest.LogCaptureFixture
) -> None:
    """A retry_on predicate that raises is logged and the original exception propagates."""

    def broken(exc: BaseException) -> bool:
        raise RuntimeError("bug in predicate")

    retry = make(clock, retry_on=broken)
    original = Flaky()
    with caplog.at_level(logging.ERROR, "otelres"), pytest.raises(Flaky) as info:
        call(retry, Script(original))
    assert info.value is original
    assert "retry_on" in caplog.text


def test_keyboard_interrupt_is_never_retried(clock: FakeClock) -> None:
    """BaseExceptions such as KeyboardInterrupt pass through at once and are not counted."""
    retry = make(clock, retry_on=BaseException)
    fn = Script(KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        retry.call(fn)
    assert fn.calls == 1
    assert sum(retry.stats().values()) == 0


async def test_cancellation_is_never_retried(clock: FakeClock) -> None:
    """A cancelled attempt ends the call with CancelledError; no further attempt is made."""
    retry = make(clock, retry_on=BaseException)
    started = asyncio.Event()
    calls = 0

    async def slow() -> None:
        nonlocal calls
        calls += 1
        started.set()
        await asyncio.sleep(10)

    task = asyncio.create_task(retry.call_async(slow))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert calls == 1


def test_breaker_rejection_is_never_retried(clock: FakeClock, call: Call) -> None:
    """A CircuitBreakerOpenError ends the call at once, even with retry_on=Exception."""
    retry = make(clock, retry_on=Exception, max_attempts=5)
    fn = Script(CircuitBreakerOpenError("svc", 30.0))
    with pytest.raises(CircuitBreakerOpenError):
        call(retry, fn)
    assert fn.calls == 1
    assert clock.slept == []


def test_result_predicate(clock: FakeClock, call: Call) -> None:
    """A result the predicate rejects is retried; an accepted one is returned."""
    retry = make(clock, retry_if_result=lambda r: r is None)
    fn = Script(None, "good")
    assert call(retry, fn) == "good"
    assert fn.calls == 2
    assert retry.stats()["success_with_retry"] == 1


def test_result_predicate_exhausted_returns_last(clock: FakeClock, call: Call) -> None:
    """When every result is rejected, the last one is returned and the call counts as failed."""
    retry = make(clock, max_attempts=2, retry_if_result=lambda r: r < 0)
    fn = Script(-1, -2)
    assert call(retry, fn) == -2
    assert retry.stats()["failed_with_retry"] == 1


# ---------------------------------------------------------------------------- backoff
def test_max_delay_caps_backoff(clock: FakeClock, call: Call) -> None:
    """Backoff grows by the multiplier and never exceeds max_delay."""
    retry = make(clock, max_attempts=5, multiplier=3.0, max_delay=5.0)
    call(retry, Script(Flaky(), Flaky(), Flaky(), Flaky()))
    assert clock.slept == [1.0, 3.0, 5.0, 5.0]


def test_full_jitter_draws_below_the_backoff(clock: FakeClock, call: Call) -> None:
    """Full jitter waits a uniform fraction of the exponential backoff."""
    draws = iter([0.5, 0.25])
    retry = make(clock, jitter="full", max_attempts=3, random=lambda: next(draws))
    call(retry, Script(Flaky(), Flaky()))
    assert clock.slept == [0.5, 0.5]


def test_decorrelated_jitter_stays_in_bounds(clock: FakeClock) -> None:
    """Decorrelated jitter waits between initial_delay and 3x the previous wait, capped."""
    retry = make(clock, jitter="decorrelated", max_attempts=8, max_delay=20.0, random=lambda: 1.0)
    with pytest.raises(Flaky):
        retry.call(Script(*[Flaky()] * 8))
    assert clock.slept == [3.0, 9.0, 20.0, 20.0, 20.0, 20.0, 20.0]
    low = make(FakeClock(), jitter="decorrelated", max_attempts=3, random=lambda: 0.0)
    with pytest.raises(Flaky):
        low.call(Script(*[Flaky()] * 3))


def test_deadline_stops_retrying(clock: FakeClock, call: Call) -> None:
    """No retry is scheduled whose wait would end after the deadline; the last error is raised."""
    retry = make(clock, max_attempts=10, deadline=5.0)
    fn = Script(*[Flaky()] * 10, clock=clock, takes=1.0)
    with pytest.raises(Flaky):
        call(retry, fn)
    # attempt 1 (1 s) + wait 1 + attempt 2 (1 s) + wait 2 ends exactly at 5 s; after
    # attempt 3 (t = 6 s) the next wait would end at 10 s, past the deadline
    assert clock.slept == [1.0, 2.0]
    assert fn.calls == 3


# ---------------------------------------------------------------------------- server delays
def test_retry_after_hook_sets_the_wait(clock: FakeClock, call: Call) -> None:
    """The wait is at least what the retry_after hook says the server asked for."""

    class Throttled(Exception):
        def __init__(self, seconds: float) -> None:
            super().__init__("429")
            self.seconds = seconds

    retry = make(clock, retry_after=lambda exc: getattr(exc, "seconds", None))
    assert call(retry, Script(Throttled(3.0))) == "ok"
    assert clock.slept == [3.0]


def test_retry_after_beyond_max_delay_gives_up(clock: FakeClock, call: Call) -> None:
    """A server delay longer than max_delay re-raises at once instead of retrying too early."""
    retry = make(clock, max_delay=10.0, retry_after=lambda exc: 60.0)
    fn = Script(Flaky())
    with pytest.raises(Flaky):
        call(retry, fn)
    assert fn.calls == 1


def test_rate_limit_error_retry_after_is_honoured(clock: FakeClock, call: Call) -> None:
    """RateLimitExceededError.retry_after is honoured by default."""
    retry = make(clock)
    assert call(retry, Script(RateLimitExceededError("x", 2.5))) == "ok"
    assert clock.slept == [2.5]


def test_raising_retry_after_hook_is_ignored(clock: FakeClock, call: Call) -> None:
    """A retry_after hook that raises is logged and the normal backoff applies."""

    def broken(exc: BaseException) -> float:
        raise RuntimeError("bug")

    retry = make(clock, retry_after=broken)
    assert call(retry, Script(Flaky())) == "ok"
    assert clock.slept == [1.0]


def test_retry_after_header_string_is_honoured(clock: FakeClock, call: Call) -> None:
    """A hook returning the Retry-After header's text ("3") sets the wait like the number would."""
    retry = make(clock, retry_after=lambda exc: " 3 ")
    assert call(retry, Script(Flaky())) == "ok"
    assert clock.slept == [3.0]


@pytest.mark.parametrize("answer", ["Wed, 21 Oct 2026 07:28:00 GMT", -5, float("nan"), object(), True])
def test_unusable_retry_after_is_ignored(clock: FakeClock, call: Call, answer: object) -> None:
    """A hook answer that is no number of seconds is ignored: normal backoff, errors unchanged."""
    retry = make(clock, max_attempts=2, retry_after=lambda exc: answer)
    last = Flaky("second")
    with pytest.raises(Flaky) as info:
        call(retry, Script(Flaky("first"), last))
    assert info.value is last
    assert clock.slept == [1.0]


# ---------------------------------------------------------------------------- idempotency
def test_non_idempotent_is_not_retried(clock: FakeClock, call: Call) -> None:
    """idempotent=False without a retry_safe check never retries a failed attempt."""
    retry = make(clock, idempotent=False)
    fn = Script(Flaky())
    with pytest.raises(Flaky):
        call(retry, fn)
    assert fn.calls == 1


def test_non_idempotent_retried_when_check_says_safe(clock: FakeClock, call: Call) -> None:
    """retry_safe is asked with the exception; a True answer allows the retry."""
    seen: list[BaseException] = []

    def safe(exc: BaseException) -> bool:
        seen.append(exc)
        return isinstance(exc, Flaky)

    retry = make(clock, idempotent=False, retry_safe=safe)
    first = Flaky()
    assert call(retry, Script(first)) == "ok"
    assert seen == [first]
    fn = Script(Fatal())
    retry2 = make(clock, idempotent=False, retry_safe=safe, retry_on=Exception)
    with pytest.raises(Fatal):
        call(retry2, fn)
    assert fn.calls == 1


async def test_async_retry_safe_check_is_awaited(clock: FakeClock) -> None:
    """In call_async, retry_safe may be a coroutine function (it can look the order up)."""
    looked_up: list[str] = []

    async def order_absent(exc: BaseException) -> bool:
        looked_up.append(type(exc).__name__)
        await asyncio.sleep(0)
        return True

    retry = make(clock, idempotent=False, retry_safe=order_absent)
    fn = Script(Flaky())

    async def place() -> Any:
        return fn()

    assert await retry.call_async(place) == "ok"
    assert looked_up == ["Flaky"]


def test_async_check_in_sync_call_refuses(clock: FakeClock, caplog: pytest.LogCaptureFixture) -> None:
    """A coroutine retry_safe cannot answer a sync call: no retry, and an error is logged."""

    async def check(exc: BaseException) -> bool:
        return True

    retry = make(clock, idempotent=False, retry_safe=check)
    with caplog.at_level(logging.ERROR, "otelres"), pytest.raises(Flaky):
        retry.call(Script(Flaky()))
    assert "awaitable" in caplog.text


def test_non_idempotent_rate_limit_rejection_is_retried(clock: FakeClock, call: Call) -> None:
    """A limiter rejection means the request was never sent, so even a non-idempotent call retries."""
    retry = make(clock, idempotent=False)
    assert call(retry, Script(RateLimitExceededError("x", 0.5))) == "ok"


# ---------------------------------------------------------------------------- hooks, testing
def test_hooks_get_retry_details(clock: FakeClock, call: Call) -> None:
    """Each scheduled retry calls the hooks with a frozen RetryDetails record."""
    details: list[RetryDetails] = []
    retry = make(clock, on_retry=details.append, max_attempts=3)
    first, second = Flaky("1"), Flaky("2")
    call(retry, Script(first, second), 7, side="buy")
    assert [(d.attempt, d.wait, d.waited_so_far, d.caused_by) for d in details] == [
        (2, 1.0, 0.0, first),
        (3, 2.0, 1.0, second),
    ]
    assert details[0].name == "svc"
    assert details[0].args == (7,)
    assert dict(details[0].kwargs) == {"side": "buy"}
    with pytest.raises(AttributeError):
        details[0].attempt = 5  # type: ignore[misc]


def test_raising_hook_never_reaches_caller(
    clock: FakeClock, call: Call, caplog: pytest.LogCaptureFixture
) -> None:
    """A hook that raises is logged; the call behaves exactly as without it."""

    def hook(details: RetryDetails) -> None:
        raise RuntimeError("hook bug")

    seen: list[int] = []
    retry = make(clock, on_retry=[hook, lambda d: seen.append(d.attempt)])
    with caplog.at_level(logging.ERROR, "otelres"):
        assert call(retry, Script(Flaky())) == "ok"
    assert seen == [2]
    assert "hook bug" in caplog.text


def test_no_backoff_skips_sleeping(call: Call) -> None:
    """Inside testing.no_backoff() retries happen at once; hooks see a zero wait."""
    slept: list[float] = []
    waits: list[float] = []
    retry = Retry("svc", initial_delay=5.0, sleep=slept.append, on_retry=lambda d: waits.append(d.wait))
    with no_backoff():
        assert call(retry, Script(Flaky(), Flaky())) == "ok"
    assert slept == []
    assert waits == [0.0, 0.0]


def test_decorator_sync_and_async(clock: FakeClock) -> None:
    """The decorator keeps the function's name and retries sync and async functions alike."""
    retry = make(clock)
    sync_fn = Script(Flaky())

    @retry
    def fetch(x: int) -> Any:
        """Fetch."""
        return sync_fn(x)

    async_fn = Script(Flaky())

    @retry
    async def afetch(x: int) -> Any:
        return async_fn(x)

    assert fetch(1) == "ok"
    assert fetch.__name__ == "fetch"
    assert fetch.__doc__ == "Fetch."
    assert asyncio.run(afetch(1)) == "ok"
    assert asyncio.iscoroutinefunction(afetch)
    assert sync_fn.calls == async_fn.calls == 2


def test_from_config_reads_named_settings() -> None:
    """Retry.from_config takes [resilience.retry.<name>], falling back to [resilience.retry]."""
    cfg = config.config_from_dict(
        {
            "resilience": {
                "retry": {
                    "max_attempts": 2,
                    "kraken": {"max_attempts": 7, "initial_delay_seconds": 0.5, "jitter": "none"},
                }
            }
        }
    )
    config.set_current(cfg)
    kraken = Retry.from_config("kraken")
    other = Retry.from_config("binance")
    assert (kraken.max_attempts, kraken.initial_delay, kraken.jitter) == (7, 0.5, "none")
    assert other.max_attempts == 2


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_attempts": 0}, "max_attempts"),
        ({"initial_delay": -1}, "initial_delay"),
        ({"multiplier": 0.5}, "multiplier"),
        ({"jitter": "some"}, "jitter"),
        ({"deadline": 0}, "deadline"),
        ({"retry_on": (ValueError, int)}, "retry_on"),
    ],
)
def test_bad_arguments_are_named(kwargs: dict[str, Any], message: str) -> None:
    """Invalid arguments raise at construction with a message naming the argument."""
    with pytest.raises((ValueError, TypeError), match=message):
        Retry("svc", **kwargs)


# ---------------------------------------------------------------------------- telemetry
@pytest.fixture(name="capture")
def _capture() -> TelemetryCapture:
    return capture_telemetry(install_global=False)


def traced(capture: TelemetryCapture, clock: FakeClock, **kwargs: Any) -> Retry:
    return make(
        clock,
        meter_provider=capture.meter_provider,
        tracer_provider=capture.tracer_provider,
        **kwargs,
    )


def test_success_path_records_only_observable_counts(
    capture: TelemetryCapture, clock: FakeClock, call: Call
) -> None:
    """A first-time success creates no span and no attempt/delay point; retry.calls counts it."""
    retry = traced(capture, clock)
    for _ in range(3):
        call(retry, Script())
    assert capture.spans() == []
    assert capture.points("otelres.retry.attempts") == []
    assert capture.points("otelres.retry.delay") == []
    assert (
        capture.value(
            "otelres.retry.calls", **{"retry.name": "svc", "retry.outcome": "success_without_retry"}
        )
        == 3
    )


def test_retry_telemetry(capture: TelemetryCapture, clock: FakeClock, call: Call) -> None:
    """A retry adds attempts and delay points, an event on the active span and an attempt child span."""
    retry = traced(capture, clock, max_attempts=3)
    tracer = capture.tracer_provider.get_tracer("test")
    with pytest.raises(Flaky), tracer.start_as_current_span("request"):
        call(retry, Script(Flaky(), Flaky(), Flaky()))
    attrs = {"retry.name": "svc", "error.type": "Flaky"}
    assert capture.value("otelres.retry.attempts", **attrs) == 2
    delay = capture.points("otelres.retry.delay", **attrs)
    assert delay[0].count == 2
    assert delay[0].sum == pytest.approx(3.0)
    assert (
        capture.value("otelres.retry.calls", **{"retry.name": "svc", "retry.outcome": "failed_with_retry"})
        == 1
    )
    request = capture.spans("request")[0]
    events = [e for e in request.events if e.name == "otelres.retry"]
    assert [e.attributes["retry.attempt"] for e in events] == [2, 3]
    assert events[0].attributes["error.type"] == "Flaky"
    attempts = capture.spans("otelres.retry.attempt")
    assert [s.attributes["retry.attempt"] for s in attempts] == [2, 3]
    assert all(s.parent.span_id == request.context.span_id for s in attempts)
    # Attempt 2 failed and was retried (an event, not an error); attempt 3's error reached the caller.
    assert [s.status.status_code for s in attempts] == [StatusCode.UNSET, StatusCode.ERROR]
    assert [s.attributes["error.type"] for s in attempts] == ["Flaky", "Flaky"]


def test_always_mode_spans_every_attempt(capture: TelemetryCapture, clock: FakeClock, call: Call) -> None:
    """In span mode always, each call gets an otelres.retry span with every attempt as a child."""
    retry = traced(capture, clock, span_mode="always")
    assert call(retry, Script(Flaky())) == "ok"
    (outer,) = capture.spans("otelres.retry")
    attempts = capture.spans("otelres.retry.attempt")
    assert [s.attributes["retry.attempt"] for s in attempts] == [1, 2]
    assert all(s.parent.span_id == outer.context.span_id for s in attempts)
    assert outer.status.status_code is StatusCode.UNSET


def test_off_mode_is_metrics_only(capture: TelemetryCapture, clock: FakeClock, call: Call) -> None:
    """With span mode off a retry makes no span and no event, but still counts."""
    _otel.set_span_mode("off")
    retry = traced(capture, clock)
    tracer = capture.tracer_provider.get_tracer("test")
    with tracer.start_as_current_span("request"):
        call(retry, Script(Flaky()))
    assert [s.name for s in capture.spans()] == ["request"]
    assert capture.spans("request")[0].events == ()
    assert capture.value("otelres.retry.attempts", **{"retry.name": "svc"}) == 1


def test_failing_meter_does_not_change_behaviour(clock: FakeClock, call: Call) -> None:
    """Instruments that raise on every use leave the retry's results unchanged."""

    class Broken:
        def __getattr__(self, name: str) -> Any:
            raise RuntimeError("sdk down")

    class BrokenMeter:
        def create_counter(self, *a: Any, **k: Any) -> Any:
            return Broken()

        def create_histogram(self, *a: Any, **k: Any) -> Any:
            return Broken()

        def create_observable_counter(self, *a: Any, **k: Any) -> Any:
            return None

    class BrokenProvider:
        def get_meter(self, *a: Any, **k: Any) -> Any:
            return BrokenMeter()

    retry = make(clock, meter_provider=BrokenProvider())  # type: ignore[arg-type]
    assert call(retry, Script(Flaky(), Flaky())) == "ok"
    assert clock.slept == [1.0, 2.0]


def test_testing_module_exports_no_backoff() -> None:
    """otelres.testing.no_backoff is the retry module's no_backoff, as the docs promise."""
    from otelres import testing
    from otelres.resilience import no_backoff as resilience_no_backoff

    assert testing.no_backoff is resilience_no_backoff


def test_pybreaker_rejection_is_never_retried(clock: FakeClock, call: Call) -> None:
    """A pybreaker breaker kept by a migrating user is respected too: its rejection is not retried."""
    import pybreaker

    legacy = pybreaker.CircuitBreaker(fail_max=1, name="legacy-retry")
    legacy.open()
    fn = Script()

    def through_legacy() -> Any:
        return legacy.call(fn)

    with pytest.raises(pybreaker.CircuitBreakerError):
        call(make(clock, max_attempts=5), through_legacy)
    assert fn.calls == 0
    assert clock.slept == []


# ---------------------------------------------------------------------------- engine edges
def test_stop_iteration_from_the_last_attempt_reaches_the_caller_unchanged(clock: FakeClock) -> None:
    """A StopIteration that every attempt raises is re-raised as itself, not as a RuntimeError."""
    retry = make(clock)
    last = StopIteration("exhausted")
    fn = Script(StopIteration("first"), StopIteration("second"), last)
    with pytest.raises(StopIteration) as info:
        retry.call(fn)
    assert info.value is last
    assert fn.calls == 3
    assert retry.stats()["failed_with_retry"] == 1


def test_interrupt_during_a_retry_ends_its_attempt_span(
    capture: TelemetryCapture, clock: FakeClock, call: Call
) -> None:
    """A KeyboardInterrupt in a retried attempt propagates and ends that attempt's span with its error.type."""
    retry = traced(capture, clock, span_mode="always")
    interrupt = KeyboardInterrupt()
    with pytest.raises(KeyboardInterrupt) as info:
        call(retry, Script(Flaky(), interrupt))
    assert info.value is interrupt
    attempts = capture.spans("otelres.retry.attempt")
    assert [s.attributes["error.type"] for s in attempts] == ["Flaky", "KeyboardInterrupt"]
    assert all(s.status.status_code is StatusCode.UNSET for s in attempts)
    (outer,) = capture.spans("otelres.retry")
    assert outer.attributes["error.type"] == "KeyboardInterrupt"
    assert sum(retry.stats().values()) == 0
