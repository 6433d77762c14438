"""Building real ccxt clients that talk to the local exchange."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from otelres._testing.exchange._server import ExchangeServer

__all__ = ["exchange_client"]

_FLAVOURS = {"sync": "ccxt", "async": "ccxt.async_support", "pro": "ccxt.pro"}

# Binance lists futures and margin markets from other hosts by default; the local exchange
# is spot only, so its clients ask for spot markets and skip the currency/margin lookups.
_VENUE_OPTIONS: dict[str, dict[str, Any]] = {
    "binance": {
        "fetchMarkets": {"types": ["spot"]},
        "fetchCurrencies": False,
        "fetchMargins": False,
    },
}


def exchange_client(
    server: ExchangeServer,
    exchange_id: str = "kraken",
    *,
    flavour: str = "sync",
    authenticated: bool = True,
    timeout_ms: int = 2000,
    enable_rate_limit: bool = False,
    config: dict[str, Any] | None = None,
) -> Any:
    """A real ccxt client for *exchange_id* whose REST API URLs point at *server*.

    *flavour* is ``"sync"`` (``ccxt.<id>``), ``"async"`` (``ccxt.async_support.<id>``)
    or ``"pro"`` (``ccxt.pro.<id>``, REST methods only). With *authenticated* the client
    carries the key pair the server accepts (including a password, which these venues
    never send). ccxt's own rate limiting is off unless *enable_rate_limit*, so tests
    run at the server's speed; *config* is merged into the constructor arguments last::

        kraken = exchange_client(server, "kraken")
        kraken.fetch_ticker("BTC/USD")
        binance = exchange_client(server, "binance", flavour="async")
        await binance.create_order("BTC/USDT", "market", "buy", 0.01)
        await binance.close()
    """
    module_name = _FLAVOURS.get(flavour)
    if module_name is None:
        raise ValueError(f"flavour must be one of {', '.join(_FLAVOURS)}; got {flavour!r}")
    if exchange_id not in ("kraken", "binance"):
        raise ValueError(
            f"the local exchange serves kraken and binance, not {exchange_id!r}")
    module = importlib.import_module(module_name)
    settings: dict[str, Any] = {
        "timeout": timeout_ms,
        "enableRateLimit": enable_rate_limit,
        "options": dict(_VENUE_OPTIONS.get(exchange_id, {})),
    }
    if authenticated:
        settings.update(server.credentials(exchange_id).as_ccxt_config())
    for key, value in (config or {}).items():
        if key == "options" and isinstance(value, dict):
            settings["options"].update(value)
        else:
            settings[key] = value
    client = getattr(module, exchange_id)(settings)
    base = urlsplit(server.url)
    api = client.urls["api"]
    for group, url in list(api.items()):
        if isinstance(url, str) and url.startswith(("http://", "https://")):
            parts = urlsplit(url)
            api[group] = parts._replace(scheme=base.scheme, netloc=base.netloc).geturl()
    return client
