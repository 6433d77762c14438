"""No credential, signature or password reaches telemetry or logs, whatever ccxt puts in its messages."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import ccxt
import pytest

from otelres.testing import ExchangeServer, Fault, TelemetryCapture
from tests.ccxt.conftest import use_config

pytestmark = pytest.mark.integration


class _Lines(logging.Handler):
    """Every log line any logger emits, formatted as a handler would write it."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture(name="log_lines")
def _log_lines() -> Iterator[_Lines]:
    handler = _Lines()
    root = logging.getLogger()
    ccxt_logger = logging.getLogger("ccxt")
    levels = root.level, ccxt_logger.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    ccxt_logger.setLevel(logging.DEBUG)
    yield handler
    root.removeHandler(handler)
    root.setLevel(levels[0])
    ccxt_logger.setLevel(levels[1])


def _everything_recorded(telemetry: TelemetryCapture, log_lines: _Lines) -> list[str]:
    texts: list[str] = []
    for span in telemetry.spans():
        texts.append(span.name)
        texts.append(span.status.description or "")
        texts.extend(f"{k}={v}" for k, v in (span.attributes or {}).items())
        for event in span.events:
            texts.append(event.name)
            texts.extend(f"{k}={v}" for k, v in (event.attributes or {}).items())
    for point in telemetry.points():
        texts.extend(f"{k}={v}" for k, v in point.attributes.items())
    texts.extend(log_lines.lines)
    return texts


def _private_traffic(server: ExchangeServer) -> None:
    for venue, symbol in (("kraken", "BTC/USD"), ("binance", "BTC/USDT")):
        client = server.client(venue, timeout_ms=300)
        client.load_markets()
        client.fetch_balance()
        order = client.create_order(symbol, "limit", "buy", 0.01, 100)
        client.fetch_order(order["id"], symbol)
        # Failures whose ccxt messages carry the signed URL and the answer's body.
        for fault in (Fault("http", status=503, venue=venue, times=3),
                      Fault("delay", delay=1.0, venue=venue, times=3),
                      Fault("http", status=429, retry_after=0.01, venue=venue, times=3)):
            server.inject(fault)
            with pytest.raises(ccxt.NetworkError):
                client.fetch_order(order["id"], symbol)
        with pytest.raises(ccxt.AuthenticationError):
            server.client(venue, config={"apiKey": server.credentials(venue).api_key + "x"}
                          ).fetch_balance()


def test_no_secret_reaches_spans_metrics_or_logs(
    instrument: Any, fresh_exchange: ExchangeServer, telemetry: TelemetryCapture,
    log_lines: _Lines,
) -> None:
    """Keys, secrets, passwords and every signature sent are absent from all recorded text."""
    use_config(circuit_breaker={"kraken": {"threshold": 100}, "binance": {"threshold": 100}})
    instrument(safe_order_retry=True)
    _private_traffic(fresh_exchange)
    secrets = set()
    for venue in ("kraken", "binance"):
        credentials = fresh_exchange.credentials(venue)
        secrets |= {credentials.api_key, credentials.secret, credentials.password}
    signatures = {r.signature for r in fresh_exchange.requests if r.signature}
    assert len(signatures) >= 10, "the traffic must include signed requests"
    recorded = _everything_recorded(telemetry, log_lines)
    # The scan only means something if the leaky places were exercised.
    assert any("signature=***" in text for text in recorded), "Binance's signed URL was recorded"
    assert any("ccxt.base.exchange DEBUG" in line for line in log_lines.lines)
    assert any("'API-Key': '***'" in line for line in log_lines.lines)
    leaks = [(value, text) for text in recorded for value in secrets | signatures if value in text]
    assert leaks == []


async def test_async_private_calls_leak_nothing_either(
    instrument: Any, fresh_exchange: ExchangeServer, telemetry: TelemetryCapture,
    log_lines: _Lines,
) -> None:
    """Async clients' private calls, failed ones included, leave no secret in telemetry or logs."""
    use_config(circuit_breaker={"binance": {"threshold": 100}})
    instrument()
    client = fresh_exchange.client("binance", flavour="async", timeout_ms=300)
    try:
        await client.fetch_balance()
        fresh_exchange.inject(Fault("http", status=503, venue="binance", times=3))
        with pytest.raises(ccxt.ExchangeNotAvailable):
            await client.fetch_balance()
    finally:
        await client.close()
    credentials = fresh_exchange.credentials("binance")
    secrets = {credentials.api_key, credentials.secret, credentials.password}
    secrets |= {r.signature for r in fresh_exchange.requests if r.signature}
    recorded = _everything_recorded(telemetry, log_lines)
    assert any("signature=***" in text for text in recorded)
    assert [(v, t) for t in recorded for v in secrets if v in t] == []


def test_a_client_instrumented_alone_leaks_nothing_to_logs(
    fresh_exchange: ExchangeServer, telemetry: TelemetryCapture, log_lines: _Lines
) -> None:
    """With only instrument_client in use, ccxt's DEBUG lines are cleaned too, while it lasts."""
    from otelres_instrumentation_ccxt import CcxtInstrumentor

    use_config()
    client = fresh_exchange.client("binance")
    client.load_markets()
    CcxtInstrumentor.instrument_client(client)
    try:
        client.fetch_balance()
    finally:
        CcxtInstrumentor.uninstrument_client(client)
    credentials = fresh_exchange.credentials("binance")
    secrets = {credentials.api_key, credentials.secret}
    secrets |= {r.signature for r in fresh_exchange.requests if r.signature}
    assert any("signature=***, Request" in line for line in log_lines.lines)
    assert [(v, t) for t in _everything_recorded(telemetry, log_lines) for v in secrets
            if v in t] == []
    filters = logging.getLogger("ccxt.base.exchange").filters
    assert not any(type(f).__name__ == "CcxtLogRedactor" for f in filters)


def test_instrumented_clients_keep_the_real_error_message(
    instrumented: Any, fresh_exchange: ExchangeServer
) -> None:
    """Only what otelres records is cleaned: the caller still gets ccxt's exception unchanged."""
    client = fresh_exchange.client("binance")
    client.load_markets()
    fresh_exchange.inject(Fault("http", status=503, venue="binance", times=3))
    with pytest.raises(ccxt.ExchangeNotAvailable) as info:
        client.fetch_balance()
    assert "signature=" in str(info.value)
    assert "signature=***" not in str(info.value)


@pytest.mark.parametrize(
    ("text", "cleaned"),
    [
        ("GET http://x/api/v3/account?timestamp=1&signature=abc123 503",
         "GET http://x/api/v3/account?timestamp=1&signature=*** 503"),
        ("{'API-Key': 'k1', 'API-Sign': 's1', 'Accept': 'json'}",
         "{'API-Key': '***', 'API-Sign': '***', 'Accept': 'json'}"),
        ('{"X-MBX-APIKEY": "k2"}', '{"X-MBX-APIKEY": "***"}'),
        ("CB-ACCESS-PASSPHRASE: hunter2", "CB-ACCESS-PASSPHRASE: ***"),
        ("Authorization: Bearer eyJhbGciOi", "Authorization: ***"),
        ("nonce=1764370000123&pair=XXBTZUSD", "nonce=***&pair=XXBTZUSD"),
        ("nothing secret here: price=64000", "nothing secret here: price=64000"),
    ],
)
def test_clean_text_removes_every_kind_of_secret(text: str, cleaned: str) -> None:
    """clean_text blanks query parameters, header values and nonces, and keeps the rest."""
    from otelres_instrumentation_ccxt._redact import clean_text

    assert clean_text(text) == cleaned


def test_clean_text_removes_the_clients_own_credentials() -> None:
    """Credentials appearing verbatim anywhere (a body echoing the key) are replaced."""
    from otelres_instrumentation_ccxt._redact import clean_text, credential_values

    client = ccxt.kraken({"apiKey": "my-key-123", "secret": "bXktc2VjcmV0", "password": "pw-42"})
    text = "error for my-key-123 with pw-42 and bXktc2VjcmV0"
    assert clean_text(text, credential_values(client)) == "error for *** with *** and ***"
