"""Binance spot REST (``/api/v3/*``, ``/sapi/v1/system/status``) as far as ccxt's unified methods need it.

Signed calls are verified like Binance does: the ``X-MBX-APIKEY`` header must name a
known key, ``signature`` must be the hex HMAC-SHA256 of the rest of the query string
(GET/DELETE) or form body (POST), and ``timestamp`` must lie within ``recvWindow`` of
the server clock. Errors come back as ``{"code": -2013, "msg": "Order does not exist."}``
with HTTP 400 or 401, as Binance sends them.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Any

from otelres._testing.exchange._state import Account, Credentials, HttpRequest, HttpResponse, Order

__all__ = ["BinanceVenue"]

_SIGNED = frozenset({"/api/v3/account", "/api/v3/order", "/api/v3/openOrders", "/api/v3/allOrders"})


def _error(status: int, code: int, msg: str) -> HttpResponse:
    return HttpResponse(status, {"code": code, "msg": msg})


def _ms() -> int:
    return int(time.time() * 1000)


class BinanceVenue:
    """Answers Binance spot REST requests from an :class:`Account`."""

    name = "binance"
    prefixes = ("/api/", "/sapi/")

    def __init__(self, account: Account, credentials: Credentials) -> None:
        self.account = account
        self.credentials = credentials
        self._routes: dict[tuple[str, str], Callable[[HttpRequest], HttpResponse]] = {
            ("GET", "/api/v3/ping"): lambda r: HttpResponse(200, {}),
            ("GET", "/api/v3/time"): lambda r: HttpResponse(200, {"serverTime": _ms()}),
            ("GET", "/sapi/v1/system/status"): lambda r: HttpResponse(
                200, {"status": 0, "msg": "normal"}),
            ("GET", "/api/v3/exchangeInfo"): self._exchange_info,
            ("GET", "/api/v3/ticker/24hr"): self._ticker,
            ("GET", "/api/v3/account"): self._account,
            ("POST", "/api/v3/order"): self._new_order,
            ("GET", "/api/v3/order"): self._get_order,
            ("DELETE", "/api/v3/order"): self._cancel_order,
            ("GET", "/api/v3/openOrders"): self._open_orders,
        }

    # ------------------------------------------------------------------ plumbing
    def handle(self, request: HttpRequest, *, maintenance: bool) -> HttpResponse:
        """The answer to *request* (maintenance: 503 for all but ``system/status``)."""
        route = self._routes.get((request.method, request.path))
        if route is None:
            return _error(404, -1000, f"unknown endpoint {request.method} {request.path}")
        if maintenance:
            if request.path == "/sapi/v1/system/status":
                return HttpResponse(200, {"status": 1, "msg": "system maintenance"})
            return self.maintenance_response()
        if request.path in _SIGNED:
            denied = self.authenticate(request)
            if denied is not None:
                return denied
        return route(request)

    def rate_limited(self) -> HttpResponse:
        """Binance answers a rate-limit breach with HTTP 429 (the header is added by the fault)."""
        return _error(429, -1003, "Too many requests; current limit is 6000 request weight per 1 MINUTE.")

    def maintenance_response(self) -> HttpResponse:
        return HttpResponse(503, "Service Unavailable: system maintenance")

    def api_key_of(self, request: HttpRequest) -> str | None:
        return request.headers.get("x-mbx-apikey")

    def authenticate(self, request: HttpRequest) -> HttpResponse | None:
        """None when the request is signed with the known key, else Binance's error answer."""
        if request.headers.get("x-mbx-apikey") != self.credentials.api_key:
            return _error(401, -2015, "Invalid API-key, IP, or permissions for action.")
        payload = request.body if request.method == "POST" else request.raw_query
        unsigned, sep, signature = payload.rpartition("&signature=")
        if not sep:
            return _error(400, -1102, "Mandatory parameter 'signature' was not sent.")
        expected = hmac.new(self.credentials.secret.encode(), unsigned.encode(),
                            hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, signature):
            return _error(400, -1022, "Signature for this request is not valid.")
        params = request.form if request.method == "POST" else request.query
        try:
            stamp = int(params.get("timestamp", ""))
            window = int(params.get("recvWindow", "5000"))
        except ValueError:
            return _error(400, -1102, "Mandatory parameter 'timestamp' was not sent.")
        if abs(_ms() - stamp) > window:
            return _error(400, -1021, "Timestamp for this request is outside of the recvWindow.")
        return None

    # ------------------------------------------------------------------ public
    def _market_id(self, symbol: str) -> str:
        market = self.account.markets[symbol]
        return market.base + market.quote

    def _symbol(self, market_id: str) -> str | None:
        for symbol in self.account.markets:
            if self._market_id(symbol) == market_id:
                return symbol
        return None

    def _exchange_info(self, request: HttpRequest) -> HttpResponse:
        symbols = []
        for market in self.account.markets.values():
            symbols.append({
                "symbol": market.base + market.quote,
                "status": "TRADING",
                "baseAsset": market.base,
                "baseAssetPrecision": 8,
                "quoteAsset": market.quote,
                "quotePrecision": 8,
                "quoteAssetPrecision": 8,
                "baseCommissionPrecision": 8,
                "quoteCommissionPrecision": 8,
                "orderTypes": ["LIMIT", "MARKET"],
                "icebergAllowed": True,
                "ocoAllowed": True,
                "quoteOrderQtyMarketAllowed": True,
                "isSpotTradingAllowed": True,
                "isMarginTradingAllowed": False,
                "filters": [
                    {"filterType": "PRICE_FILTER", "minPrice": "0.01", "maxPrice": "1000000.00",
                     "tickSize": "0.01"},
                    {"filterType": "LOT_SIZE", "minQty": "0.00001", "maxQty": "9000.00",
                     "stepSize": "0.00001"},
                    {"filterType": "NOTIONAL", "minNotional": "5.00", "applyMinToMarket": True,
                     "maxNotional": "9000000.00", "applyMaxToMarket": False, "avgPriceMins": 5},
                ],
                "permissions": [],
                "permissionSets": [["SPOT"]],
                "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
                "allowedSelfTradePreventionModes": ["EXPIRE_TAKER", "EXPIRE_MAKER"],
            })
        return HttpResponse(200, {
            "timezone": "UTC",
            "serverTime": _ms(),
            "rateLimits": [{"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE",
                            "intervalNum": 1, "limit": 6000}],
            "exchangeFilters": [],
            "symbols": symbols,
        })

    def _ticker(self, request: HttpRequest) -> HttpResponse:
        symbol = self._symbol(request.query.get("symbol", ""))
        if symbol is None:
            return _error(400, -1121, "Invalid symbol.")
        price = self.account.markets[symbol].price
        now = _ms()
        return HttpResponse(200, {
            "symbol": self._market_id(symbol),
            "priceChange": "50.00", "priceChangePercent": "0.1",
            "weightedAvgPrice": str(price), "prevClosePrice": str(price - 50),
            "lastPrice": str(price), "lastQty": "0.01",
            "bidPrice": str(price - Decimal("0.5")), "bidQty": "2.0",
            "askPrice": str(price + Decimal("0.5")), "askQty": "1.0",
            "openPrice": str(price - 50), "highPrice": str(price + 250),
            "lowPrice": str(price - 250), "volume": "1400.25",
            "quoteVolume": str(price * 1400), "openTime": now - 86_400_000, "closeTime": now,
            "firstId": 1, "lastId": 21000, "count": 21000,
        })

    # ------------------------------------------------------------------ private
    def _account(self, request: HttpRequest) -> HttpResponse:
        with self.account.lock:
            balances = [{"asset": c, "free": str(v), "locked": "0.00000000"}
                        for c, v in sorted(self.account.balances.items())]
        return HttpResponse(200, {
            "makerCommission": 10, "takerCommission": 10, "buyerCommission": 0,
            "sellerCommission": 0, "canTrade": True, "canWithdraw": True, "canDeposit": True,
            "updateTime": _ms(), "accountType": "SPOT", "balances": balances,
            "permissions": ["SPOT"],
        })

    def _order_json(self, order: Order) -> dict[str, Any]:
        status = {"open": "NEW", "closed": "FILLED", "canceled": "CANCELED"}[order.status]
        created = int(order.created * 1000)
        return {
            "symbol": self._market_id(order.symbol),
            "orderId": int(order.id),
            "orderListId": -1,
            "clientOrderId": order.client_order_id or f"otelres{order.id}",
            "transactTime": created,
            "time": created,
            "updateTime": created,
            "price": str(order.price or "0.00000000"),
            "origQty": str(order.amount),
            "executedQty": str(order.filled),
            "cummulativeQuoteQty": str(order.filled * (order.average or 0)),
            "status": status,
            "timeInForce": "GTC",
            "type": order.type.upper(),
            "side": order.side.upper(),
            "isWorking": True,
            "workingTime": created,
            "selfTradePreventionMode": "NONE",
            "fills": [],
        }

    def _new_order(self, request: HttpRequest) -> HttpResponse:
        form = request.form
        symbol = self._symbol(form.get("symbol", ""))
        if symbol is None:
            return _error(400, -1121, "Invalid symbol.")
        side, kind = form.get("side", "").lower(), form.get("type", "").lower()
        if side not in ("buy", "sell") or kind not in ("market", "limit"):
            return _error(400, -1102, "Mandatory parameter 'side' or 'type' is invalid.")
        try:
            amount = Decimal(form.get("quantity", ""))
            price = Decimal(form["price"]) if kind == "limit" else None
        except (InvalidOperation, KeyError):
            return _error(400, -1102, "Mandatory parameter 'quantity' was not sent.")
        client_id = form.get("newClientOrderId")
        if client_id is not None and self.account.find_client_order(client_id) is not None:
            return _error(400, -2010, "Duplicate order sent.")
        order_id = self.account.next_id("{}")
        order = self.account.place(order_id, symbol=symbol, side=side, type=kind, amount=amount,
                                   price=price, client_order_id=client_id)
        return HttpResponse(200, self._order_json(order))

    def _lookup(self, params: dict[str, str]) -> Order | None:
        client_id = params.get("origClientOrderId")
        if client_id is not None:
            return self.account.find_client_order(client_id)
        with self.account.lock:
            return self.account.orders.get(params.get("orderId", ""))

    def _get_order(self, request: HttpRequest) -> HttpResponse:
        order = self._lookup(request.query)
        if order is None:
            return _error(400, -2013, "Order does not exist.")
        return HttpResponse(200, self._order_json(order))

    def _cancel_order(self, request: HttpRequest) -> HttpResponse:
        order = self._lookup(request.query)
        if order is None or order.status != "open":
            return _error(400, -2011, "Unknown order sent.")
        with self.account.lock:
            order.status = "canceled"
        return HttpResponse(200, self._order_json(order))

    def _open_orders(self, request: HttpRequest) -> HttpResponse:
        with self.account.lock:
            orders = [o for o in self.account.orders.values() if o.status == "open"]
        return HttpResponse(200, [self._order_json(o) for o in orders])
