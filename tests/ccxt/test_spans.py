"""Spans and metrics of instrumented ccxt clients (sync, async and pro) against the local exchange."""

from __future__ import annotations

import time
from typing import Any

import ccxt
import pytest
from opentelemetry.trace import SpanKind, StatusCode

from otelres.testing import ExchangeServer, Fault, TelemetryCapture
from tests.ccxt.conftest import ready_client

pytestmark = pytest.mark.integration


def _tree(telemetry: TelemetryCapture) -> dict[str, Any]:
    spans = telemetry.spans()
    return {"spans": spans, "by_id": {s.context.span_id: s for s in spans}}


def test_a_unified_call_is_a_client_span_with_http_children(
    instrumented: Any, exchange: ExchangeServer, telemetry: TelemetryCapture
) -> None:
    """fetch_ticker is one CLIENT span with exchange, method and symbol; each request a child."""
    client = exchange.client("kraken")
    client.fetch_ticker("BTC/USD")
    (call,) = telemetry.spans("kraken fetch_ticker")
    assert call.kind is SpanKind.CLIENT
    assert call.parent is None
    assert dict(call.attributes or {}) == {
        "ccxt.exchange.id": "kraken", "ccxt.method": "fetch_ticker", "ccxt.symbol": "BTC/USD",
    }
    children = [s for s in telemetry.spans() if s.parent and s.parent.span_id == call.context.span_id]
    # load_markets runs inside fetch_ticker: its requests belong to the same call.
    assert [s.name for s in children] == ["GET Assets", "GET AssetPairs", "GET Ticker"]
    ticker = children[-1]
    assert ticker.kind is SpanKind.CLIENT
    attributes = dict(ticker.attributes or {})
    assert attributes["http.request.method"] == "GET"
    assert attributes["url.path"] == "/0/public/Ticker"
    assert attributes["url.template"] == "Ticker"
    assert attributes["http.response.status_code"] == 200
    assert attributes["server.address"] == "127.0.0.1"
    assert attributes["server.port"] == exchange.port
    assert ticker.status.status_code is StatusCode.UNSET
    assert not telemetry.spans("kraken load_markets"), "nested unified calls add no spans"


def test_camel_case_aliases_are_traced(
    instrumented: Any, exchange: ExchangeServer, telemetry: TelemetryCapture
) -> None:
    """fetchTicker (ccxt's camelCase alias) is traced like fetch_ticker."""
    client = exchange.client("binance")
    client.fetchTicker("ETH/USDT")
    (call,) = telemetry.spans("binance fetch_ticker")
    assert call.attributes is not None
    assert call.attributes["ccxt.symbol"] == "ETH/USDT"


def test_a_failed_call_records_the_ccxt_error_class(
    instrumented: Any, fresh_exchange: ExchangeServer, telemetry: TelemetryCapture
) -> None:
    """A bad symbol fails the call span with error.type BadSymbol and a cleaned exception event."""
    client = ready_client(fresh_exchange, "binance", telemetry)
    with pytest.raises(ccxt.BadSymbol):
        client.fetch_ticker("NOPE/USDT")
    (call,) = telemetry.spans("binance fetch_ticker")
    assert call.status.status_code is StatusCode.ERROR
    assert call.attributes is not None
    assert call.attributes["error.type"] == "BadSymbol"
    (event,) = [e for e in call.events if e.name == "exception"]
    assert event.attributes is not None
    assert event.attributes["exception.type"] == "ccxt.base.errors.BadSymbol"
    assert "NOPE/USDT" in str(event.attributes["exception.message"])


def test_an_http_error_marks_the_request_span(
    instrumented: Any, fresh_exchange: ExchangeServer, telemetry: TelemetryCapture
) -> None:
    """A 503 answer sets the status code, error.type and ERROR on the HTTP span."""
    client = fresh_exchange.client("kraken")
    client.load_markets()
    fresh_exchange.inject(Fault("http", status=503))
    telemetry.clear()
    with pytest.raises(ccxt.ExchangeNotAvailable):
        client.fetch_time()
    requests = telemetry.spans("GET Time")
    assert len(requests) == 3, "the read is retried twice"
    for span in requests:
        assert span.attributes is not None
        assert span.attributes["http.response.status_code"] == 503
        assert span.attributes["error.type"] == "ExchangeNotAvailable"
        assert span.status.status_code is StatusCode.ERROR


def test_the_duration_histogram_has_exchange_method_and_outcome(
    instrumented: Any, fresh_exchange: ExchangeServer, telemetry: TelemetryCapture
) -> None:
    """otelres.ccxt.call.duration counts calls by exchange, method and outcome (with error.type)."""

    def points() -> dict[tuple[str, str], Any]:
        return {
            (p.attributes["ccxt.method"], p.attributes["ccxt.outcome"]): p
            for p in telemetry.points("otelres.ccxt.call.duration",
                                      **{"ccxt.exchange.id": "kraken"})
        }

    def count(key: tuple[str, str]) -> int:
        point = points().get(key)
        return 0 if point is None else int(point.count or 0)

    client = fresh_exchange.client("kraken")
    client.load_markets()
    ok_before, failed_before = count(("fetch_time", "success")), count(("fetch_ticker", "error"))
    client.fetch_time()
    client.fetch_time()
    with pytest.raises(ccxt.BadSymbol):
        client.fetch_ticker("NOPE/USD")
    assert count(("fetch_time", "success")) == ok_before + 2
    assert count(("fetch_ticker", "error")) == failed_before + 1
    assert points()[("fetch_time", "success")].unit == "s"
    assert points()[("fetch_ticker", "error")].attributes["error.type"] == "BadSymbol"


async def test_async_clients_get_the_same_spans(
    instrumented: Any, exchange: ExchangeServer, telemetry: TelemetryCapture
) -> None:
    """ccxt.async_support clients produce the call span and its HTTP children."""
    client = exchange.client("binance", flavour="async")
    try:
        await client.fetch_ticker("BTC/USDT")
    finally:
        await client.close()
    (call,) = telemetry.spans("binance fetch_ticker")
    children = [s.name for s in telemetry.spans()
                if s.parent and s.parent.span_id == call.context.span_id]
    assert children == ["GET exchangeInfo", "GET ticker/24hr"]


async def test_pro_clients_trace_their_rest_calls(
    instrumented: Any, exchange: ExchangeServer, telemetry: TelemetryCapture
) -> None:
    """ccxt.pro clients' REST methods are traced like the async ones."""
    client = exchange.client("kraken", flavour="pro")
    try:
        await client.fetch_time()
    finally:
        await client.close()
    (call,) = telemetry.spans("kraken fetch_time")
    assert telemetry.spans("GET Time")[0].parent.span_id == call.context.span_id  # type: ignore[union-attr]


def test_implicit_endpoint_calls_get_http_spans(
    instrumented: Any, exchange: ExchangeServer, telemetry: TelemetryCapture
) -> None:
    """Calling an implicit endpoint method directly still records its HTTP request."""
    client = exchange.client("kraken")
    client.publicGetTime()
    (request,) = telemetry.spans("GET Time")
    assert request.parent is None
    assert request.attributes is not None
    assert request.attributes["url.template"] == "Time"


def test_calls_join_the_applications_trace(
    instrumented: Any, exchange: ExchangeServer, telemetry: TelemetryCapture
) -> None:
    """A call made inside an application span is its child."""
    tracer = telemetry.tracer_provider.get_tracer("bot")
    client = exchange.client("kraken")
    client.load_markets()
    with tracer.start_as_current_span("rebalance") as parent:
        client.fetch_time()
    (call,) = telemetry.spans("kraken fetch_time")
    assert call.parent is not None
    assert call.parent.span_id == parent.get_span_context().span_id


def test_an_unsampled_call_records_no_spans_but_still_honours_retry_after(
    instrumented: Any, exchange: ExchangeServer, telemetry: TelemetryCapture
) -> None:
    """Under an unsampled parent no call or HTTP span is recorded, yet Retry-After and the histogram work."""
    from opentelemetry import trace
    from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

    client = ready_client(exchange, "binance", telemetry)
    unsampled = NonRecordingSpan(SpanContext(0x1234, 0x5678, False, TraceFlags(0)))
    exchange.inject(Fault("http", status=429, retry_after=0.3, venue="binance", times=1))
    started = time.monotonic()
    with trace.use_span(unsampled):
        assert client.fetch_time() > 0
    assert time.monotonic() - started >= 0.3
    assert telemetry.spans() == []
    where = {"ccxt.exchange.id": "binance", "ccxt.method": "fetch_time", "ccxt.outcome": "success"}
    (point,) = telemetry.points("otelres.ccxt.call.duration", where)
    assert point.value >= 0.3


async def test_a_call_the_caller_gives_up_on_is_cancelled_not_failed(
    instrumented: Any, fresh_exchange: ExchangeServer, telemetry: TelemetryCapture
) -> None:
    """asyncio.wait_for timing out leaves the call span UNSET and records outcome cancelled."""
    import asyncio

    client = fresh_exchange.client("kraken", flavour="async")
    try:
        await client.load_markets()
        telemetry.clear()
        fresh_exchange.inject(Fault("delay", delay=0.5, venue="kraken", times=1))
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(client.fetch_time(), 0.1)
    finally:
        await client.close()
    (call,) = telemetry.spans("kraken fetch_time")
    (request,) = telemetry.spans("GET Time")
    for span in (call, request):
        assert span.status.status_code is StatusCode.UNSET
        assert "error.type" not in (span.attributes or {})
    assert [e.name for e in call.events] == []
    where = {"ccxt.exchange.id": "kraken", "ccxt.method": "fetch_time"}
    outcomes = {p.attributes["ccxt.outcome"] for p in telemetry.points("otelres.ccxt.call.duration", where)}
    assert "cancelled" in outcomes
