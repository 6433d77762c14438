"""Kraken's REST API (``/0/public/*``, ``/0/private/*``) as far as ccxt's unified methods need it.

Private calls are verified like Kraken does: the ``API-Key`` header must name a known
key, ``API-Sign`` must be ``base64(HMAC-SHA512(base64decode(secret), path +
SHA256(nonce + body)))`` and the nonce must grow. Errors come back in HTTP 200 bodies,
``{"error": ["EAPI:Invalid key"], "result": {}}``, as Kraken sends them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Any

from otelres._testing.exchange._state import Account, Credentials, HttpRequest, HttpResponse, Order

__all__ = ["KrakenVenue"]

# Kraken's own asset codes for the unified currencies the local exchange lists.
_ASSET_IDS = {"BTC": "XXBT", "ETH": "XETH", "USD": "ZUSD", "EUR": "ZEUR"}
_ALTNAMES = {"BTC": "XBT", "ETH": "ETH", "USD": "USD", "EUR": "EUR"}


def _ok(result: Any) -> HttpResponse:
    return HttpResponse(200, {"error": [], "result": result})


def _error(message: str) -> HttpResponse:
    return HttpResponse(200, {"error": [message], "result": {}})


class KrakenVenue:
    """Answers Kraken REST requests from an :class:`Account`."""

    name = "kraken"
    prefixes = ("/0/",)

    def __init__(self, account: Account, credentials: Credentials) -> None:
        self.account = account
        self.credentials = credentials
        self.maintenance = False
        self._routes: dict[str, Callable[[HttpRequest], HttpResponse]] = {
            "/0/public/Time": self._time,
            "/0/public/SystemStatus": self._system_status,
            "/0/public/Assets": self._assets,
            "/0/public/AssetPairs": self._asset_pairs,
            "/0/public/Ticker": self._ticker,
            "/0/private/Balance": self._balance,
            "/0/private/BalanceEx": self._balance_ex,
            "/0/private/AddOrder": self._add_order,
            "/0/private/QueryOrders": self._query_orders,
            "/0/private/OpenOrders": self._open_orders,
            "/0/private/ClosedOrders": self._closed_orders,
            "/0/private/CancelOrder": self._cancel_order,
        }

    # ------------------------------------------------------------------ plumbing
    def handle(self, request: HttpRequest, *, maintenance: bool) -> HttpResponse:
        """The answer to *request* (maintenance: every call but SystemStatus is unavailable)."""
        route = self._routes.get(request.path)
        if route is None:
            return HttpResponse(404, {"error": ["EGeneral:Unknown method"], "result": {}})
        if maintenance:
            if request.path == "/0/public/SystemStatus":
                return _ok({"status": "maintenance", "timestamp": _iso_now()})
            return _error("EService:Unavailable")
        if request.path.startswith("/0/private/"):
            denied = self.authenticate(request)
            if denied is not None:
                return denied
        return route(request)

    def rate_limited(self) -> HttpResponse:
        """Kraken's rate-limit answer: HTTP 200 with an ``EAPI:Rate limit exceeded`` error."""
        return _error("EAPI:Rate limit exceeded")

    def maintenance_response(self) -> HttpResponse:
        return _error("EService:Unavailable")

    def api_key_of(self, request: HttpRequest) -> str | None:
        return request.headers.get("api-key")

    def authenticate(self, request: HttpRequest) -> HttpResponse | None:
        """None when the request is signed with the known key, else Kraken's error answer."""
        if request.method != "POST":
            return _error("EGeneral:Invalid arguments")
        if request.headers.get("api-key") != self.credentials.api_key:
            return _error("EAPI:Invalid key")
        nonce = request.form.get("nonce", "")
        if not nonce.isdigit():
            return _error("EAPI:Invalid nonce")
        digest = hashlib.sha256((nonce + request.body).encode()).digest()
        expected = base64.b64encode(
            hmac.new(
                base64.b64decode(self.credentials.secret),
                request.path.encode() + digest,
                hashlib.sha512,
            ).digest()
        ).decode()
        if not hmac.compare_digest(expected, request.headers.get("api-sign", "")):
            # Kraken answers a bad signature like a bad key.
            return _error("EAPI:Invalid key")
        if not self.account.check_nonce(self.credentials.api_key, int(nonce)):
            return _error("EAPI:Invalid nonce")
        return None

    # ------------------------------------------------------------------ public
    def _time(self, request: HttpRequest) -> HttpResponse:
        now = time.time()
        return _ok({"unixtime": int(now), "rfc1123": time.strftime("%a, %d %b %y %H:%M:%S +0000",
                                                                    time.gmtime(now))})

    def _system_status(self, request: HttpRequest) -> HttpResponse:
        return _ok({"status": "online", "timestamp": _iso_now()})

    def _assets(self, request: HttpRequest) -> HttpResponse:
        codes = sorted({c for m in self.account.markets.values() for c in (m.base, m.quote)})
        return _ok({
            _ASSET_IDS[code]: {
                "aclass": "currency",
                "altname": _ALTNAMES[code],
                "decimals": 10 if code in ("BTC", "ETH") else 4,
                "display_decimals": 5 if code in ("BTC", "ETH") else 2,
                "status": "enabled",
            }
            for code in codes
        })

    def _asset_pairs(self, request: HttpRequest) -> HttpResponse:
        pairs = {}
        for market in self.account.markets.values():
            base, quote = _ASSET_IDS[market.base], _ASSET_IDS[market.quote]
            pairs[base + quote] = {
                "altname": _ALTNAMES[market.base] + _ALTNAMES[market.quote],
                "wsname": f"{_ALTNAMES[market.base]}/{_ALTNAMES[market.quote]}",
                "aclass_base": "currency",
                "base": base,
                "aclass_quote": "currency",
                "quote": quote,
                "pair_decimals": 1,
                "cost_decimals": 5,
                "lot_decimals": 8,
                "lot_multiplier": 1,
                "leverage_buy": [],
                "leverage_sell": [],
                "fees": [[0, 0.26], [50000, 0.24]],
                "fees_maker": [[0, 0.16], [50000, 0.14]],
                "fee_volume_currency": "ZUSD",
                "margin_call": 80,
                "margin_stop": 40,
                "ordermin": "0.0001",
                "costmin": "0.5",
                "tick_size": "0.1",
                "status": "online",
            }
        return _ok(pairs)

    def _pair(self, pair_id: str) -> str | None:
        for market in self.account.markets.values():
            ids = (_ASSET_IDS[market.base] + _ASSET_IDS[market.quote],
                   _ALTNAMES[market.base] + _ALTNAMES[market.quote])
            if pair_id in ids:
                return market.symbol
        return None

    def _ticker(self, request: HttpRequest) -> HttpResponse:
        result = {}
        for pair_id in request.query.get("pair", "").split(","):
            symbol = self._pair(pair_id)
            if symbol is None:
                return _error("EQuery:Unknown asset pair")
            price = self.account.markets[symbol].price
            bid, ask = price - Decimal("0.5"), price + Decimal("0.5")
            result[pair_id] = {
                "a": [str(ask), "1", "1.000"],
                "b": [str(bid), "2", "2.000"],
                "c": [str(price), "0.01"],
                "v": ["120.5", "1400.25"],
                "p": [str(price), str(price)],
                "t": [1500, 21000],
                "l": [str(price - 100), str(price - 250)],
                "h": [str(price + 100), str(price + 250)],
                "o": str(price - 50),
            }
        return _ok(result)

    # ------------------------------------------------------------------ private
    def _balances(self) -> dict[str, Decimal]:
        with self.account.lock:
            return dict(self.account.balances)

    def _balance(self, request: HttpRequest) -> HttpResponse:
        return _ok({_ASSET_IDS[c]: str(v) for c, v in self._balances().items()})

    def _balance_ex(self, request: HttpRequest) -> HttpResponse:
        with self.account.lock:
            held: dict[str, Decimal] = {}
            for order in self.account.orders.values():
                if order.status == "open" and order.price is not None:
                    market = self.account.markets[order.symbol]
                    code, amount = ((market.quote, order.amount * order.price)
                                    if order.side == "buy" else (market.base, order.amount))
                    held[code] = held.get(code, Decimal(0)) + amount
        return _ok({
            _ASSET_IDS[c]: {"balance": str(v), "hold_trade": str(held.get(c, Decimal(0)))}
            for c, v in self._balances().items()
        })

    def _add_order(self, request: HttpRequest) -> HttpResponse:
        form = request.form
        symbol = self._pair(form.get("pair", ""))
        if symbol is None:
            return _error("EQuery:Unknown asset pair")
        side, kind = form.get("type"), form.get("ordertype")
        if side not in ("buy", "sell") or kind not in ("market", "limit"):
            return _error("EGeneral:Invalid arguments")
        try:
            amount = Decimal(form.get("volume", ""))
            price = Decimal(form["price"]) if kind == "limit" else None
        except (InvalidOperation, KeyError):
            return _error("EGeneral:Invalid arguments")
        client_id = form.get("cl_ord_id")
        if client_id is not None and self.account.find_client_order(client_id) is not None:
            return _error("EOrder:Duplicate order")
        order_id = self.account.next_id("O{:05d}-OTLRS-KRAKEN")
        order = self.account.place(order_id, symbol=symbol, side=side, type=kind,
                                   amount=amount, price=price, client_order_id=client_id)
        return _ok({"descr": {"order": self._describe(order)}, "txid": [order_id]})

    def _describe(self, order: Order) -> str:
        """Kraken's one-line order description, ``buy 0.01 XBTUSD @ limit 64000``."""
        market = self.account.markets[order.symbol]
        altname = _ALTNAMES[market.base] + _ALTNAMES[market.quote]
        at = "market" if order.price is None else f"limit {order.price}"
        return f"{order.side} {order.amount} {altname} @ {at}"

    def _order_info(self, order: Order) -> dict[str, Any]:
        market = self.account.markets[order.symbol]
        return {
            "refid": None,
            "userref": 0,
            "cl_ord_id": order.client_order_id,
            "status": order.status,
            "opentm": order.created,
            "closetm": order.created if order.status == "closed" else 0,
            "starttm": 0,
            "expiretm": 0,
            "descr": {
                "pair": _ALTNAMES[market.base] + _ALTNAMES[market.quote],
                "type": order.side,
                "ordertype": order.type,
                "price": str(order.price or 0),
                "price2": "0",
                "leverage": "none",
                "order": self._describe(order),
                "close": "",
            },
            "vol": str(order.amount),
            "vol_exec": str(order.filled),
            "cost": str(order.filled * (order.average or 0)),
            "fee": "0",
            "price": str(order.average or 0),
            "stopprice": "0",
            "limitprice": "0",
            "misc": "",
            "oflags": "fciq",
        }

    def _query_orders(self, request: HttpRequest) -> HttpResponse:
        result = {}
        with self.account.lock:
            for txid in request.form.get("txid", "").split(","):
                order = self.account.orders.get(txid)
                if order is not None:
                    result[txid] = order
        if not result:
            return _error("EOrder:Unknown order")
        return _ok({txid: self._order_info(o) for txid, o in result.items()})

    def _filtered(self, request: HttpRequest, statuses: tuple[str, ...]) -> dict[str, Any]:
        wanted = request.form.get("cl_ord_id")
        with self.account.lock:
            orders = [o for o in self.account.orders.values() if o.status in statuses
                      and (wanted is None or o.client_order_id == wanted)]
        return {o.id: self._order_info(o) for o in orders}

    def _open_orders(self, request: HttpRequest) -> HttpResponse:
        return _ok({"open": self._filtered(request, ("open",))})

    def _closed_orders(self, request: HttpRequest) -> HttpResponse:
        closed = self._filtered(request, ("closed", "canceled"))
        return _ok({"closed": closed, "count": len(closed)})

    def _cancel_order(self, request: HttpRequest) -> HttpResponse:
        txid = request.form.get("txid", "")
        with self.account.lock:
            order = self.account.orders.get(txid)
            if order is None or order.status != "open":
                return _error("EOrder:Unknown order")
            order.status = "canceled"
        return _ok({"count": 1})


def _iso_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
