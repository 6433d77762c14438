"""Fixtures for the ccxt tests: one local exchange per module, the instrumentor, fresh guards.

The instrumentor is switched on once per test that asks for ``instrumented`` (and off
again afterwards), with the breaker registry cleared so that every test starts with
closed breakers and the configuration it set up.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from otelres import config
from otelres.testing import ExchangeServer, TelemetryCapture
from tests.conftest import require_module

require_module("ccxt")

FAST_RETRIES = {
    "max_attempts": 3,
    "initial_delay_seconds": 0.01,
    "max_delay_seconds": 2.0,
    "jitter": "none",
}


def ready_client(
    server: ExchangeServer, exchange_id: str, telemetry: TelemetryCapture | None = None,
    **kwargs: Any,
) -> Any:
    """A sync client of *server* with its markets loaded, the spans of that forgotten."""
    client = server.client(exchange_id, **kwargs)
    client.load_markets()
    if telemetry is not None:
        telemetry.clear()
    return client


def use_config(**resilience: Any) -> config.Config:
    """Make a configuration with these ``[resilience]`` values (fast retries by default) current."""
    resilience.setdefault("retry", dict(FAST_RETRIES))
    current = config.config_from_dict({"resilience": resilience})
    config.set_current(current)
    return current


@pytest.fixture(name="exchange", scope="module")
def _exchange() -> Iterator[ExchangeServer]:
    """A local Kraken + Binance exchange shared by the tests of one module."""
    with ExchangeServer() as server:
        yield server


@pytest.fixture(name="fresh_exchange")
def _fresh_exchange(exchange: ExchangeServer) -> ExchangeServer:
    """The module's exchange with no faults and no recorded requests."""
    exchange.clear_faults()
    exchange.clear_requests()
    return exchange


def _clear_breakers() -> None:
    from otelres.resilience._breaker import _clear_registry

    _clear_registry()


@pytest.fixture(name="instrument")
def _instrument(telemetry: TelemetryCapture) -> Iterator[Any]:
    """A function that switches the instrumentor on with options; it is off after the test."""
    from otelres_instrumentation_ccxt import CcxtInstrumentor

    instrumentor = CcxtInstrumentor()

    def instrument(**options: Any) -> Any:
        if instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.uninstrument()
        _clear_breakers()
        instrumentor.instrument(**options)
        return instrumentor

    yield instrument
    if instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.uninstrument()
    _clear_breakers()


@pytest.fixture(name="instrumented")
def _instrumented(instrument: Any, fresh_exchange: ExchangeServer) -> Any:
    """The instrumentor on with fast retries and defaults for everything else."""
    use_config()
    return instrument()
