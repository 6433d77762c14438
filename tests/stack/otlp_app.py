"""A real otelres process exporting over OTLP/gRPC, for ``test_otlp_grpc.py``.

    python tests/stack/otlp_app.py --endpoint http://127.0.0.1:4317 --service-name svc

``otelres.configure()`` sets up OTLP/gRPC traces and metrics; then, inside two spans of the
application's own (what a guarded exchange call looks like in Jaeger):

* ``fetch_ticker BTC/USD``: a retry around a circuit breaker, both with spans on every
  call (``span_mode="always"``); the first attempt fails with ``ExchangeDown``, the
  second succeeds;
* ``fetch_ticker ETH/USD``: two failures open the breaker, the third call is rejected.

It prints one JSON line with the results the application saw, then shuts telemetry down
(which flushes spans and metrics) and exits 0.
"""

from __future__ import annotations

import argparse
import json
from typing import NoReturn

from opentelemetry import trace

import otelres
from otelres.config import Config, TelemetrySettings
from otelres.resilience import CircuitBreaker, CircuitBreakerOpenError, Retry


class ExchangeDown(ConnectionError):
    """What the fake exchange raises."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--service-name", required=True)
    args = parser.parse_args()

    telemetry = otelres.configure(
        Config(
            telemetry=TelemetrySettings(
                service_name=args.service_name,
                traces_exporter=("otlp",),
                metrics_exporter=("otlp",),
                otlp_protocol="grpc",
                otlp_endpoint=args.endpoint,
                otlp_timeout_seconds=2.0,
                metric_export_interval_seconds=60.0,
            )
        )
    )
    tracer = trace.get_tracer("stack-demo")
    breaker = CircuitBreaker("kraken", failure_threshold=2, reset_timeout=60, span_mode="always")
    retry = Retry("kraken", max_attempts=3, sleep=lambda seconds: None, span_mode="always")
    attempts = []

    def flaky() -> float:
        attempts.append(1)
        if len(attempts) == 1:
            raise ExchangeDown("connection reset")
        return 64000.0

    def down() -> NoReturn:
        raise ExchangeDown("connection refused")

    outcome: dict[str, object] = {}
    with tracer.start_as_current_span("fetch_ticker BTC/USD"):
        outcome["btc"] = retry.call(breaker.call, flaky)
    with tracer.start_as_current_span("fetch_ticker ETH/USD"):
        errors = []
        for _ in range(3):
            try:
                breaker.call(down)
            except (ExchangeDown, CircuitBreakerOpenError) as exc:
                errors.append(type(exc).__name__)
        outcome["eth"] = errors
    print(json.dumps(outcome), flush=True)
    telemetry.shutdown()


if __name__ == "__main__":
    main()
