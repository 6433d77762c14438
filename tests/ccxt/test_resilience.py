"""Per-exchange resilience of instrumented ccxt clients: breaker, retries, safe order retry, limits."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import ccxt
import pytest

from otelres.resilience import BreakerState, CircuitBreakerOpenError
from otelres.testing import ExchangeServer, Fault, TelemetryCapture
from tests.ccxt.conftest import ready_client, use_config

pytestmark = pytest.mark.integration


def _guard(exchange_id: str) -> Any:
    from otelres_instrumentation_ccxt import CcxtInstrumentor

    guard = CcxtInstrumentor.guard(exchange_id)
    assert guard is not None
    return guard


def _events(span: Any, name: str) -> list[dict[str, Any]]:
    return [dict(e.attributes or {}) for e in span.events if e.name == name]


# --------------------------------------------------------------------------- breaker
def test_the_breaker_opens_under_a_503_storm_and_recovers(
    instrument: Any, fresh_exchange: ExchangeServer, telemetry: TelemetryCapture
) -> None:
    """Consecutive 503s open the exchange's breaker; it rejects without calling; then recovers."""
    use_config(circuit_breaker={"kraken": {"threshold": 3, "timeout_seconds": 0.3}})
    instrument()
    client = fresh_exchange.client("kraken")
    client.load_markets()
    fresh_exchange.inject(Fault("http", status=503, venue="kraken"))
    with pytest.raises(ccxt.ExchangeNotAvailable):
        client.fetch_ticker("BTC/USD")
    assert _guard("kraken").breaker.state is BreakerState.OPEN
    sent = fresh_exchange.count(path="/0/public/Ticker")
    assert sent == 3
    telemetry.clear()
    with pytest.raises(CircuitBreakerOpenError):
        client.fetch_ticker("BTC/USD")
    assert fresh_exchange.count(path="/0/public/Ticker") == sent, "an open breaker sends nothing"
    (rejected,) = telemetry.spans("kraken fetch_ticker")
    assert rejected.attributes is not None
    assert rejected.attributes["error.type"] == "CircuitBreakerOpenError"
    outcomes = {p.attributes["ccxt.outcome"] for p in telemetry.points(
        "otelres.ccxt.call.duration", **{"ccxt.method": "fetch_ticker"})}
    assert "rejected" in outcomes
    fresh_exchange.clear_faults()
    time.sleep(0.35)
    assert client.fetch_ticker("BTC/USD")["last"] > 0
    assert _guard("kraken").breaker.state is BreakerState.CLOSED


def test_the_callers_mistakes_do_not_count(
    instrument: Any, fresh_exchange: ExchangeServer
) -> None:
    """Unknown orders, bad symbols and rejected orders leave the breaker closed; no retries."""
    use_config(circuit_breaker={"binance": {"threshold": 1}})
    instrument()
    client = fresh_exchange.client("binance")
    client.load_markets()
    for _ in range(3):
        with pytest.raises(ccxt.OrderNotFound):
            client.fetch_order("999999", "BTC/USDT")
    with pytest.raises(ccxt.BadSymbol):
        client.fetch_ticker("NOPE/USDT")
    client.create_order("BTC/USDT", "limit", "buy", 0.01, 100, {"clientOrderId": "dup"})
    with pytest.raises(ccxt.InvalidOrder):
        client.create_order("BTC/USDT", "limit", "buy", 0.01, 100, {"clientOrderId": "dup"})
    assert _guard("binance").breaker.state is BreakerState.CLOSED
    assert fresh_exchange.count(path="/api/v3/order", method="GET") == 3


async def test_the_breaker_guards_async_clients(
    instrument: Any, fresh_exchange: ExchangeServer
) -> None:
    """Async clients share their exchange's breaker and are rejected once it is open."""
    use_config(circuit_breaker={"binance": {"threshold": 2, "timeout_seconds": 30}},
               retry={"max_attempts": 1})
    instrument()
    client = fresh_exchange.client("binance", flavour="async")
    try:
        await client.load_markets()
        fresh_exchange.inject(Fault("http", status=502, venue="binance"))
        for _ in range(2):
            with pytest.raises(ccxt.ExchangeNotAvailable):
                await client.fetch_time()
        with pytest.raises(CircuitBreakerOpenError):
            await client.fetch_time()
    finally:
        await client.close()
    assert fresh_exchange.count(path="/api/v3/time") == 2


# --------------------------------------------------------------------------- retries
def test_reads_are_retried_until_they_succeed(
    instrumented: Any, fresh_exchange: ExchangeServer, telemetry: TelemetryCapture
) -> None:
    """fetch_ticker is sent again after two 503s and succeeds; the retries are span events."""
    client = ready_client(fresh_exchange, "kraken", telemetry)
    fresh_exchange.inject(Fault("http", status=503, venue="kraken", times=2))
    assert client.fetch_ticker("BTC/USD")["last"] > 0
    assert fresh_exchange.count(path="/0/public/Ticker") == 3
    (call,) = telemetry.spans("kraken fetch_ticker")
    retries = _events(call, "otelres.retry")
    assert [e["retry.attempt"] for e in retries] == [2, 3]
    assert {e["error.type"] for e in retries} == {"ExchangeNotAvailable"}
    assert call.attributes is not None
    assert "error.type" not in call.attributes


def test_orders_are_never_resent_blindly(
    instrumented: Any, fresh_exchange: ExchangeServer
) -> None:
    """create_order that fails with a 503 is sent exactly once and the error reaches the caller."""
    client = fresh_exchange.client("kraken")
    client.load_markets()
    fresh_exchange.inject(Fault("http", status=503, path="/0/private/AddOrder", times=1))
    with pytest.raises(ccxt.ExchangeNotAvailable):
        client.create_order("BTC/USD", "market", "buy", 0.01)
    assert fresh_exchange.count(path="/0/private/AddOrder") == 1


def test_ccxts_own_retry_option_does_not_resend_orders(
    instrumented: Any, fresh_exchange: ExchangeServer
) -> None:
    """ccxt's client-wide maxRetriesOnFailure option never makes create_order go out twice."""
    client = fresh_exchange.client("kraken", config={"options": {"maxRetriesOnFailure": 1}})
    client.load_markets()
    fresh_exchange.inject(Fault("http", status=503, path="/0/private/AddOrder", times=1))
    with pytest.raises(ccxt.ExchangeNotAvailable):
        client.create_order("BTC/USD", "market", "buy", 0.01)
    assert fresh_exchange.count(path="/0/private/AddOrder") == 1
    assert fresh_exchange.orders("kraken") == []


def test_ccxts_own_retry_option_does_not_stack_on_the_guards_retries(
    instrumented: Any, fresh_exchange: ExchangeServer
) -> None:
    """With the guard retrying reads, ccxt's maxRetriesOnFailure does not multiply them: a
    503 storm costs max_attempts requests, not max_attempts x (1 + maxRetriesOnFailure)."""
    client = fresh_exchange.client("kraken", config={"options": {"maxRetriesOnFailure": 2}})
    client.load_markets()
    fresh_exchange.clear_requests()
    fresh_exchange.inject(Fault("http", status=503, venue="kraken", path="/0/public/Ticker"))
    with pytest.raises(ccxt.ExchangeNotAvailable):
        client.fetch_ticker("BTC/USD")
    assert fresh_exchange.count(path="/0/public/Ticker") == 3  # the configured max_attempts


@pytest.mark.parametrize("method", ["cancel_order", "create_order"])
def test_timeouts_of_writes_are_not_retried(
    instrumented: Any, fresh_exchange: ExchangeServer, method: str
) -> None:
    """A timed-out write (order or cancel) is not repeated without safe order retry."""
    client = fresh_exchange.client("binance", timeout_ms=300)
    client.load_markets()
    order = client.create_order("BTC/USDT", "limit", "buy", 0.01, 100)
    fresh_exchange.clear_requests()
    fresh_exchange.inject(Fault("delay", delay=1.0, after_processing=True, path="/api/v3/order",
                                times=1))
    write = (
        (lambda: client.cancel_order(order["id"], "BTC/USDT")) if method == "cancel_order"
        else (lambda: client.create_order("BTC/USDT", "limit", "buy", 0.01, 100))
    )
    with pytest.raises(ccxt.RequestTimeout):
        write()
    assert fresh_exchange.count(path="/api/v3/order") == 1


def test_retry_after_is_honoured(
    instrumented: Any, fresh_exchange: ExchangeServer, telemetry: TelemetryCapture
) -> None:
    """After a 429 with Retry-After: 0.3 the retry waits at least 0.3 s."""
    client = ready_client(fresh_exchange, "binance", telemetry)
    fresh_exchange.inject(Fault("http", status=429, retry_after=0.3, venue="binance", times=1))
    started = time.monotonic()
    assert client.fetch_time() > 0
    assert time.monotonic() - started >= 0.3
    (call,) = telemetry.spans("binance fetch_time")
    (retry,) = _events(call, "otelres.retry")
    assert retry["retry.delay"] >= 0.3
    assert retry["error.type"] == "DDoSProtection"


def test_kraken_rate_limit_errors_back_off_by_the_rate_limit(
    instrumented: Any, fresh_exchange: ExchangeServer, telemetry: TelemetryCapture
) -> None:
    """EAPI:Rate limit exceeded (no header) waits at least ccxt's rateLimit before retrying."""
    client = ready_client(fresh_exchange, "kraken", telemetry, config={"rateLimit": 250})
    fresh_exchange.inject(Fault("kraken_rate_limit", venue="kraken", times=1))
    assert client.fetch_time() > 0
    (call,) = telemetry.spans("kraken fetch_time")
    (retry,) = _events(call, "otelres.retry")
    assert retry["retry.delay"] >= 0.25


def test_resilience_can_be_switched_off(
    instrument: Any, fresh_exchange: ExchangeServer
) -> None:
    """With resilience=False calls are traced but neither retried nor guarded."""
    use_config()
    instrument(resilience=False)
    client = fresh_exchange.client("kraken")
    client.load_markets()
    fresh_exchange.inject(Fault("http", status=503, venue="kraken", times=1))
    with pytest.raises(ccxt.ExchangeNotAvailable):
        client.fetch_time()
    assert fresh_exchange.count(path="/0/public/Time") == 1


# --------------------------------------------------------------------------- safe order retry
@pytest.mark.parametrize(("venue", "symbol"), [("kraken", "BTC/USD"), ("binance", "BTC/USDT")])
def test_safe_order_retry_finds_the_order_instead_of_sending_it_again(
    instrument: Any, fresh_exchange: ExchangeServer, telemetry: TelemetryCapture,
    venue: str, symbol: str,
) -> None:
    """An order whose answer timed out is looked up by client order id and returned, not resent."""
    use_config()
    instrument(safe_order_retry=True)
    client = fresh_exchange.client(venue, timeout_ms=300)
    client.load_markets()
    order_path = "/0/private/AddOrder" if venue == "kraken" else "/api/v3/order"
    fresh_exchange.inject(Fault("delay", delay=1.0, after_processing=True, path=order_path,
                                times=1))
    telemetry.clear()
    order = client.create_order(symbol, "market", "buy", 0.01)
    sent = [r for r in fresh_exchange.requests if r.path == order_path and r.method == "POST"]
    assert len(sent) == 1
    placed = [o for o in fresh_exchange.orders(venue)
              if o.client_order_id == order["clientOrderId"]]
    assert len(placed) == 1
    (call,) = telemetry.spans(f"{venue} create_order")
    (lookup,) = _events(call, "otelres.ccxt.order_lookup")
    assert lookup["ccxt.order.found"] is True
    assert lookup["error.type"] == "RequestTimeout"


def test_safe_order_retry_resends_an_order_that_does_not_exist(
    instrument: Any, fresh_exchange: ExchangeServer
) -> None:
    """An order refused before it took effect (503) is looked up, found absent and sent again once."""
    use_config()
    instrument(safe_order_retry=True)
    client = fresh_exchange.client("kraken")
    client.load_markets()
    fresh_exchange.inject(Fault("http", status=503, path="/0/private/AddOrder", times=1))
    order = client.create_order("BTC/USD", "market", "buy", 0.01, None,
                                {"clientOrderId": "mine-1"})
    assert fresh_exchange.count(path="/0/private/AddOrder") == 2
    mine = [o for o in fresh_exchange.orders("kraken") if o.client_order_id == "mine-1"]
    assert len(mine) == 1
    assert order["id"] == mine[0].id


async def test_safe_order_retry_works_for_async_clients(
    instrument: Any, fresh_exchange: ExchangeServer
) -> None:
    """Async create_order after a lost answer returns the existing order without resending it."""
    use_config()
    instrument(safe_order_retry=True)
    client = fresh_exchange.client("binance", flavour="async", timeout_ms=300)
    try:
        await client.load_markets()
        fresh_exchange.inject(Fault("drop", after_processing=True, path="/api/v3/order",
                                    times=1))
        order = await client.create_order("ETH/USDT", "market", "sell", 0.1)
    finally:
        await client.close()
    assert fresh_exchange.count(path="/api/v3/order", method="POST") == 1
    assert [o.client_order_id for o in fresh_exchange.orders("binance")].count(
        order["clientOrderId"]) == 1


def test_an_order_whose_fate_is_unknown_is_not_resent(
    instrument: Any, fresh_exchange: ExchangeServer
) -> None:
    """When the lookup itself fails, the order is not resent and the first error is raised."""
    use_config()
    instrument(safe_order_retry=True)
    client = fresh_exchange.client("kraken")
    client.load_markets()
    fresh_exchange.inject(Fault("http", status=503, venue="kraken"))
    with pytest.raises(ccxt.ExchangeNotAvailable):
        client.create_order("BTC/USD", "market", "buy", 0.01)
    assert fresh_exchange.count(path="/0/private/AddOrder") == 1


# --------------------------------------------------------------------------- rate limits
def test_the_rate_limit_holds_in_ccxt_cost_units(
    instrument: Any, fresh_exchange: ExchangeServer
) -> None:
    """[resilience.rate_limits] spaces requests by cost; ccxt's own throttle does not wait too."""
    use_config(rate_limits={"kraken": 10}, rate_limit_burst_seconds=0.1)
    instrument()
    # ccxt alone would space Kraken requests 1 s apart (rateLimit 1000 ms per cost unit).
    client = fresh_exchange.client("kraken", enable_rate_limit=True)
    client.load_markets()
    fresh_exchange.clear_requests()
    started = time.monotonic()
    for _ in range(6):
        client.fetch_time()
    elapsed = time.monotonic() - started
    assert elapsed >= 0.45, "6 requests at 10 per second take at least 0.5 s (one burst token)"
    assert elapsed < 3.0, "ccxt's throttle (1 per second) must not wait on top"
    stamps = [r.time for r in fresh_exchange.requests]
    assert stamps[-1] - stamps[0] >= 0.4


async def test_the_rate_limit_holds_for_async_clients(
    instrument: Any, fresh_exchange: ExchangeServer
) -> None:
    """Concurrent async calls share the exchange's budget."""
    import asyncio

    use_config(rate_limits={"kraken": 20}, rate_limit_burst_seconds=0.1)
    instrument()
    client = fresh_exchange.client("kraken", flavour="async", enable_rate_limit=True)
    try:
        await client.load_markets()
        started = time.monotonic()
        # Kraken's Time costs 1 unit: 8 calls at 20 per second, 2 in the bucket.
        await asyncio.gather(*(client.fetch_time() for _ in range(8)))
        elapsed = time.monotonic() - started
    finally:
        await client.close()
    assert elapsed >= 0.3
    assert elapsed < 5.0


@pytest.fixture(name="two_ways")
def _two_ways(instrument: Any, fresh_exchange: ExchangeServer) -> Iterator[tuple[Any, Any]]:
    """Two Kraken clients with markets: one under instrument(), one under instrument_client()."""
    from otelres_instrumentation_ccxt import CcxtInstrumentor

    use_config()
    instrument()
    shared, alone = fresh_exchange.client("kraken"), fresh_exchange.client("kraken")
    CcxtInstrumentor.instrument_client(alone)
    for client in (shared, alone):
        client.load_markets()
    yield shared, alone
    CcxtInstrumentor.uninstrument_client(alone)


def _alternate(clients: tuple[Any, Any], calls: int) -> float:
    """Seconds *calls* fetch_time calls take, alternating between the two clients."""
    started = time.monotonic()
    for n in range(calls):
        clients[n % 2].fetch_time()
    return time.monotonic() - started


def test_clients_instrumented_either_way_share_one_budget(two_ways: tuple[Any, Any]) -> None:
    """A client under instrument() and one under instrument_client() take from one rate limit."""
    use_config(rate_limits={"kraken": 10}, rate_limit_burst_seconds=0.2)
    # 8 requests, 2 in the bucket, 10 per second: at least 0.6 s, or the budget was doubled.
    assert _alternate(two_ways, 8) >= 0.55


def test_guards_follow_a_new_configuration(two_ways: tuple[Any, Any]) -> None:
    """Clients instrumented before the configuration changes get the new rate limit."""
    assert _guard("kraken").limiter is None
    use_config(rate_limits={"kraken": 10}, rate_limit_burst_seconds=0.2)
    assert _alternate(two_ways, 6) >= 0.35, "6 requests, 2 in the bucket, 10 per second"
    assert _guard("kraken").limiter is not None


# --------------------------------------------------------------------------- events on the call span
def test_guard_events_land_on_the_call_span(
    instrument: Any, fresh_exchange: ExchangeServer, telemetry: TelemetryCapture
) -> None:
    """A limiter wait and a breaker rejection are events on the span of the call they delayed."""
    use_config(rate_limits={"kraken": 5}, rate_limit_burst_seconds=0.2,
               circuit_breaker={"kraken": {"threshold": 1, "timeout_seconds": 30}},
               retry={"max_attempts": 1})
    instrument()
    client = fresh_exchange.client("kraken")
    client.load_markets()  # three requests: the bucket (one token) is now in debt
    telemetry.clear()
    client.fetch_time()
    (waited,) = telemetry.spans("kraken fetch_time")
    assert [e.name for e in waited.events] == ["otelres.limiter.wait"]
    fresh_exchange.inject(Fault("http", status=503, venue="kraken", times=1))
    with pytest.raises(ccxt.ExchangeNotAvailable):
        client.fetch_time()
    telemetry.clear()
    with pytest.raises(CircuitBreakerOpenError):
        client.fetch_time()
    (rejected,) = telemetry.spans("kraken fetch_time")
    assert "otelres.breaker.rejected" in [e.name for e in rejected.events]


def test_load_markets_is_retried_like_any_read(
    instrumented: Any, fresh_exchange: ExchangeServer
) -> None:
    """load_markets is idempotent: a 503 on AssetPairs is retried and the markets load."""
    client = fresh_exchange.client("kraken")
    fresh_exchange.inject(Fault("http", status=503, path="/0/public/AssetPairs", times=1))
    assert "BTC/USD" in client.load_markets()
    assert fresh_exchange.count(path="/0/public/AssetPairs") == 2


def test_zero_cost_endpoints_pass_the_rate_limit(
    instrument: Any, fresh_exchange: ExchangeServer
) -> None:
    """An endpoint ccxt prices at 0 (Kraken's AddOrder) is not refused by a configured limiter."""
    use_config(rate_limits={"kraken": 10})
    instrument()
    client = fresh_exchange.client("kraken")
    client.load_markets()
    order = client.create_order("BTC/USD", "market", "buy", 0.01)
    assert order["id"]
    assert fresh_exchange.count(path="/0/private/AddOrder") == 1
