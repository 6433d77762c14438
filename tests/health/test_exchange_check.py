"""ExchangeCheck with real ccxt clients against the local exchange server."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from otelres.health import ExchangeCheck, HealthChecker, HealthStatus
from otelres.testing import ExchangeServer, Fault
from tests.conftest import free_port, require_module

require_module("ccxt")

pytestmark = pytest.mark.integration


@pytest.fixture(name="exchange")
def _exchange() -> Iterator[ExchangeServer]:
    with ExchangeServer() as server:
        yield server


async def test_reachable_exchanges_are_green(exchange: ExchangeServer) -> None:
    """Kraken (fetch_status) and Binance answering quickly make the check GREEN with their latency."""
    check = ExchangeCheck([exchange.client("kraken"), exchange.client("binance")])
    result = await check.check()
    assert result.status is HealthStatus.GREEN, result.message
    assert set(result.details["exchanges"]) == {"kraken", "binance"}
    assert result.details["exchanges"]["kraken"]["status"] == "ok"
    assert result.details["exchanges"]["kraken"]["latency_seconds"] < 1.0
    assert exchange.count(path="/0/public/SystemStatus") == 1


async def test_maintenance_is_red(exchange: ExchangeServer) -> None:
    """An exchange reporting maintenance makes the check RED."""
    exchange.inject(Fault("maintenance", venue="kraken"))
    result = await ExchangeCheck(exchange.client("kraken")).check()
    assert result.status is HealthStatus.RED
    assert result.details["exchanges"]["kraken"]["status"] == "maintenance"


async def test_slow_answers_are_yellow(exchange: ExchangeServer) -> None:
    """A round trip slower than latency_warning makes the check YELLOW."""
    exchange.inject(Fault("delay", delay=0.3, venue="kraken"))
    result = await ExchangeCheck(exchange.client("kraken"), latency_warning=0.1).check()
    assert result.status is HealthStatus.YELLOW
    assert "slow" in result.message


async def test_errors_are_red_with_the_error_type(exchange: ExchangeServer) -> None:
    """An HTTP 503 from the exchange makes the check RED naming ccxt's error class."""
    exchange.inject(Fault("http", status=503, venue="kraken"))
    result = await ExchangeCheck(exchange.client("kraken")).check()
    assert result.status is HealthStatus.RED
    assert result.details["exchanges"]["kraken"]["error"].startswith("ExchangeNotAvailable")


async def test_an_unreachable_exchange_is_red() -> None:
    """Nothing listening at the exchange's address makes the check RED with a network error."""
    url = f"http://127.0.0.1:{free_port()}"
    check = ExchangeCheck("kraken", options={"urls": {"api": {"public": url, "private": url}}, "timeout": 2000})
    result = await check.check()
    assert result.status is HealthStatus.RED
    assert "NetworkError" in result.message or "ExchangeNotAvailable" in result.message


async def test_async_ccxt_clients_are_awaited(exchange: ExchangeServer) -> None:
    """An async ccxt client is probed on the checker's loop."""
    client = exchange.client("binance", flavour="async")
    try:
        results = await HealthChecker([ExchangeCheck(client, name="binance")]).run_all_checks()
    finally:
        await client.close()
    assert results["binance"].status is HealthStatus.GREEN, results["binance"].message
    assert exchange.count(path="/sapi/v1/system/status") + exchange.count(path="/api/v3/time") == 1


async def test_an_exchange_id_builds_a_client_from_options(exchange: ExchangeServer) -> None:
    """An exchange id with ccxt options creates a sync client lazily and reuses it."""
    check = ExchangeCheck("kraken", options={"urls": {"api": {"public": exchange.url, "private": exchange.url}}})
    assert (await check.check()).status is HealthStatus.GREEN
    assert (await check.check()).status is HealthStatus.GREEN
    assert exchange.count(path="/0/public/SystemStatus") == 2


async def test_results_carry_no_credentials(exchange: ExchangeServer) -> None:
    """Whatever goes wrong, the result of an authenticated client holds neither its key nor its secret."""
    from otelres._testing.exchange import KRAKEN_CREDENTIALS

    client = exchange.client("kraken")
    texts = []
    for fault in (Fault("http", status=500), Fault("drop"), Fault("maintenance")):
        exchange.clear_faults()
        exchange.inject(fault)
        texts.append(json.dumps((await ExchangeCheck(client).check()).to_dict()))
    for text in texts:
        assert KRAKEN_CREDENTIALS.api_key not in text
        assert KRAKEN_CREDENTIALS.secret not in text


async def test_a_hanging_exchange_is_named_while_the_others_report(exchange: ExchangeServer) -> None:
    """An exchange that does not answer within probe_timeout is RED by name, and the other
    exchanges' results still arrive, instead of the whole check timing out."""
    exchange.inject(Fault("delay", delay=3.0, venue="kraken"))
    check = ExchangeCheck([exchange.client("kraken"), exchange.client("binance")], probe_timeout=0.5)
    results = await HealthChecker([check], timeout=2.0).run_all_checks()
    result = results["exchange"]
    assert result.status is HealthStatus.RED
    assert result.message == "kraken: TimeoutError: no answer within 0.5 s"
    assert result.details["exchanges"]["binance"]["status"] == "ok"


async def test_the_probe_timeout_defaults_below_the_check_timeout() -> None:
    """Without probe_timeout each exchange gets 90 % of the check's own timeout."""
    assert ExchangeCheck("kraken", timeout=2.0)._probe_limit() == pytest.approx(1.8)


def test_a_client_built_from_an_id_times_out_with_the_probe() -> None:
    """A ccxt client the check builds from an exchange id gets the probe deadline as its request
    timeout, unless the options set one."""
    check = ExchangeCheck(["kraken", "binance"], probe_timeout=1.5, options={})
    assert check._client(0).timeout == 1500
    explicit = ExchangeCheck("kraken", probe_timeout=1.5, options={"timeout": 700})
    assert explicit._client(0).timeout == 700
