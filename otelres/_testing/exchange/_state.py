"""What the local exchange knows: markets, prices, balances and orders (one account per venue)."""

from __future__ import annotations

import itertools
import threading
import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

__all__ = ["Account", "Credentials", "HttpRequest", "HttpResponse", "MarketSpec", "Order"]


@dataclass(frozen=True, slots=True)
class Credentials:
    """An API key pair the local exchange accepts (Kraken wants a base64 secret)."""

    api_key: str
    secret: str
    password: str = ""
    """Not sent by Kraken or Binance; set on the client so secret scans can look for it too."""

    def as_ccxt_config(self) -> dict[str, str]:
        """The ccxt constructor keys for these credentials."""
        config = {"apiKey": self.api_key, "secret": self.secret}
        if self.password:
            config["password"] = self.password
        return config


@dataclass(frozen=True, slots=True)
class MarketSpec:
    """A spot market: unified symbol, the venue's asset codes, and a starting price."""

    base: str
    quote: str
    price: Decimal

    @property
    def symbol(self) -> str:
        return f"{self.base}/{self.quote}"


@dataclass(frozen=True, slots=True)
class HttpRequest:
    """A request as a venue sees it; ``body`` is the raw text, ``form`` its parsed fields."""

    method: str
    path: str
    query: dict[str, str]
    form: dict[str, str]
    body: str
    raw_query: str
    headers: dict[str, str]


@dataclass(slots=True)
class HttpResponse:
    """What a venue answers: status, JSON-able body, extra headers."""

    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class Order:
    """An order the account holds; market orders fill at once, limit orders stay open."""

    id: str
    client_order_id: str | None
    symbol: str
    side: str
    type: str
    amount: Decimal
    price: Decimal | None
    status: str
    created: float
    filled: Decimal = Decimal(0)
    average: Decimal | None = None


class Account:
    """One venue's account: balances, orders and the last nonce seen per key (thread-safe)."""

    def __init__(self, markets: tuple[MarketSpec, ...], balances: dict[str, Decimal]) -> None:
        self.markets = {m.symbol: m for m in markets}
        self.balances = dict(balances)
        self.orders: dict[str, Order] = {}
        self.lock = threading.Lock()
        self._ids = itertools.count(1)
        self._last_nonce: dict[str, int] = {}

    def check_nonce(self, api_key: str, nonce: int) -> bool:
        """Accept *nonce* only when it is greater than the previous one for *api_key*."""
        with self.lock:
            if nonce <= self._last_nonce.get(api_key, -1):
                return False
            self._last_nonce[api_key] = nonce
            return True

    def next_id(self, fmt: str) -> str:
        with self.lock:
            return fmt.format(next(self._ids))

    def find_client_order(self, client_order_id: str) -> Order | None:
        with self.lock:
            for order in self.orders.values():
                if order.client_order_id == client_order_id:
                    return order
        return None

    def place(
        self,
        order_id: str,
        *,
        symbol: str,
        side: str,
        type: str,
        amount: Decimal,
        price: Decimal | None,
        client_order_id: str | None,
    ) -> Order:
        """Record a new order; a market order fills at the market price and moves balances."""
        market = self.markets[symbol]
        order = Order(order_id, client_order_id, symbol, side, type, amount, price, "open",
                      time.time())
        if type == "market":
            fill = market.price
            order.status, order.filled, order.average = "closed", amount, fill
            sign = Decimal(1) if side == "buy" else Decimal(-1)
            with self.lock:
                self.balances[market.base] = self.balances.get(market.base, Decimal(0)) + sign * amount
                self.balances[market.quote] = (
                    self.balances.get(market.quote, Decimal(0)) - sign * amount * fill
                )
        with self.lock:
            self.orders[order_id] = order
        return order
