"""The metrics facade vs raw OpenTelemetry instruments, on one SDK MeterProvider.

Target (issue 5): ``metrics.increment(name, 1, attrs)`` costs at most 1.2x a raw OTel
``counter.add(1, attrs)`` with the same attributes. The timer is compared with timing a block
by hand and recording into a raw histogram, and ``metrics.gauge`` with the cheapest raw
alternative (a synchronous OTel gauge ``set``).

Rounds are interleaved with a rotating order and the collector off (``bench/_ratios.py``).

Run: .venv/bin/python bench/bench_metrics.py
"""

from __future__ import annotations

import time

from _ratios import compare, sync_timer, verdict
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from otelres.monitoring import MetricsCollector

ROUNDS = 15
CALLS = 5_000
TARGET = 1.2


def main() -> int:
    provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
    metrics = MetricsCollector(meter_provider=provider)
    raw = provider.get_meter("bench")
    counter = raw.create_counter("raw.operations_completed")
    histogram = raw.create_histogram("raw.operation_duration", unit="s")
    gauge = raw.create_gauge("raw.queue_depth")
    attrs = {"strategy": "ma_crossover", "exchange": "kraken"}

    increment = compare(
        "increment vs counter.add",
        {
            "raw OTel counter.add": sync_timer(lambda: counter.add(1, attrs), CALLS),
            "otelres metrics.increment": sync_timer(
                lambda: metrics.increment("operations_completed", 1, attrs), CALLS
            ),
        },
        rounds=ROUNDS,
    )

    def ours_timer() -> None:
        with metrics.timer("operation_duration", attrs):
            pass

    def raw_timer() -> None:
        start = time.perf_counter()
        histogram.record(time.perf_counter() - start, attrs)

    compare(
        "with timer() vs perf_counter + record",
        {
            "raw OTel perf_counter + histogram.record": sync_timer(raw_timer, CALLS),
            "otelres with metrics.timer()": sync_timer(ours_timer, CALLS),
        },
        rounds=ROUNDS,
    )
    compare(
        "gauge vs synchronous gauge.set",
        {
            "raw OTel gauge.set": sync_timer(lambda: gauge.set(3, attrs), CALLS),
            "otelres metrics.gauge": sync_timer(lambda: metrics.gauge("queue_depth", 3, attrs), CALLS),
        },
        rounds=ROUNDS,
    )
    provider.shutdown()
    ratio = increment["otelres metrics.increment"].ratio
    return 0 if verdict("metrics.increment vs raw counter.add", ratio, TARGET) else 1


if __name__ == "__main__":
    raise SystemExit(main())
