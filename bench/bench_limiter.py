"""Rate limiter acquisition when tokens are there: otelres vs aiolimiter and limits, metrics on.

Targets (issue 3): ``await RateLimiter.acquire_async()`` <= 1.0x aiolimiter's
``await AsyncLimiter.acquire()``; ``RateLimiter.acquire()`` <= 1.0x limits' fixed window
``FixedWindowRateLimiter(MemoryStorage()).hit(item)``. Rates are set high enough that nobody
waits, so the success path is what is measured. otelres runs with an SDK ``MeterProvider``
and reader injected ("metrics on") and with a no-op provider ("off").

Run: .venv/bin/python bench/bench_limiter.py
"""

from __future__ import annotations

import asyncio
import sys

from _ratios import async_timer, compare, sync_timer, verdict
from aiolimiter import AsyncLimiter
from limits import RateLimitItemPerSecond
from limits.storage import MemoryStorage
from limits.strategies import FixedWindowRateLimiter
from opentelemetry.metrics import NoOpMeterProvider
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from otelres.resilience import RateLimiter

CALLS = 20_000
HUGE = 1e12


def main() -> int:
    sdk_meter = MeterProvider(metric_readers=[InMemoryMetricReader()])
    on = RateLimiter("bench", rate=HUGE, capacity=HUGE, meter_provider=sdk_meter)
    off = RateLimiter("bench_off", rate=HUGE, capacity=HUGE, meter_provider=NoOpMeterProvider())
    fixed = FixedWindowRateLimiter(MemoryStorage())
    item = RateLimitItemPerSecond(10**12)
    sync = compare(
        "sync acquire (tokens available)",
        {
            "limits fixed window hit": sync_timer(lambda: fixed.hit(item, "bench"), CALLS),
            "otelres acquire (metrics on)": sync_timer(on.acquire, CALLS),
            "otelres acquire (metrics off)": sync_timer(off.acquire, CALLS),
        },
    )
    loop = asyncio.new_event_loop()
    aio = AsyncLimiter(HUGE, 1)
    asynchronous = compare(
        "async acquire (tokens available)",
        {
            "aiolimiter acquire": async_timer(loop, aio.acquire, CALLS),
            "otelres acquire_async (metrics on)": async_timer(loop, on.acquire_async, CALLS),
            "otelres acquire_async (metrics off)": async_timer(loop, off.acquire_async, CALLS),
        },
    )
    loop.close()
    ok = verdict("sync otelres / limits", sync["otelres acquire (metrics on)"].ratio, 1.0)
    ok &= verdict("async otelres / aiolimiter", asynchronous["otelres acquire_async (metrics on)"].ratio, 1.0)
    extra = sync["otelres acquire (metrics on)"].extra_us(sync["otelres acquire (metrics off)"])
    ok &= verdict("sync metrics on - off (us per call)", extra, 1.0)
    extra = asynchronous["otelres acquire_async (metrics on)"].extra_us(
        asynchronous["otelres acquire_async (metrics off)"]
    )
    ok &= verdict("async metrics on - off (us per call)", extra, 1.0)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
