"""Instrumented vs plain ccxt ``fetch_ticker`` against the local exchange (sync and async).

Both clients talk to the same local :class:`otelres.testing.ExchangeServer` (in a child
process by default), with markets preloaded and the same ccxt settings (ccxt's own
rate limiting off on both, and no otelres limiter: the script checks that neither
client can wait in a throttle), in one process run. The instrumented client goes
through :class:`CcxtInstrumentor` with the full telemetry path an application would
have: an SDK TracerProvider with a BatchSpanProcessor (to an exporter that drops
spans), an SDK MeterProvider, and the per-exchange resilience guard (breaker and
retry). Calls alternate one by one between the two clients (who goes first alternates
too), so both see the same machine load; the figure is the ratio of the medians of
the single-call times, wall-clock and process CPU.

    .venv/bin/python bench/bench_ccxt.py [--pairs 3000] [--sample-ratio 0.1] [--sdk none]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Iterator, Sequence
from typing import Any


def _providers(sample_ratio: float) -> tuple[Any, Any]:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
    from opentelemetry.sdk.trace.sampling import ALWAYS_ON, ParentBased, TraceIdRatioBased

    class _Drop(SpanExporter):
        def export(self, spans: Sequence[Any]) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    sampler = ALWAYS_ON if sample_ratio >= 1 else ParentBased(TraceIdRatioBased(sample_ratio))
    tracer_provider = TracerProvider(sampler=sampler)
    tracer_provider.add_span_processor(BatchSpanProcessor(_Drop()))
    return tracer_provider, MeterProvider(metric_readers=[InMemoryMetricReader()])


class _RemoteServer:
    """The local exchange in a child process, so its work does not share our GIL."""

    def __init__(self) -> None:
        import subprocess
        import sys

        self._process = subprocess.Popen(
            [sys.executable, "-m", "otelres._testing.exchange"],
            stdout=subprocess.PIPE, text=True,
        )
        assert self._process.stdout is not None
        self.url = self._process.stdout.readline().strip()
        from otelres._testing.exchange import KRAKEN_CREDENTIALS

        self._credentials = KRAKEN_CREDENTIALS

    def credentials(self, exchange_id: str) -> Any:
        return self._credentials

    def client(self, exchange_id: str, **kwargs: Any) -> Any:
        from otelres.testing import exchange_client

        return exchange_client(self, exchange_id, **kwargs)  # type: ignore[arg-type]

    def stop(self) -> None:
        self._process.terminate()
        self._process.wait(timeout=10)


Result = tuple[float, float, float, float, float, float]
Sample = tuple[float, float]


def _ratio(plain: list[Sample], traced: list[Sample]) -> Result:
    """(plain µs, traced µs, ratio) for wall-clock, then the same for this process's CPU time."""
    out: list[float] = []
    for k in (0, 1):
        p = statistics.median(t[k] for t in plain)
        i = statistics.median(t[k] for t in traced)
        out += [p * 1e6, i * 1e6, i / p]
    return tuple(out)  # type: ignore[return-value]


def _clock() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def _pairs(pairs: int) -> Iterator[tuple[int, int]]:
    """Which client goes first in each pair: alternately the plain (0) and the traced (1) one."""
    for n in range(pairs):
        yield (0, 1) if n % 2 else (1, 0)


def _check_fair(plain: Any, traced: Any) -> None:
    """Both clients must do the same HTTP work: same throttle settings, no limiter of ours."""
    from otelres_instrumentation_ccxt import CcxtInstrumentor

    assert plain.enableRateLimit == traced.enableRateLimit is False, "ccxt's throttle must be off"
    assert plain.rateLimit == traced.rateLimit
    guard = CcxtInstrumentor.guard(traced.id)
    assert guard is None or guard.limiter is None, "otelres' limiter would make calls wait"


def bench_sync(server: Any, pairs: int) -> Result:
    from otelres_instrumentation_ccxt import CcxtInstrumentor

    clients = (server.client("kraken"), server.client("kraken"))
    for client in clients:
        client.load_markets()
    CcxtInstrumentor.instrument_client(clients[1])
    _check_fair(*clients)
    times: tuple[list[Sample], list[Sample]] = ([], [])
    for client in clients * 100:
        client.fetch_ticker("BTC/USD")
    for order in _pairs(pairs):
        for k in order:
            wall, cpu = _clock()
            clients[k].fetch_ticker("BTC/USD")
            wall2, cpu2 = _clock()
            times[k].append((wall2 - wall, cpu2 - cpu))
    return _ratio(*times)


async def bench_async(server: Any, pairs: int) -> Result:
    from otelres_instrumentation_ccxt import CcxtInstrumentor

    clients = (server.client("kraken", flavour="async"), server.client("kraken", flavour="async"))
    try:
        for client in clients:
            await client.load_markets()
        CcxtInstrumentor.instrument_client(clients[1])
        _check_fair(*clients)
        times: tuple[list[Sample], list[Sample]] = ([], [])
        for client in clients * 100:
            await client.fetch_ticker("BTC/USD")
        for order in _pairs(pairs):
            for k in order:
                wall, cpu = _clock()
                await clients[k].fetch_ticker("BTC/USD")
                wall2, cpu2 = _clock()
                times[k].append((wall2 - wall, cpu2 - cpu))
        return _ratio(*times)
    finally:
        for client in clients:
            await client.close()


def bench_parts(rounds: int) -> list[tuple[str, float]]:
    """CPU µs of the pieces a traced call adds, without ccxt or a network (best of rounds)."""
    from otelres_instrumentation_ccxt import _runtime, _wrappers

    runtime = _runtime.Runtime()

    class _Exchange:
        id = "kraken"

    exchange = _Exchange()
    url = "http://127.0.0.1:8765/0/public/Ticker?pair=XXBTZUSD"

    def call_span() -> None:
        call, ctx, token = _wrappers._start_call(runtime, exchange, "fetch_ticker", 0,
                                                 ("BTC/USD",), {})
        _wrappers._finish_call(call, ctx, token, None)

    def http_span() -> None:
        http, ctx, token = _wrappers._start_http()
        http.status = 200
        _wrappers._finish_http(runtime, url, "GET", http, ctx, token, None)

    def histogram() -> None:
        runtime.record_duration(0.001, "kraken", "fetch_ticker", None)

    rows = []
    for name, fn in (("call span + histogram", call_span), ("HTTP span", http_span),
                     ("histogram alone", histogram)):
        best = float("inf")
        for _ in range(rounds):
            start = time.process_time()
            for _ in range(5000):
                fn()
            best = min(best, (time.process_time() - start) / 5000)
        rows.append((name, best * 1e6))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=3000,
                        help="calls per client, plain and traced alternating (default 3000)")
    parser.add_argument(
        "--sample-ratio", type=float, default=1.0,
        help="trace sampling ratio of the SDK (default 1: every call recorded)",
    )
    parser.add_argument(
        "--sdk", choices=("sdk", "none"), default="sdk",
        help="record with the OpenTelemetry SDK (default) or with no SDK installed (API no-ops)",
    )
    parser.add_argument(
        "--server", choices=("process", "thread"), default="process",
        help="run the local exchange in its own process (default) or in a thread of this one",
    )
    args = parser.parse_args()

    from opentelemetry import metrics, trace

    from otelres import config
    from otelres.testing import ExchangeServer

    # Defaults, not ./config.toml: its [resilience.rate_limits] would make the
    # instrumented client wait for tokens, which is the limiter working, not overhead.
    config.set_current(config.Config())

    tracer_provider, meter_provider = _providers(args.sample_ratio)
    if args.sdk == "sdk":
        trace.set_tracer_provider(tracer_provider)
        metrics.set_meter_provider(meter_provider)
    server = _RemoteServer() if args.server == "process" else ExchangeServer().start()
    try:
        rows = [
            ("sync  ccxt.kraken fetch_ticker", bench_sync(server, args.pairs)),
            ("async ccxt.async_support.kraken fetch_ticker",
             asyncio.run(bench_async(server, args.pairs))),
        ]
    finally:
        server.stop()
    parts = bench_parts(5)
    tracer_provider.shutdown()
    print(f"{'case':<46} {'plain µs':>9} {'otelres µs':>11} {'ratio':>7}"
          f"   {'client CPU µs: plain':>20} {'otelres':>8} {'ratio':>7}")
    for name, (plain, traced, ratio, cplain, ctraced, cratio) in rows:
        print(f"{name:<46} {plain:9.1f} {traced:11.1f} {ratio:6.3f}x"
              f"   {cplain:20.1f} {ctraced:8.1f} {cratio:6.3f}x")
    print("\nCPU per traced call, by piece (no network, best of 5):")
    for name, micros in parts:
        print(f"  {name:<24} {micros:6.1f} µs")


if __name__ == "__main__":
    main()
