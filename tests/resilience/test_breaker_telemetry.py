"""What the breaker publishes: observable metrics, span events, spans in mode "always"."""

from __future__ import annotations

import gc
import time
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.trace import StatusCode

from otelres import _otel
from otelres.resilience import CircuitBreakerOpenError
from otelres.resilience._breaker import BreakerState, CircuitBreaker
from otelres.resilience._breaker_storage import LocalBreakerStorage
from otelres.testing import FakeClock, TelemetryCapture, capture_telemetry


@pytest.fixture(name="capture")
def _capture() -> TelemetryCapture:
    return capture_telemetry(install_global=False)


@pytest.fixture(name="breaker")
def _breaker(capture: TelemetryCapture, clock: FakeClock) -> CircuitBreaker:
    return CircuitBreaker(
        "kraken",
        failure_threshold=2,
        reset_timeout=10,
        clock=clock,
        meter_provider=capture.meter_provider,
        tracer_provider=capture.tracer_provider,
    )


def _boom(message: str = "down") -> None:
    raise ConnectionError(message)


def _fail(breaker: CircuitBreaker, times: int = 1, message: str = "down") -> None:
    for _ in range(times):
        with pytest.raises(ConnectionError):
            breaker.call(_boom, message)


def _events(capture: TelemetryCapture) -> list[tuple[str, dict[str, Any]]]:
    return [(e.name, dict(e.attributes or {})) for s in capture.spans() for e in s.events]


# --------------------------------------------------------------------------- metrics
def test_calls_are_counted_by_outcome(breaker: CircuitBreaker, capture: TelemetryCapture) -> None:
    """otelres.breaker.calls counts each call under exactly one breaker.outcome."""
    breaker.call(int)
    breaker.call(int)
    _fail(breaker, 2)
    with pytest.raises(CircuitBreakerOpenError):
        breaker.call(int)
    points = {
        p.attributes["breaker.outcome"]: p.value
        for p in capture.points("otelres.breaker.calls", **{"breaker.name": "kraken"})
    }
    assert points == {"success": 2, "failure": 2, "ignored": 0, "rejected": 1, "slow": 0}
    assert capture.points("otelres.breaker.calls")[0].unit == "{call}"


def test_state_gauge_has_one_series_per_state(
    breaker: CircuitBreaker, capture: TelemetryCapture
) -> None:
    """otelres.breaker.state reports 1 for the current state and 0 for every other."""

    def states() -> dict[str, float]:
        return {
            p.attributes["breaker.state"]: p.value
            for p in capture.points("otelres.breaker.state", **{"breaker.name": "kraken"})
        }

    assert states() == {"closed": 1, "open": 0, "half_open": 0, "forced_open": 0, "disabled": 0}
    _fail(breaker, 2)
    assert states()["open"] == 1
    assert sum(states().values()) == 1


def test_transitions_are_counted(
    breaker: CircuitBreaker, capture: TelemetryCapture, clock: FakeClock
) -> None:
    """otelres.breaker.transitions counts each change by from and to state."""
    _fail(breaker, 2)
    clock.advance(10)
    _fail(breaker)
    clock.advance(10)
    breaker.call(int)
    counted = {
        (p.attributes["breaker.from_state"], p.attributes["breaker.to_state"]): p.value
        for p in capture.points("otelres.breaker.transitions")
    }
    assert counted == {
        ("closed", "open"): 1,
        ("open", "half_open"): 2,
        ("half_open", "open"): 1,
        ("half_open", "closed"): 1,
    }


def test_rates_are_minus_one_until_minimum_calls(
    capture: TelemetryCapture, clock: FakeClock
) -> None:
    """Failure and slow-call rates read -1 before minimum_calls, then the window's ratios."""
    breaker = CircuitBreaker(
        "rated",
        failure_threshold=100,
        failure_rate_threshold=0.9,
        slow_call_duration=1.0,
        window_size=10,
        minimum_calls=4,
        clock=clock,
        meter_provider=capture.meter_provider,
    )

    def rates() -> tuple[float | None, float | None]:
        return (
            capture.value("otelres.breaker.failure_rate", **{"breaker.name": "rated"}),
            capture.value("otelres.breaker.slow_call_rate", **{"breaker.name": "rated"}),
        )

    _fail(breaker)
    assert rates() == (-1.0, -1.0)

    def slow() -> None:
        clock.advance(2)

    breaker.call(slow)
    breaker.call(int)
    breaker.call(int)
    assert rates() == (0.25, 0.25)
    assert capture.points("otelres.breaker.failure_rate")[0].unit == "1"


def test_rates_without_a_window_are_minus_one(
    breaker: CircuitBreaker, capture: TelemetryCapture
) -> None:
    """A breaker without a sliding window reports both rates as -1."""
    breaker.call(int)
    assert capture.value("otelres.breaker.failure_rate", **{"breaker.name": "kraken"}) == -1.0
    assert capture.value("otelres.breaker.slow_call_rate", **{"breaker.name": "kraken"}) == -1.0


def test_collected_breakers_stop_being_reported(capture: TelemetryCapture) -> None:
    """A breaker that is garbage collected disappears from the metrics."""
    breaker = CircuitBreaker("ephemeral", meter_provider=capture.meter_provider)
    breaker.call(int)
    assert capture.value("otelres.breaker.calls", **{"breaker.name": "ephemeral"}) == 1
    del breaker
    gc.collect()
    assert capture.value("otelres.breaker.calls", **{"breaker.name": "ephemeral"}) is None


def test_global_provider_is_the_default(telemetry: TelemetryCapture) -> None:
    """Without an injected meter provider the breaker reports to the global one."""
    breaker = CircuitBreaker("global-default")
    breaker.call(int)
    assert telemetry.value(
        "otelres.breaker.calls", **{"breaker.name": "global-default", "breaker.outcome": "success"}
    ) == 1


# --------------------------------------------------------------------------- span events
def test_rejection_and_transition_are_events_on_the_active_span(
    breaker: CircuitBreaker, capture: TelemetryCapture
) -> None:
    """In mode "events" a trip and a rejection are events on the caller's span; no extra spans."""
    tracer = capture.tracer_provider.get_tracer("app")
    with tracer.start_as_current_span("handle-order"):
        breaker.call(int)
        _fail(breaker, 2)
        with pytest.raises(CircuitBreakerOpenError):
            breaker.call(int)
    assert [s.name for s in capture.spans()] == ["handle-order"]
    assert _events(capture) == [
        (
            "otelres.breaker.transition",
            {
                "breaker.name": "kraken",
                "breaker.from_state": "closed",
                "breaker.to_state": "open",
                "breaker.reason": "failure threshold",
            },
        ),
        (
            "otelres.breaker.rejected",
            {"breaker.name": "kraken", "breaker.state": "open", "breaker.retry_after": 10.0},
        ),
    ]


@pytest.mark.parametrize("where", ["global", "argument"])
def test_mode_off_adds_no_events(capture: TelemetryCapture, clock: FakeClock, where: str) -> None:
    """Span mode "off" (process-wide or per breaker) keeps the caller's span untouched."""
    if where == "global":
        _otel.set_span_mode("off")
    breaker = CircuitBreaker(
        "quiet",
        failure_threshold=1,
        clock=clock,
        span_mode="off" if where == "argument" else None,
        meter_provider=capture.meter_provider,
    )
    with capture.tracer_provider.get_tracer("app").start_as_current_span("outer"):
        _fail(breaker)
        with pytest.raises(CircuitBreakerOpenError):
            breaker.call(int)
    assert _events(capture) == []


# --------------------------------------------------------------------------- mode "always"
def test_mode_always_makes_a_span_per_call(capture: TelemetryCapture, clock: FakeClock) -> None:
    """In mode "always" every call gets an otelres.breaker span, ERROR only when it failed."""
    breaker = CircuitBreaker(
        "traced",
        failure_threshold=1,
        clock=clock,
        span_mode="always",
        tracer_provider=capture.tracer_provider,
        meter_provider=capture.meter_provider,
    )
    with capture.tracer_provider.get_tracer("app").start_as_current_span("outer") as outer:
        assert breaker.call(lambda: 7) == 7
        _fail(breaker, message="GET https://api.example/?signature=SECRET")
        with pytest.raises(CircuitBreakerOpenError):
            breaker.call(int)
    spans = capture.spans("otelres.breaker")
    assert len(spans) == 3
    ok, failed, rejected = spans
    assert all(s.parent is not None and s.parent.span_id == outer.get_span_context().span_id
               for s in spans)
    assert ok.attributes == {"breaker.name": "traced", "breaker.state": "closed"}
    assert ok.status.status_code is StatusCode.UNSET
    assert failed.status.status_code is StatusCode.ERROR
    assert failed.attributes["error.type"] == "ConnectionError"
    assert "SECRET" not in (failed.status.description or "")
    assert rejected.attributes["error.type"] == "CircuitBreakerOpenError"
    assert [e.name for e in rejected.events] == ["otelres.breaker.rejected"]


async def test_mode_always_for_async_calls(capture: TelemetryCapture) -> None:
    """Async calls get their span in mode "always" too, with the call running inside it."""
    _otel.set_span_mode("always")
    breaker = CircuitBreaker("traced-async", tracer_provider=capture.tracer_provider)
    seen: list[str] = []

    async def work() -> int:
        from opentelemetry import trace

        seen.append(trace.get_current_span().name)  # type: ignore[attr-defined]
        return 3

    assert await breaker.call_async(work) == 3
    assert seen == ["otelres.breaker"]
    assert len(capture.spans("otelres.breaker")) == 1


class _ExplodingProcessor(SpanProcessor):
    """A span processor whose every hook raises, like a broken exporter pipeline."""

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        raise RuntimeError("processor down")

    def on_end(self, span: Any) -> None:
        raise RuntimeError("processor down")


@pytest.fixture(name="broken_tracing")
def _broken_tracing() -> Iterator[TracerProvider]:
    provider = TracerProvider()
    provider.add_span_processor(_ExplodingProcessor())
    yield provider
    provider.shutdown()


def test_broken_tracing_never_changes_the_call(
    broken_tracing: TracerProvider, clock: FakeClock
) -> None:
    """With a span pipeline that raises, calls still return, fail and get rejected as usual."""
    with pytest.raises(RuntimeError, match="processor down"):  # the pipeline really is broken
        broken_tracing.get_tracer("app").start_span("probe")
    breaker = CircuitBreaker(
        "resilient",
        failure_threshold=1,
        clock=clock,
        span_mode="always",
        tracer_provider=broken_tracing,
    )
    assert breaker.call(lambda: "fine") == "fine"
    _fail(breaker)
    with pytest.raises(CircuitBreakerOpenError):
        breaker.call(int)
    assert breaker.get_state()["metrics"]["total_calls"] == 3


def test_breakers_sharing_a_name_are_one_series(capture: TelemetryCapture) -> None:
    """Two breakers with one name report summed counts, and 1 for each state either is in."""
    first = CircuitBreaker("twin", failure_threshold=1, meter_provider=capture.meter_provider)
    second = CircuitBreaker("twin", meter_provider=capture.meter_provider)
    first.call(int)
    second.call(int)
    with pytest.raises(ConnectionError):
        first.call(_boom)
    successes = capture.points(
        "otelres.breaker.calls", **{"breaker.name": "twin", "breaker.outcome": "success"}
    )
    assert [p.value for p in successes] == [2]
    states = {
        p.attributes["breaker.state"]: p.value
        for p in capture.points("otelres.breaker.state", **{"breaker.name": "twin"})
    }
    assert (states["open"], states["closed"], states["half_open"]) == (1, 1, 0)


class _FlakyStateStorage(LocalBreakerStorage):
    """A local storage whose state read can be made to fail, like an unreachable server."""

    __slots__ = ("_state", "broken")

    def __init__(self) -> None:
        self.broken = False
        super().__init__()

    @property  # type: ignore[override]
    def state(self) -> BreakerState:
        if self.broken:
            raise ConnectionError("state store unreachable")
        return self._state

    @state.setter
    def state(self, value: BreakerState) -> None:
        self._state = value


def test_a_failing_breaker_never_breaks_collection(
    capture: TelemetryCapture, caplog: pytest.LogCaptureFixture
) -> None:
    """If reading one breaker fails at collection, it is logged and the other instruments report."""
    storage = _FlakyStateStorage()
    breaker = CircuitBreaker("flaky-store", storage=storage, meter_provider=capture.meter_provider)
    breaker.call(int)
    storage.broken = True
    assert capture.value("otelres.breaker.calls", **{"breaker.name": "flaky-store"}) == 1
    assert capture.points("otelres.breaker.state", **{"breaker.name": "flaky-store"}) == []
    assert "collecting otelres.breaker.state failed" in caplog.text


def test_a_failing_metric_exporter_never_reaches_the_caller(clock: FakeClock) -> None:
    """With an exporter that raises on every export, guarded calls behave exactly the same."""
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import MetricExporter, PeriodicExportingMetricReader

    class Exploding(MetricExporter):
        exports = 0

        def export(self, metrics_data: Any, timeout_millis: float = 0, **kwargs: Any) -> Any:
            Exploding.exports += 1
            raise ConnectionError("collector gone")

        def force_flush(self, timeout_millis: float = 0) -> bool:
            return True

        def shutdown(self, timeout_millis: float = 0, **kwargs: Any) -> None:
            return None

    reader = PeriodicExportingMetricReader(Exploding(), export_interval_millis=5)
    provider = MeterProvider(metric_readers=[reader])
    try:
        breaker = CircuitBreaker(
            "exported", failure_threshold=3, clock=clock, meter_provider=provider
        )
        start = time.monotonic()
        calls = 0
        while time.monotonic() - start < 0.2 or (
            Exploding.exports < 2 and time.monotonic() - start < 10
        ):
            assert breaker.call(int) == 0
            calls += 1
            time.sleep(0.001)
        assert Exploding.exports >= 2  # the exporter really failed while calls went on
        assert breaker.get_state()["metrics"]["success_calls"] == calls
    finally:
        provider.shutdown()


def test_guard_makes_a_span_in_mode_always(capture: TelemetryCapture, clock: FakeClock) -> None:
    """A guarded block gets its otelres.breaker span in mode "always", ERROR when it raised."""
    breaker = CircuitBreaker(
        "guarded-block", clock=clock, span_mode="always", tracer_provider=capture.tracer_provider
    )
    with breaker.guard():
        pass
    with pytest.raises(ConnectionError), breaker.guard():
        _boom()
    ok, failed = capture.spans("otelres.breaker")
    assert ok.status.status_code is StatusCode.UNSET
    assert failed.status.status_code is StatusCode.ERROR
    assert failed.attributes["error.type"] == "ConnectionError"
