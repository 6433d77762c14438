"""Retry on the success path: otelres ``Retry`` vs tenacity and stamina, metrics on.

Targets (issue 3): otelres <= 0.25x tenacity ``@retry(stop=stop_after_attempt(3))`` and
below stamina ``@stamina.retry(on=Exception, attempts=3)``; metrics on adds at most 1 us per
call over metrics off. Each contender decorates the same trivial function; "metrics on"
means an SDK ``MeterProvider`` with a reader is injected, "off" a no-op provider.

Run: .venv/bin/python bench/bench_retry.py
"""

from __future__ import annotations

import asyncio
import sys

import stamina
import tenacity
from _ratios import async_timer, compare, sync_timer, verdict
from opentelemetry.metrics import NoOpMeterProvider
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider

from otelres.resilience import Retry

CALLS = 20_000


def work(x: int) -> int:
    return x + 1


async def awork(x: int) -> int:
    return x + 1


def main() -> int:
    sdk_meter = MeterProvider(metric_readers=[InMemoryMetricReader()])
    tracer = TracerProvider()
    on = Retry("bench", max_attempts=3, meter_provider=sdk_meter, tracer_provider=tracer)
    off = Retry("bench_off", max_attempts=3, meter_provider=NoOpMeterProvider(), tracer_provider=tracer)
    ours_on, ours_off = on(work), off(work)
    ten = tenacity.retry(stop=tenacity.stop_after_attempt(3))(work)
    sta = stamina.retry(on=Exception, attempts=3)(work)
    results = compare(
        "sync success path (one call, no failure)",
        {
            "tenacity": sync_timer(lambda: ten(1), CALLS),
            "stamina": sync_timer(lambda: sta(1), CALLS),
            "otelres (metrics on)": sync_timer(lambda: ours_on(1), CALLS),
            "otelres (metrics off)": sync_timer(lambda: ours_off(1), CALLS),
        },
    )
    loop = asyncio.new_event_loop()
    aours = on(awork)
    aten = tenacity.retry(stop=tenacity.stop_after_attempt(3))(awork)
    asta = stamina.retry(on=Exception, attempts=3)(awork)
    aresults = compare(
        "async success path",
        {
            "tenacity": async_timer(loop, lambda: aten(1), CALLS),
            "stamina": async_timer(loop, lambda: asta(1), CALLS),
            "otelres (metrics on)": async_timer(loop, lambda: aours(1), CALLS),
        },
    )
    loop.close()
    ours_sync, ours_async = results["otelres (metrics on)"], aresults["otelres (metrics on)"]
    ok = verdict("sync otelres / tenacity", ours_sync.ratio, 0.25)
    ok &= verdict("sync otelres / stamina", ours_sync.median / results["stamina"].median, 1.0)
    ok &= verdict("async otelres / tenacity", ours_async.ratio, 0.25)
    ok &= verdict("async otelres / stamina", ours_async.median / aresults["stamina"].median, 1.0)
    extra = ours_sync.extra_us(results["otelres (metrics off)"])
    ok &= verdict("metrics on - off (us per call)", extra, 1.0)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
