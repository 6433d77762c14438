"""The local exchange behaves like Kraken and Binance for real ccxt clients, faults included."""

from __future__ import annotations

import subprocess
import sys
import time

import ccxt
import pytest

from otelres.testing import ExchangeServer, Fault, Phase, exchange_client

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(("venue", "symbol"), [("kraken", "BTC/USD"), ("binance", "BTC/USDT")])
def test_public_calls_work_with_real_clients(
    fresh_exchange: ExchangeServer, venue: str, symbol: str
) -> None:
    """load_markets, fetch_ticker, fetch_time and fetch_status answer as the venue would."""
    client = fresh_exchange.client(venue)
    markets = client.load_markets()
    assert symbol in markets
    ticker = client.fetch_ticker(symbol)
    assert ticker["symbol"] == symbol
    assert ticker["bid"] < ticker["last"] < ticker["ask"]
    assert abs(client.fetch_time() - time.time() * 1000) < 5_000
    assert client.fetch_status()["status"] == "ok"


@pytest.mark.parametrize(("venue", "symbol", "quote"),
                         [("kraken", "ETH/USD", "USD"), ("binance", "ETH/USDT", "USDT")])
def test_private_calls_place_and_find_orders(
    fresh_exchange: ExchangeServer, venue: str, symbol: str, quote: str
) -> None:
    """Signed calls create orders, find them again by id and move the balance."""
    client = fresh_exchange.client(venue)
    before = client.fetch_balance()["total"]
    order = client.create_order(symbol, "market", "buy", 0.5, None, {"clientOrderId": f"t-{venue}"})
    assert client.fetch_order(order["id"], symbol)["status"] == "closed"
    after = client.fetch_balance()["total"]
    assert after["ETH"] == pytest.approx(before["ETH"] + 0.5)
    assert after[quote] < before[quote]
    limit = client.create_order(symbol, "limit", "sell", 1, 9999)
    assert client.fetch_order(limit["id"], symbol)["status"] == "open"
    client.cancel_order(limit["id"], symbol)
    assert client.fetch_order(limit["id"], symbol)["status"] == "canceled"
    placed = [o for o in fresh_exchange.orders(venue) if o.client_order_id == f"t-{venue}"]
    assert len(placed) == 1


@pytest.mark.parametrize("venue", ["kraken", "binance"])
def test_a_wrong_secret_is_refused(fresh_exchange: ExchangeServer, venue: str) -> None:
    """A request signed with another secret gets the venue's authentication error."""
    good = fresh_exchange.credentials(venue).secret
    client = fresh_exchange.client(venue, config={"secret": good[:-8] + "AAAAAAA="})
    with pytest.raises(ccxt.AuthenticationError):
        client.fetch_balance()


def test_a_wrong_api_key_is_refused(fresh_exchange: ExchangeServer) -> None:
    """An unknown API key is refused even with a valid-looking signature."""
    client = fresh_exchange.client("binance", config={"apiKey": "someone-else"})
    with pytest.raises(ccxt.AuthenticationError):
        client.fetch_balance()


def test_a_replayed_kraken_nonce_is_refused(fresh_exchange: ExchangeServer) -> None:
    """Kraken refuses a nonce that is not greater than the last one for the key."""
    client = fresh_exchange.client("kraken")
    client.fetch_balance()
    client.incrementing_nonce = lambda: 1  # an old nonce, as a second process might send
    with pytest.raises(ccxt.InvalidNonce):
        client.fetch_balance()


@pytest.mark.parametrize(
    ("venue", "fault", "error"),
    [
        ("kraken", Fault("http", status=503), ccxt.ExchangeNotAvailable),
        ("binance", Fault("http", status=500), ccxt.ExchangeNotAvailable),
        ("binance", Fault("http", status=429, retry_after=3), ccxt.DDoSProtection),
        ("kraken", Fault("kraken_rate_limit"), ccxt.DDoSProtection),
        ("kraken", Fault("maintenance"), ccxt.ExchangeNotAvailable),
        ("binance", Fault("maintenance"), ccxt.ExchangeNotAvailable),
        ("kraken", Fault("delay", delay=1.0), ccxt.RequestTimeout),
        ("binance", Fault("drop"), ccxt.NetworkError),
    ],
)
def test_faults_reach_clients_as_ccxt_errors(
    fresh_exchange: ExchangeServer, venue: str, fault: Fault, error: type[Exception]
) -> None:
    """Each injected fault surfaces as the ccxt error the real venue's answer produces."""
    symbol = "BTC/USD" if venue == "kraken" else "BTC/USDT"
    client = fresh_exchange.client(venue, timeout_ms=300)
    client.load_markets()
    fresh_exchange.inject(Fault(fault.kind, status=fault.status, retry_after=fault.retry_after,
                                delay=fault.delay, venue=venue, times=1))
    with pytest.raises(error):
        client.fetch_ticker(symbol)
    assert client.fetch_ticker(symbol)["symbol"] == symbol


def test_retry_after_and_the_kraken_body_are_sent(fresh_exchange: ExchangeServer) -> None:
    """A 429 carries Retry-After; Kraken's rate limit comes as HTTP 200 with EAPI in the body."""
    import urllib.error
    import urllib.request

    fresh_exchange.inject(Fault("http", status=429, retry_after=2.5, times=1))
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(f"{fresh_exchange.url}/api/v3/time", timeout=5)
    assert info.value.code == 429
    assert info.value.headers["Retry-After"] == "2.5"
    fresh_exchange.inject(Fault("kraken_rate_limit", times=1))
    with urllib.request.urlopen(f"{fresh_exchange.url}/0/public/Time", timeout=5) as answer:
        assert answer.status == 200
        assert b"EAPI:Rate limit exceeded" in answer.read()


def test_faults_are_narrowed_by_venue_path_and_count(fresh_exchange: ExchangeServer) -> None:
    """A fault hits only its venue and path prefix, and only `times` requests."""
    kraken = fresh_exchange.client("kraken")
    kraken.load_markets()
    fresh_exchange.inject(Fault("http", status=503, venue="kraken", path="/0/public/Ticker",
                                times=2))
    assert kraken.fetch_time() > 0
    for _ in range(2):
        with pytest.raises(ccxt.ExchangeNotAvailable):
            kraken.fetch_ticker("BTC/USD")
    assert kraken.fetch_ticker("BTC/USD")["last"] > 0
    assert fresh_exchange.faults == []
    statuses = [r.status for r in fresh_exchange.requests if r.path == "/0/public/Ticker"]
    assert statuses == [503, 503, 200]


def test_an_order_can_take_effect_while_its_answer_is_lost(fresh_exchange: ExchangeServer) -> None:
    """With after_processing the order exists although the client timed out."""
    client = fresh_exchange.client("binance", timeout_ms=300)
    client.load_markets()
    fresh_exchange.inject(Fault("delay", delay=1.0, after_processing=True,
                                path="/api/v3/order", times=1))
    with pytest.raises(ccxt.RequestTimeout):
        client.create_order("BTC/USDT", "market", "buy", 0.01, None,
                            {"clientOrderId": "lost-answer"})
    assert [o.client_order_id for o in fresh_exchange.orders("binance")].count("lost-answer") == 1


def test_a_scenario_plays_its_phases_in_order(fresh_exchange: ExchangeServer) -> None:
    """play() moves through the phases, applying each phase's faults, then clears them."""
    client = fresh_exchange.client("kraken")
    client.load_markets()
    fresh_exchange.play([Phase("healthy", 0.3), Phase("storm", 0.3, (Fault("http", status=503),))])
    assert fresh_exchange.phase == "healthy"
    assert client.fetch_ticker("BTC/USD")["last"] > 0
    deadline = time.monotonic() + 2
    while fresh_exchange.phase != "storm" and time.monotonic() < deadline:
        time.sleep(0.02)
    with pytest.raises(ccxt.ExchangeNotAvailable):
        client.fetch_ticker("BTC/USD")
    while fresh_exchange.phase is not None and time.monotonic() < deadline + 2:
        time.sleep(0.02)
    assert fresh_exchange.faults == []
    assert client.fetch_ticker("BTC/USD")["last"] > 0


async def test_async_clients_work_too(fresh_exchange: ExchangeServer) -> None:
    """ccxt.async_support clients trade against the same server."""
    client = exchange_client(fresh_exchange, "binance", flavour="async")
    try:
        order = await client.create_order("BTC/USDT", "limit", "buy", 0.01, 1000)
        fetched = await client.fetch_order(order["id"], "BTC/USDT")
        assert fetched["status"] == "open"
    finally:
        await client.close()


def test_stop_releases_delayed_requests_and_frees_the_port() -> None:
    """stop() returns promptly even while a request is being delayed, and the port closes."""
    import socket
    import threading

    server = ExchangeServer().start()
    port = server.port
    server.inject(Fault("delay", delay=30))
    client = server.client("kraken", timeout_ms=10_000)
    failures: list[BaseException] = []

    def call() -> None:
        try:
            client.fetch_time()
        except BaseException as exc:
            failures.append(exc)

    worker = threading.Thread(target=call)
    worker.start()
    time.sleep(0.2)
    started = time.monotonic()
    server.stop()
    worker.join(timeout=10)
    assert time.monotonic() - started < 5
    with socket.socket() as sock, pytest.raises(OSError):
        sock.connect(("127.0.0.1", port))


def test_bad_arguments_are_named() -> None:
    """Invalid faults, phases, flavours and venues are refused with the argument named."""
    with pytest.raises(ValueError, match="kind"):
        Fault("explode")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="times"):
        Fault(times=0)
    with pytest.raises(ValueError, match="duration"):
        Phase("x", 0)
    with ExchangeServer() as server:
        with pytest.raises(ValueError, match="flavour"):
            server.client("kraken", flavour="threads")
        with pytest.raises(ValueError, match="coinbase"):
            server.client("coinbase")
        with pytest.raises(KeyError, match="DOGE/USD"):
            server.set_price("DOGE/USD", 1)


def test_the_module_runs_a_server_from_the_command_line() -> None:
    """`python -m otelres._testing.exchange` prints its URL and serves until terminated."""
    import urllib.request

    process = subprocess.Popen([sys.executable, "-m", "otelres._testing.exchange"],
                               stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(f"{url}/0/public/SystemStatus", timeout=5) as answer:
            assert b"online" in answer.read()
    finally:
        process.terminate()
        assert process.wait(timeout=10) == 0
