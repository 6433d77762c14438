"""Memory stays bounded: telemetry never keeps guards alive, caches and windows have limits."""

from __future__ import annotations

import gc
import weakref
from typing import Any

import pytest

from otelres.resilience import (
    Bulkhead,
    CircuitBreaker,
    Fallback,
    Policy,
    RateLimiter,
    Retry,
    Timeout,
)
from otelres.testing import FakeClock, TelemetryCapture, capture_telemetry


@pytest.fixture(name="capture")
def _capture() -> TelemetryCapture:
    return capture_telemetry(install_global=False)


def guards(capture: TelemetryCapture) -> list[Any]:
    """One guard of each kind, published through *capture*'s meter provider."""
    meters = {"meter_provider": capture.meter_provider}
    timeout = Timeout("gone", 1.0, **meters)
    return [
        CircuitBreaker("gone", tracer_provider=capture.tracer_provider, **meters),
        Retry("gone", initial_delay=0, tracer_provider=capture.tracer_provider, **meters),
        RateLimiter("gone", rate=100, **meters),
        Bulkhead("gone", max_concurrent=2, **meters),
        timeout,
        Fallback("gone", value=0, **meters),
    ]


def test_discarded_guards_are_collected(capture: TelemetryCapture) -> None:
    """Guards used, published and composed into a policy are freed once the application drops them."""
    made = guards(capture)
    breaker, retry, limiter, bulkhead, timeout, fallback = made
    pol = Policy(
        "gone",
        breaker=breaker,
        retry=retry,
        limiter=limiter,
        bulkhead=bulkhead,
        timeout=timeout,
        fallback=fallback,
    )
    assert pol.call(lambda: "ok") == "ok"
    capture.metric_reader.get_metrics_data()
    timeout.shutdown(wait=True)
    refs = [weakref.ref(guard) for guard in (*made, pol)]
    del made, breaker, retry, limiter, bulkhead, timeout, fallback, pol
    gc.collect()
    assert [ref() for ref in refs] == [None] * len(refs)
    capture.metric_reader.get_metrics_data()  # collecting after they are gone still works


def test_last_good_cache_keeps_at_most_max_entries(clock: FakeClock) -> None:
    """last_good remembers at most max_entries calls, dropping the least recently stored first."""
    fallback = Fallback(
        "bounded", last_good=True, max_entries=3, key=lambda fn, args, kwargs: args, clock=clock
    )
    for symbol in range(10):
        assert fallback.call(lambda s: s * 10, symbol) == symbol * 10

    def down(symbol: int) -> int:
        raise ConnectionError(symbol)

    for symbol in (7, 8, 9):  # the three stored last are remembered
        assert fallback.call(down, symbol) == symbol * 10
    with pytest.raises(ConnectionError):  # the older ones were dropped
        fallback.call(down, 6)
    assert len(fallback._cache) == 3
