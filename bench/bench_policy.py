"""A full policy (rate limiter + circuit breaker + retry) on the success path, metrics on.

Target (issue 3): otelres ``Policy`` with limiter, breaker and retry <= 1.0x nopanic's
``retry`` + ``circuit_breaker`` + ``rate_limit`` stacked in the same order with
``nopanic_otel.instrument()``, both reporting to an SDK ``MeterProvider`` with a reader; and
metrics on adds at most 1 us per call over metrics off (a no-op provider). Sync and async.

Run: .venv/bin/python bench/bench_policy.py
"""

from __future__ import annotations

import asyncio
import sys

import nopanic
import nopanic_otel
from _ratios import async_timer, compare, sync_timer, verdict
from opentelemetry.metrics import NoOpMeterProvider
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider

from otelres.resilience import CircuitBreaker, Policy, RateLimiter, Retry

CALLS = 20_000
HUGE = 1e12


def work(x: int) -> int:
    return x + 1


async def awork(x: int) -> int:
    return x + 1


def ours(name: str, meter_provider: MeterProvider | NoOpMeterProvider, tracer: TracerProvider) -> Policy:
    return Policy(
        name,
        retry=Retry(name, max_attempts=3, meter_provider=meter_provider, tracer_provider=tracer),
        breaker=CircuitBreaker(name, meter_provider=meter_provider, tracer_provider=tracer),
        limiter=RateLimiter(name, rate=HUGE, capacity=HUGE, meter_provider=meter_provider),
        tracer_provider=tracer,
    )


def theirs(fn: object) -> object:
    return nopanic.retry(attempts=3)(
        nopanic.circuit_breaker(name="bench")(nopanic.rate_limit(HUGE, burst=HUGE, name="bench")(fn))
    )


def main() -> int:
    sdk_meter = MeterProvider(metric_readers=[InMemoryMetricReader()])
    tracer = TracerProvider()
    nopanic_otel.instrument(meter_provider=sdk_meter)
    on = ours("bench", sdk_meter, tracer)
    off = ours("bench_off", NoOpMeterProvider(), tracer)
    ours_on, ours_off = on(work), off(work)
    nop = theirs(work)
    sync = compare(
        "sync: retry + breaker + limiter, success path",
        {
            "nopanic + nopanic_otel": sync_timer(lambda: nop(1), CALLS),  # type: ignore[operator]
            "otelres Policy (metrics on)": sync_timer(lambda: ours_on(1), CALLS),
            "otelres Policy (metrics off)": sync_timer(lambda: ours_off(1), CALLS),
        },
    )
    loop = asyncio.new_event_loop()
    aon, aoff, anop = on(awork), off(awork), theirs(awork)
    asynchronous = compare(
        "async: retry + breaker + limiter, success path",
        {
            "nopanic + nopanic_otel": async_timer(loop, lambda: anop(1), CALLS),  # type: ignore[operator]
            "otelres Policy (metrics on)": async_timer(loop, lambda: aon(1), CALLS),
            "otelres Policy (metrics off)": async_timer(loop, lambda: aoff(1), CALLS),
        },
    )
    loop.close()
    ok = verdict("sync otelres / nopanic", sync["otelres Policy (metrics on)"].ratio, 1.0)
    ok &= verdict("async otelres / nopanic", asynchronous["otelres Policy (metrics on)"].ratio, 1.0)
    for label, res in (("sync", sync), ("async", asynchronous)):
        extra = res["otelres Policy (metrics on)"].extra_us(res["otelres Policy (metrics off)"])
        ok &= verdict(f"{label} metrics on - off (us per call)", extra, 1.0)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
