"""Helpers for testing code that uses otelres (and for otelres' own tests).

* :func:`capture_telemetry` records spans and metrics in memory so a test can assert on them;
* :class:`FakeClock` is a monotonic clock a test moves by hand, for breakers, limiters and retries;
* :func:`no_backoff` makes retries happen without sleeping;
* :class:`OtlpHttpReceiver` is a real OTLP/HTTP receiver that decodes what your exporters send;
* :class:`ExchangeServer` is a local Kraken + Binance REST exchange for real ccxt clients, with
  fault injection (:class:`Fault`, :class:`Phase`) and :func:`exchange_client` to connect to it.

Names are resolved on first access, so importing this module costs nothing extra.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from otelres._lazy import lazy_exports

if TYPE_CHECKING:
    from otelres._testing.clock import FakeClock
    from otelres._testing.exchange import (
        DEMO_SCENARIO,
        ExchangeServer,
        Fault,
        Phase,
        exchange_client,
    )
    from otelres._testing.otlp_receiver import OtlpHttpReceiver
    from otelres._testing.telemetry import TelemetryCapture, capture_telemetry
    from otelres.resilience._retry import no_backoff

__all__ = [
    "DEMO_SCENARIO",
    "ExchangeServer",
    "FakeClock",
    "Fault",
    "OtlpHttpReceiver",
    "Phase",
    "TelemetryCapture",
    "capture_telemetry",
    "exchange_client",
    "no_backoff",
]

_LAZY = {
    "DEMO_SCENARIO": "otelres._testing.exchange",
    "ExchangeServer": "otelres._testing.exchange",
    "Fault": "otelres._testing.exchange",
    "Phase": "otelres._testing.exchange",
    "exchange_client": "otelres._testing.exchange",
    "FakeClock": "otelres._testing.clock",
    "OtlpHttpReceiver": "otelres._testing.otlp_receiver",
    "TelemetryCapture": "otelres._testing.telemetry",
    "capture_telemetry": "otelres._testing.telemetry",
    "no_backoff": "otelres.resilience._retry",
}


__getattr__, __dir__ = lazy_exports(__name__, _LAZY, globals())
