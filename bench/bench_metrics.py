"""The metrics facade vs raw OpenTelemetry instruments, on one SDK MeterProvider.

Target (issue 5): ``metrics.increment(name, 1, attrs)`` costs at most 1.2x a raw OTel
``counter.add(1, attrs)`` with the same attributes. The timer is compared with timing a block
by hand and recording into a raw histogram, and ``metrics.gauge`` with the cheapest raw
alternative (a synchronous OTel gauge ``set``).

Run: .venv/bin/python bench/bench_metrics.py
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from otelres.monitoring import MetricsCollector

ROUNDS = 15
CALLS = 5_000
TARGET = 1.2


def _per_call(fn: Callable[[], object], calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls


def compare(name: str, ours: Callable[[], object], theirs: Callable[[], object]) -> float:
    """Interleave both for ROUNDS rounds; print and return the median ratio ours/theirs."""
    ratios, ours_t, theirs_t = [], [], []
    for _ in range(ROUNDS):
        t = _per_call(theirs, CALLS)
        o = _per_call(ours, CALLS)
        ratios.append(o / t)
        ours_t.append(o)
        theirs_t.append(t)
    ratio = statistics.median(ratios)
    print(
        f"{name:<40} otelres {statistics.median(ours_t) * 1e6:6.2f} us  "
        f"raw OTel {statistics.median(theirs_t) * 1e6:6.2f} us  ratio {ratio:.2f}x"
    )
    return ratio


def main() -> int:
    provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
    metrics = MetricsCollector(meter_provider=provider)
    raw = provider.get_meter("bench")
    counter = raw.create_counter("raw.operations_completed")
    histogram = raw.create_histogram("raw.operation_duration", unit="s")
    gauge = raw.create_gauge("raw.queue_depth")
    attrs = {"strategy": "ma_crossover", "exchange": "kraken"}

    increment_ratio = compare(
        "increment vs counter.add",
        lambda: metrics.increment("operations_completed", 1, attrs),
        lambda: counter.add(1, attrs),
    )

    def ours_timer() -> None:
        with metrics.timer("operation_duration", attrs):
            pass

    def raw_timer() -> None:
        start = time.perf_counter()
        histogram.record(time.perf_counter() - start, attrs)

    compare("with timer() vs perf_counter + record", ours_timer, raw_timer)
    compare(
        "gauge vs synchronous gauge.set",
        lambda: metrics.gauge("queue_depth", 3, attrs),
        lambda: gauge.set(3, attrs),
    )
    verdict = "meets" if increment_ratio <= TARGET else "MISSES"
    print(f"metrics.increment: {increment_ratio:.2f}x raw counter.add ({verdict} <= {TARGET}x)")
    provider.shutdown()
    return 0 if increment_ratio <= TARGET else 1


if __name__ == "__main__":
    raise SystemExit(main())
