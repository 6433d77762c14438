"""Policy: the composition order and its consequences, sync/async parity, policy(name) from config."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from otelres import _otel, config
from otelres.resilience import (
    Bulkhead,
    CallTimeoutError,
    CircuitBreaker,
    CircuitBreakerOpenError,
    Fallback,
    Policy,
    RateLimiter,
    RateLimitExceededError,
    Retry,
    Timeout,
    policy,
)
from otelres.resilience._breaker import _clear_registry
from otelres.resilience._policy import ORDER
from otelres.testing import FakeClock, TelemetryCapture, capture_telemetry


class Down(Exception):
    """The service failed."""


@pytest.fixture(autouse=True)
def _fresh_registry() -> Iterator[None]:
    _clear_registry()
    yield
    _clear_registry()


class Script:
    """Raises the scripted exceptions in order, then returns "ok"; counts calls."""

    def __init__(self, *outcomes: BaseException) -> None:
        self.outcomes = list(outcomes)
        self.calls = 0

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        if self.outcomes:
            raise self.outcomes.pop(0)
        return "ok"


Call = Callable[..., Any]


@pytest.fixture(name="call", params=["sync", "async"])
def _call(request: pytest.FixtureRequest) -> Call:
    """Run a sync script through ``policy.call``, or an async twin through ``call_async``."""

    def run(pol: Policy, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if request.param == "sync":
            return pol.call(fn, *args, **kwargs)

        async def afn(*a: Any, **k: Any) -> Any:
            await asyncio.sleep(0)
            return fn(*a, **k)

        return asyncio.run(pol.call_async(afn, *args, **kwargs))

    return run


def quick_retry(clock: FakeClock, **kwargs: Any) -> Retry:
    kwargs.setdefault("max_attempts", 3)
    return Retry(
        "svc",
        initial_delay=0.1,
        jitter="none",
        clock=clock,
        sleep=clock.sleep,
        async_sleep=clock.async_sleep,
        **kwargs,
    )


def test_order_is_documented() -> None:
    """The order is fallback, bulkhead, retry, breaker, limiter, timeout, outermost first."""
    assert ORDER == ("fallback", "bulkhead", "retry", "breaker", "limiter", "timeout")


def test_each_attempt_pays_tokens_and_is_counted(clock: FakeClock, call: Call) -> None:
    """Retry sits outside the limiter and the breaker: every attempt takes a token and is recorded."""
    limiter = RateLimiter("svc", rate=1, capacity=5, mode="reject", clock=clock)
    breaker = CircuitBreaker("svc", failure_threshold=10, clock=clock)
    pol = Policy("svc", retry=quick_retry(clock), limiter=limiter, breaker=breaker)
    fn = Script(Down(), Down())
    assert call(pol, fn) == "ok"
    assert fn.calls == 3
    assert limiter.stats().acquired == 3
    metrics = breaker.get_state()["metrics"]
    assert (metrics["failure_calls"], metrics["success_calls"]) == (2, 1)


def test_breaker_rejection_stops_retrying(clock: FakeClock, call: Call) -> None:
    """An open breaker ends the call at once: no retry, no token spent, the function not called."""
    limiter = RateLimiter("svc", rate=1, capacity=5, mode="reject", clock=clock)
    breaker = CircuitBreaker("svc", failure_threshold=1, reset_timeout=60, clock=clock)
    pol = Policy("svc", retry=quick_retry(clock, max_attempts=5), limiter=limiter, breaker=breaker)
    failing = Script(Down(), Down())
    # the first failure opens the breaker; the retry's attempt is rejected, which ends it
    with pytest.raises(CircuitBreakerOpenError):
        call(pol, failing)
    assert failing.calls == 1
    assert clock.slept == [0.1]
    fn = Script()
    with pytest.raises(CircuitBreakerOpenError):
        call(pol, fn)
    assert fn.calls == 0
    assert limiter.stats().acquired == 1
    assert clock.slept == [0.1]


def test_limiter_rejection_is_not_a_breaker_failure(clock: FakeClock, call: Call) -> None:
    """A rate-limit rejection reaches the caller unchanged and is not counted by the breaker."""
    limiter = RateLimiter("svc", rate=0.001, capacity=1, mode="reject", clock=clock)
    breaker = CircuitBreaker("svc", failure_threshold=1, clock=clock)
    pol = Policy("svc", limiter=limiter, breaker=breaker)
    assert call(pol, Script()) == "ok"
    with pytest.raises(RateLimitExceededError):
        call(pol, Script())
    assert breaker.state.value == "closed"
    assert breaker.get_state()["metrics"]["failure_calls"] == 0


def test_retry_honours_limiter_retry_after(clock: FakeClock, call: Call) -> None:
    """A limiter rejection inside the retry is retried after the limiter's retry_after."""
    limiter = RateLimiter("svc", rate=2, capacity=1, mode="reject", clock=clock)
    pol = Policy("svc", retry=quick_retry(clock, max_delay=5), limiter=limiter)
    assert call(pol, Script()) == "ok"
    assert call(pol, Script()) == "ok"
    assert clock.slept == [pytest.approx(0.5)]


async def test_timeout_is_per_attempt_and_counted_by_breaker(clock: FakeClock) -> None:
    """A timed-out attempt is a breaker failure and is retried with a fresh timeout and a new token."""
    breaker = CircuitBreaker("svc", failure_threshold=10)
    limiter = RateLimiter("svc", rate=100, capacity=10)
    attempts = 0

    async def slow_then_fast() -> str:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            await asyncio.sleep(1)
        return "ok"

    pol = Policy(
        "svc",
        retry=quick_retry(clock, retry_on=TimeoutError),
        breaker=breaker,
        limiter=limiter,
        timeout=Timeout("svc", 0.05),
    )
    assert await pol.call_async(slow_then_fast) == "ok"
    assert attempts == 2
    assert breaker.get_state()["metrics"]["failure_calls"] == 1
    assert limiter.stats().acquired == 2


def test_sync_timeout_inside_policy(clock: FakeClock) -> None:
    """The sync path applies the timeout per attempt too, raising CallTimeoutError after the retries."""
    import time

    pol = Policy("svc", retry=quick_retry(clock, max_attempts=2), timeout=Timeout("svc", 0.02))
    with pytest.raises(CallTimeoutError):
        pol.call(time.sleep, 0.2)
    pol.timeout.shutdown()  # type: ignore[union-attr]


def test_fallback_answers_for_everything_below(clock: FakeClock, call: Call) -> None:
    """The outermost fallback answers for exhausted retries and breaker rejections alike."""
    breaker = CircuitBreaker("svc", failure_threshold=2, clock=clock)
    pol = Policy(
        "svc",
        fallback=Fallback("svc", handler=lambda exc: type(exc).__name__),
        retry=quick_retry(clock, max_attempts=2),
        breaker=breaker,
    )
    assert call(pol, Script(Down(), Down())) == "Down"
    assert call(pol, Script()) == "CircuitBreakerOpenError"


async def test_bulkhead_slot_is_held_across_retries(clock: FakeClock) -> None:
    """The bulkhead is outside the retry: a call that is backing off still holds its slot."""
    gate = asyncio.Event()

    async def wait_gate(seconds: float) -> None:
        await gate.wait()

    retry = Retry("svc", initial_delay=1, jitter="none", async_sleep=wait_gate)
    pol = Policy(
        "svc",
        bulkhead=Bulkhead("svc", max_concurrent=1),
        retry=retry,
        fallback=Fallback("svc", handler=lambda exc: f"refused: {type(exc).__name__}"),
    )
    fn = Script(Down())

    async def afn() -> Any:
        return fn()

    first = asyncio.create_task(pol.call_async(afn))
    await asyncio.sleep(0.01)  # the first call failed once and is sleeping before its retry
    assert await pol.call_async(afn) == "refused: BulkheadFullError"
    gate.set()
    assert await first == "ok"


def test_decorator_and_parity(clock: FakeClock) -> None:
    """The decorator guards sync and async functions the same way."""
    pol = Policy("svc", retry=quick_retry(clock), fallback=Fallback("svc", value="fb"))
    sync_script, async_script = Script(Down()), Script(Down())

    @pol
    def fetch() -> Any:
        return sync_script()

    @pol
    async def afetch() -> Any:
        return async_script()

    assert fetch() == "ok"
    assert asyncio.run(afetch()) == "ok"
    assert fetch.__name__ == "fetch"
    assert sync_script.calls == async_script.calls == 2


def test_replace_shares_other_guards(clock: FakeClock) -> None:
    """replace() swaps a guard and keeps the others (the same objects)."""
    limiter = RateLimiter("svc", rate=1, clock=clock)
    pol = Policy("svc", retry=quick_retry(clock), limiter=limiter)
    orders = pol.replace(retry=None)
    assert orders.retry is None
    assert orders.limiter is limiter
    fn = Script(Down())
    with pytest.raises(Down):
        orders.call(fn)
    assert fn.calls == 1
    with pytest.raises(TypeError, match="unknown"):
        pol.replace(retries=None)


def test_empty_policy_just_calls() -> None:
    """A policy without guards calls the function and returns its result."""
    assert Policy("svc").call(lambda x: x * 2, 21) == 42


def test_cost_above_capacity_is_refused() -> None:
    """A cost the limiter can never grant is refused when the policy is built."""
    with pytest.raises(ValueError, match="cost"):
        Policy("svc", limiter=RateLimiter("svc", rate=1, capacity=2), cost=3)


# ---------------------------------------------------------------------------- from config
def use_config(data: dict[str, Any]) -> None:
    config.set_current(config.config_from_dict(data))


def test_policy_from_config() -> None:
    """policy(name) builds breaker, retry, limiter, timeout and bulkhead from config.toml."""
    use_config(
        {
            "resilience": {
                "circuit_breaker_threshold": 4,
                "rate_limits": {"kraken": 10},
                "rate_limit_burst_seconds": 2,
                "retry": {"max_attempts": 2, "kraken": {"max_attempts": 5}},
                "timeouts": {"kraken": 3.5},
                "bulkheads": {"kraken": {"max_concurrent": 6}},
            }
        }
    )
    pol = policy("kraken")
    assert pol.breaker is not None
    assert pol.breaker.failure_threshold == 4
    assert pol.retry is not None
    assert pol.retry.max_attempts == 5
    assert pol.limiter is not None
    assert (pol.limiter.rate, pol.limiter.capacity) == (10, 20)
    assert pol.timeout is not None
    assert pol.timeout.seconds == 3.5
    assert pol.bulkhead is not None
    assert pol.bulkhead.max_concurrent == 6
    other = policy("binance")
    assert (other.limiter, other.timeout, other.bulkhead) == (None, None, None)
    assert other.retry is not None
    assert other.retry.max_attempts == 2


def test_policy_is_cached_until_config_changes() -> None:
    """policy(name) returns the same object until the current configuration is replaced."""
    use_config({"resilience": {"rate_limits": {"kraken": 10}}})
    assert policy("kraken") is policy("kraken")
    first = policy("kraken")
    use_config({"resilience": {"rate_limits": {"kraken": 20}}})
    second = policy("kraken")
    assert second is not first
    assert second.limiter is not None
    assert second.limiter.rate == 20


def test_breaker_disabled_in_config() -> None:
    """With circuit_breaker_enabled = false the policy has no breaker."""
    use_config({"resilience": {"circuit_breaker_enabled": False}})
    assert policy("kraken").breaker is None


# ---------------------------------------------------------------------------- telemetry
def test_success_path_makes_no_spans(clock: FakeClock, call: Call) -> None:
    """In the default span mode a successful call through a full policy creates no span."""
    capture: TelemetryCapture = capture_telemetry(install_global=False)
    pol = Policy(
        "svc",
        retry=Retry("svc", tracer_provider=capture.tracer_provider, meter_provider=capture.meter_provider),
        limiter=RateLimiter("svc", rate=100, meter_provider=capture.meter_provider),
        breaker=CircuitBreaker(
            "svc", tracer_provider=capture.tracer_provider, meter_provider=capture.meter_provider
        ),
        tracer_provider=capture.tracer_provider,
    )
    for _ in range(5):
        assert call(pol, Script()) == "ok"
    assert capture.spans() == []
    assert (
        capture.value(
            "otelres.retry.calls", **{"retry.name": "svc", "retry.outcome": "success_without_retry"}
        )
        == 5
    )


def test_always_mode_policy_span_parents_attempts(clock: FakeClock, call: Call) -> None:
    """In span mode always, the otelres.policy span is the parent of the retry span and its attempts."""
    _otel.set_span_mode("always")
    capture: TelemetryCapture = capture_telemetry(install_global=False)
    retry = Retry(
        "svc",
        initial_delay=0,
        clock=clock,
        sleep=clock.sleep,
        async_sleep=clock.async_sleep,
        tracer_provider=capture.tracer_provider,
    )
    pol = Policy("svc", retry=retry, tracer_provider=capture.tracer_provider)
    assert call(pol, Script(Down())) == "ok"
    (outer,) = capture.spans("otelres.policy")
    (retry_span,) = capture.spans("otelres.retry")
    attempts = capture.spans("otelres.retry.attempt")
    assert outer.attributes["policy.name"] == "svc"
    assert retry_span.parent.span_id == outer.context.span_id
    assert len(attempts) == 2
    assert all(a.parent.span_id == retry_span.context.span_id for a in attempts)


def test_failing_exporters_and_hooks_do_not_change_behaviour(clock: FakeClock, call: Call) -> None:
    """Exporters that raise and a retry hook that raises leave a policy's results unchanged."""
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import (
        MetricExporter,
        MetricExportResult,
        PeriodicExportingMetricReader,
    )
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

    class DownSpanExporter(SpanExporter):
        def export(self, spans: Any) -> SpanExportResult:
            raise ConnectionError("collector gone")

    class DownMetricExporter(MetricExporter):
        def export(self, metrics_data: Any, timeout_millis: float = 0, **kwargs: Any) -> MetricExportResult:
            raise ConnectionError("collector gone")

        def force_flush(self, timeout_millis: float = 0) -> bool:
            return False

        def shutdown(self, timeout_millis: float = 0, **kwargs: Any) -> None:
            return None

    tracing = TracerProvider()
    tracing.add_span_processor(SimpleSpanProcessor(DownSpanExporter()))
    metering = MeterProvider(
        metric_readers=[PeriodicExportingMetricReader(DownMetricExporter(), export_interval_millis=3_600_000)]
    )
    _otel.set_span_mode("always")

    def broken_hook(details: Any) -> None:
        raise RuntimeError("hook bug")

    pol = Policy(
        "exporters-down",
        retry=Retry(
            "exporters-down",
            initial_delay=0,
            on_retry=broken_hook,
            clock=clock,
            sleep=clock.sleep,
            async_sleep=clock.async_sleep,
            meter_provider=metering,
            tracer_provider=tracing,
        ),
        breaker=CircuitBreaker("exporters-down", meter_provider=metering, tracer_provider=tracing),
        limiter=RateLimiter("exporters-down", rate=100, meter_provider=metering),
        fallback=Fallback("exporters-down", value="fallback", meter_provider=metering),
        tracer_provider=tracing,
    )
    with tracing.get_tracer("test").start_as_current_span("request"):
        assert call(pol, Script(Down())) == "ok"
        assert call(pol, Script(Down(), Down(), Down())) == "fallback"
    metering.force_flush()
    metering.shutdown()
    tracing.shutdown()


def test_sync_bulkhead_slot_is_held_across_retries() -> None:
    """In the sync path too, a call backing off between attempts keeps its bulkhead slot."""
    import threading

    sleeping, release = threading.Event(), threading.Event()

    def backoff(seconds: float) -> None:
        sleeping.set()
        release.wait(5)

    pol = Policy(
        "svc",
        bulkhead=Bulkhead("svc", max_concurrent=1),
        retry=Retry("svc", initial_delay=1, jitter="none", sleep=backoff),
        fallback=Fallback("svc", handler=lambda exc: f"refused: {type(exc).__name__}"),
    )
    results: list[Any] = []
    worker = threading.Thread(target=lambda: results.append(pol.call(Script(Down()))))
    worker.start()
    assert sleeping.wait(5)
    assert pol.call(Script()) == "refused: BulkheadFullError"
    release.set()
    worker.join()
    assert results == ["ok"]
    assert pol.bulkhead is not None
    assert pol.bulkhead.in_flight == 0


def test_breaker_settings_changed_by_a_later_configuration_are_reported(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A breaker keeps its settings when the configuration changes, and a warning says so once."""
    config.set_current(config.config_from_dict({"resilience": {"circuit_breaker": {"kraken": {"threshold": 5}}}}))
    first = policy("kraken")
    config.set_current(config.config_from_dict({"resilience": {"circuit_breaker": {"kraken": {"threshold": 2}}}}))
    with caplog.at_level(logging.WARNING, logger="otelres"):
        second = policy("kraken")
        policy("kraken")
    assert second.breaker is first.breaker
    assert second.breaker is not None
    assert second.breaker.failure_threshold == 5
    warnings = [r for r in caplog.records if "keeps the settings it was created with" in r.message]
    assert len(warnings) == 1


EXAMPLE_CONFIG = Path(__file__).resolve().parents[2] / "config.toml"


async def test_policies_from_the_shipped_config_file() -> None:
    """The example config.toml builds working policies: every section of it reaches its guard."""
    loaded = config.load_config(EXAMPLE_CONFIG)
    config.set_current(loaded)
    resilience = loaded.resilience
    kraken = policy("kraken")
    assert None not in (kraken.breaker, kraken.retry, kraken.limiter, kraken.timeout, kraken.bulkhead)
    assert kraken.breaker is not None
    assert kraken.breaker.failure_threshold == resilience.breaker("kraken").threshold
    assert kraken.breaker.reset_timeout == resilience.breaker("kraken").timeout_seconds
    assert kraken.retry is not None
    assert kraken.retry.max_attempts == resilience.retry_for("kraken").max_attempts
    assert kraken.limiter is not None
    assert kraken.limiter.rate == resilience.rate_limit("kraken")
    assert kraken.timeout is not None
    assert kraken.timeout.seconds == resilience.timeout("kraken")
    assert kraken.bulkhead is not None
    assert kraken.bulkhead.max_concurrent == resilience.bulkheads["kraken"].max_concurrent

    async def ticker() -> str:
        return "BTC/USD 64000"

    assert await kraken.call_async(ticker) == "BTC/USD 64000"
    binance = policy("binance").replace(retry=None)
    settings = resilience.breaker("binance")
    assert binance.breaker is not None
    assert binance.breaker.half_open_max_calls == settings.half_open_max_calls

    def down() -> None:
        raise ConnectionError("binance down")

    for _ in range(settings.threshold):
        with pytest.raises(ConnectionError):
            binance.call(down)
    assert binance.breaker.state.value == "open"
    state = binance.breaker.get_state()
    assert state["metrics"]["failure_calls"] == settings.threshold
    assert set(state) >= {"name", "state", "metrics"}
