"""Closed-state success path: otelres CircuitBreaker vs pybreaker.CircuitBreaker.call.

Targets (issue 3): the otelres breaker costs at most 1.0x ``pybreaker.CircuitBreaker.call``
per successful call with telemetry configured (an SDK ``MeterProvider`` with a metric reader,
the breaker published through it), and metrics on adds at most 1 us per call over metrics off
(the same breaker on a no-op meter provider). Both guard the same trivial function; rounds
interleave the contenders, and the median of the per-round ratios is reported. The "floor"
row is the bare function call, the part of each figure no breaker can remove.

Run: .venv/bin/python bench/bench_breaker.py
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from collections.abc import Callable

import pybreaker
from opentelemetry.metrics import NoOpMeterProvider
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from otelres.resilience import CircuitBreaker

ROUNDS = 21
CALLS = 20_000
RATIO_TARGET = 1.0
DELTA_TARGET_US = 1.0


def guarded() -> int:
    return 1


def per_call(fn: Callable[[], object], calls: int = CALLS) -> float:
    """Seconds per call of *fn*, over *calls* calls in a plain loop."""
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls


def interleave(contenders: dict[str, Callable[[], object]]) -> dict[str, list[float]]:
    """Run every contender once per round, in rotating order; per-call seconds by name."""
    times: dict[str, list[float]] = {name: [] for name in contenders}
    names = list(contenders)
    for round_ in range(ROUNDS):
        shift = round_ % len(names)
        for name in names[shift:] + names[:shift]:
            times[name].append(per_call(contenders[name]))
    return times


def median_ratio(times: dict[str, list[float]], ours: str, theirs: str) -> float:
    return statistics.median(o / t for o, t in zip(times[ours], times[theirs], strict=True))


def median_delta_us(times: dict[str, list[float]], a: str, b: str) -> float:
    return statistics.median(x - y for x, y in zip(times[a], times[b], strict=True)) * 1e6


def main() -> int:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    with_metrics = CircuitBreaker("bench-metrics", meter_provider=provider)
    without_metrics = CircuitBreaker("bench-nometrics", meter_provider=NoOpMeterProvider())
    theirs = pybreaker.CircuitBreaker(fail_max=5, reset_timeout=60)

    @with_metrics
    def decorated() -> int:
        return 1

    @theirs
    def decorated_pybreaker() -> int:
        return 1

    times = interleave(
        {
            "floor": guarded,
            "otelres.call": lambda: with_metrics.call(guarded),
            "otelres.call, metrics off": lambda: without_metrics.call(guarded),
            "pybreaker.call": lambda: theirs.call(guarded),
            "otelres @decorator": decorated,
            "pybreaker @decorator": decorated_pybreaker,
        }
    )
    # The metrics really are published: the calls made above are in the reader.
    data = reader.get_metrics_data()
    assert data is not None
    names = {m.name for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics}
    assert "otelres.breaker.calls" in names, names

    for name, values in times.items():
        print(f"{name:<28} {statistics.median(values) * 1e6:6.3f} us/call")
    call_ratio = median_ratio(times, "otelres.call", "pybreaker.call")
    decorator_ratio = median_ratio(times, "otelres @decorator", "pybreaker @decorator")
    delta = median_delta_us(times, "otelres.call", "otelres.call, metrics off")
    print()
    print(f"otelres.call / pybreaker.call (metrics on):   {call_ratio:.2f}x (target <= {RATIO_TARGET}x)")
    print(f"otelres @decorator / pybreaker @decorator:    {decorator_ratio:.2f}x")
    print(f"metrics on - metrics off:                     {delta:+.3f} us (target <= {DELTA_TARGET_US} us)")

    rejection_ratio = _rejection_ratio(provider)
    print(f"open breaker, rejecting a call / pybreaker:   {rejection_ratio:.2f}x")

    overhead = asyncio.run(_async_overhead_us(with_metrics))
    sync_overhead = median_delta_us(times, "otelres.call", "floor")
    print(f"breaker overhead, call_async / call:          {overhead:.3f} us / {sync_overhead:.3f} us")

    ok = call_ratio <= RATIO_TARGET and delta <= DELTA_TARGET_US
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


def _rejection_ratio(provider: MeterProvider) -> float:
    """Median cost ratio of an open breaker rejecting a call (raise and catch included)."""
    ours = CircuitBreaker("bench-open", failure_threshold=1, reset_timeout=3600,
                          meter_provider=provider)
    theirs = pybreaker.CircuitBreaker(fail_max=1, reset_timeout=3600)
    for breaker in (ours, theirs):
        try:
            breaker.call(_fail)
        except (ZeroDivisionError, pybreaker.CircuitBreakerError):
            pass

    def rejected_by_ours() -> None:
        try:
            ours.call(guarded)
        except pybreaker.CircuitBreakerError:
            pass

    def rejected_by_theirs() -> None:
        try:
            theirs.call(guarded)
        except pybreaker.CircuitBreakerError:
            pass

    times = interleave({"ours": rejected_by_ours, "theirs": rejected_by_theirs})
    return median_ratio(times, "ours", "theirs")


def _fail() -> None:
    raise ZeroDivisionError


async def _async_overhead_us(breaker: CircuitBreaker) -> float:
    """Microseconds call_async adds to awaiting a coroutine (pybreaker has no asyncio path)."""

    async def coro() -> int:
        return 1

    async def through_breaker() -> float:
        start = time.perf_counter()
        for _ in range(CALLS):
            await breaker.call_async(coro)
        return (time.perf_counter() - start) / CALLS

    async def bare() -> float:
        start = time.perf_counter()
        for _ in range(CALLS):
            await coro()
        return (time.perf_counter() - start) / CALLS

    deltas = [await through_breaker() - await bare() for _ in range(ROUNDS // 3)]
    return statistics.median(deltas) * 1e6


if __name__ == "__main__":
    sys.exit(main())
