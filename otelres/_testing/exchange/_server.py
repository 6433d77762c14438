"""The local exchange: one HTTP server on 127.0.0.1 speaking Kraken's and Binance's REST APIs."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol
from urllib.parse import parse_qsl, urlsplit

from otelres._testing.exchange._binance import BinanceVenue
from otelres._testing.exchange._faults import Fault, FaultTable, Phase
from otelres._testing.exchange._kraken import KrakenVenue
from otelres._testing.exchange._state import (
    Account,
    Credentials,
    HttpRequest,
    HttpResponse,
    MarketSpec,
    Order,
)

__all__ = [
    "BINANCE_CREDENTIALS",
    "KRAKEN_CREDENTIALS",
    "ExchangeServer",
    "RecordedRequest",
]

KRAKEN_CREDENTIALS = Credentials(
    api_key="otelres-test-kraken-key-6f1c2a",
    # base64 of 64 fixed bytes, as Kraken hands out
    secret="b3RlbHJlcy10ZXN0LWtyYWtlbi1zZWNyZXQtNDBjMjdkLTAxMjM0NTY3ODlhYmNkZWYtMDEyMzQ1Njc4OWFi",
    password="otelres-test-kraken-password-93e7",
)
"""The key pair the local exchange's Kraken accepts (test data, not a real credential)."""

BINANCE_CREDENTIALS = Credentials(
    api_key="otelresTestBinanceKey0b5e9a7d3c1f",
    secret="otelresTestBinanceSecret4e8a2c6b0d9f",
    password="otelres-test-binance-password-51a4",
)
"""The key pair the local exchange's Binance accepts (test data, not a real credential)."""

_HTTP_REASONS = {429: "Too Many Requests", 500: "Internal Server Error", 502: "Bad Gateway",
                 503: "Service Unavailable", 504: "Gateway Timeout"}


class _Venue(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def prefixes(self) -> tuple[str, ...]: ...
    @property
    def account(self) -> Account: ...
    @property
    def credentials(self) -> Credentials: ...

    def handle(self, request: HttpRequest, *, maintenance: bool) -> HttpResponse: ...
    def rate_limited(self) -> HttpResponse: ...
    def maintenance_response(self) -> HttpResponse: ...
    def api_key_of(self, request: HttpRequest) -> str | None: ...


@dataclass(slots=True)
class RecordedRequest:
    """One request the local exchange received and what it did with it.

    Recorded on arrival: ``status`` is None while the answer is still being prepared
    (a delayed request) and 0 for a dropped connection. ``signature`` is the signature
    the client sent (Kraken ``API-Sign``, Binance ``signature``), kept so that tests can
    check it appears nowhere in telemetry; ``fault`` is the kind of fault injected into
    this request, if any.
    """

    time: float
    venue: str
    method: str
    path: str
    status: int | None
    api_key: str | None
    signature: str | None
    fault: str | None


class ExchangeServer:
    """A local Kraken + Binance REST exchange for tests and for trying bots offline.

    Real ccxt clients (sync, ``ccxt.async_support`` and the REST side of ``ccxt.pro``)
    work against it: point them at :attr:`url` with :meth:`client` (or
    :func:`otelres.testing.exchange_client`). Public calls (``load_markets``,
    ``fetch_ticker``, ``fetch_time``, ``fetch_status``) and private calls
    (``fetch_balance``, ``create_order``, ``fetch_order``, ``fetch_open_orders``,
    ``fetch_closed_orders``, ``cancel_order``) behave like the real venues, including
    signature checks against :data:`KRAKEN_CREDENTIALS` / :data:`BINANCE_CREDENTIALS`::

        with ExchangeServer() as server:
            kraken = server.client("kraken")
            kraken.fetch_ticker("BTC/USD")
            server.inject(Fault("http", status=503, times=2))
            ...
            assert server.count(path="/0/private/AddOrder") == 1

    Faults (:class:`Fault`) are injected with :meth:`inject`, cleared with
    :meth:`clear_faults`, or played as a scenario of :class:`Phase` s with :meth:`play`.
    The server binds 127.0.0.1 on a free port (or *port*), serves from a background
    thread, and :meth:`stop` ends it and every request it is still delaying.
    """

    def __init__(
        self,
        *,
        port: int = 0,
        kraken_credentials: Credentials = KRAKEN_CREDENTIALS,
        binance_credentials: Credentials = BINANCE_CREDENTIALS,
    ) -> None:
        self._port = port
        self.kraken = KrakenVenue(
            Account(
                (MarketSpec("BTC", "USD", Decimal("64000.0")),
                 MarketSpec("ETH", "USD", Decimal("3200.0"))),
                {"BTC": Decimal("2"), "ETH": Decimal("10"), "USD": Decimal("100000")},
            ),
            kraken_credentials,
        )
        self.binance = BinanceVenue(
            Account(
                (MarketSpec("BTC", "USDT", Decimal("64010.00")),
                 MarketSpec("ETH", "USDT", Decimal("3201.00"))),
                {"BTC": Decimal("2"), "ETH": Decimal("10"), "USDT": Decimal("100000")},
            ),
            binance_credentials,
        )
        self._venues: tuple[_Venue, ...] = (self.kraken, self.binance)
        self._faults = FaultTable()
        self._requests: list[RecordedRequest] = []
        self._requests_lock = threading.Lock()
        self._stopping = threading.Event()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._scenario: threading.Thread | None = None
        self._scenario_stop = threading.Event()
        self._phase: str | None = None

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> ExchangeServer:
        """Bind 127.0.0.1 and serve in a background thread; returns self."""
        if self._httpd is not None:
            return self
        self._stopping.clear()
        httpd = ThreadingHTTPServer(("127.0.0.1", self._port), _handler_for(self))
        httpd.daemon_threads = True
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.05},
            name=f"otelres-exchange-{self.port}", daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, end a running scenario and release delayed requests (idempotent)."""
        self.stop_scenario()
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        self._stopping.set()
        httpd.shutdown()
        httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> ExchangeServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """The TCP port served on (valid after :meth:`start`)."""
        if self._httpd is None:
            raise RuntimeError("ExchangeServer is not running; call start() first")
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        """The base URL, ``http://127.0.0.1:<port>``."""
        return f"http://127.0.0.1:{self.port}"

    # ------------------------------------------------------------------ clients
    def client(self, exchange_id: str = "kraken", **kwargs: Any) -> Any:
        """A ccxt client for *exchange_id* pointed at this server; see :func:`exchange_client`."""
        from otelres._testing.exchange._client import exchange_client

        return exchange_client(self, exchange_id, **kwargs)

    def credentials(self, exchange_id: str) -> Credentials:
        """The key pair this server accepts for *exchange_id* (``kraken`` or ``binance``)."""
        return self._venue_named(exchange_id).credentials

    # ------------------------------------------------------------------ faults
    def inject(self, *faults: Fault) -> None:
        """Add *faults*; each stays until used up (``times``) or :meth:`clear_faults`."""
        for fault in faults:
            self._faults.add(fault)

    def clear_faults(self) -> None:
        """Remove every injected fault (a running scenario sets its own at the next phase)."""
        self._faults.clear()

    @property
    def faults(self) -> list[Fault]:
        """The faults currently in force."""
        return self._faults.active()

    def play(self, phases: Iterable[Phase], *, loop: bool = False) -> None:
        """Play *phases* in a background thread: each phase's faults replace the previous ones.

        After the last phase the faults are cleared (or, with *loop*, the scenario starts
        over). :attr:`phase` names the phase in force; :meth:`stop_scenario` ends it.
        """
        plan = tuple(phases)
        if not plan:
            raise ValueError("play() needs at least one Phase")
        self.stop_scenario()
        self._scenario_stop.clear()

        def enter(phase: Phase) -> None:
            self._phase = phase.name
            self._faults.replace(phase.faults)

        def run() -> None:
            first = True
            while True:
                for phase in plan:
                    if not first:
                        enter(phase)
                    first = False
                    if self._scenario_stop.wait(phase.duration):
                        return
                if not loop:
                    break
            self._faults.clear()
            self._phase = None

        # The first phase is in force when play() returns, not when the thread gets going.
        enter(plan[0])
        self._scenario = threading.Thread(target=run, name="otelres-exchange-scenario",
                                          daemon=True)
        self._scenario.start()

    def stop_scenario(self) -> None:
        """End a scenario started by :meth:`play` and clear its faults."""
        thread, self._scenario = self._scenario, None
        if thread is not None and thread.is_alive():
            self._scenario_stop.set()
            thread.join(timeout=5)
            self._faults.clear()
            self._phase = None

    @property
    def phase(self) -> str | None:
        """The name of the scenario phase in force, or None."""
        return self._phase

    # ------------------------------------------------------------------ records
    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received so far, oldest first."""
        with self._requests_lock:
            return list(self._requests)

    def count(self, *, path: str | None = None, venue: str | None = None,
              method: str | None = None) -> int:
        """How many requests matched *path* (exact), *venue* and *method*."""
        return sum(1 for r in self.requests
                   if (path is None or r.path == path) and (venue is None or r.venue == venue)
                   and (method is None or r.method == method))

    def orders(self, exchange_id: str) -> list[Order]:
        """The orders the *exchange_id* account holds, oldest first."""
        account = self._venue_named(exchange_id).account
        with account.lock:
            return list(account.orders.values())

    def clear_requests(self) -> None:
        """Forget the recorded requests (orders and balances stay)."""
        with self._requests_lock:
            self._requests.clear()

    def set_price(self, symbol: str, price: float | str, *, exchange_id: str = "kraken") -> None:
        """Move the price of *symbol* on *exchange_id* (tickers and market fills follow)."""
        account = self._venue_named(exchange_id).account
        market = account.markets.get(symbol)
        if market is None:
            raise KeyError(f"{exchange_id} lists no market {symbol!r}; "
                           f"it lists {', '.join(sorted(account.markets))}")
        with account.lock:
            account.markets[symbol] = MarketSpec(market.base, market.quote, Decimal(str(price)))

    # ------------------------------------------------------------------ serving
    def _venue_named(self, exchange_id: str) -> _Venue:
        for venue in self._venues:
            if venue.name == exchange_id:
                return venue
        raise ValueError(f"the local exchange serves kraken and binance, not {exchange_id!r}")

    def _venue_for(self, path: str) -> _Venue | None:
        for venue in self._venues:
            if path.startswith(venue.prefixes):
                return venue
        return None

    def _record(self, venue: _Venue, request: HttpRequest,
                fault: Fault | None) -> RecordedRequest:
        signature = request.headers.get("api-sign")
        if signature is None:
            params = request.form if request.method == "POST" else request.query
            signature = params.get("signature")
        entry = RecordedRequest(time.time(), venue.name, request.method, request.path, None,
                                venue.api_key_of(request), signature,
                                None if fault is None else fault.kind)
        with self._requests_lock:
            self._requests.append(entry)
        return entry

    def _wait(self, seconds: float) -> None:
        self._stopping.wait(seconds)

    def _respond(self, request: HttpRequest) -> HttpResponse | None:
        """The answer to *request* after faults; None means drop the connection."""
        venue = self._venue_for(request.path)
        if venue is None:
            return HttpResponse(404, {"error": f"no venue serves {request.path}"})
        fault = self._faults.take(venue.name, request.path)
        entry = self._record(venue, request, fault)
        response = self._apply(venue, request, fault)
        entry.status = 0 if response is None else response.status
        return response

    def _apply(self, venue: _Venue, request: HttpRequest,
               fault: Fault | None) -> HttpResponse | None:
        if fault is None:
            return venue.handle(request, maintenance=False)
        if fault.after_processing:
            response = venue.handle(request, maintenance=False)
            if fault.kind == "delay":
                self._wait(fault.delay)
                return response
            if fault.kind == "drop":
                return None
        elif fault.kind == "delay":
            self._wait(fault.delay)
            return venue.handle(request, maintenance=False)
        elif fault.kind == "drop":
            return None
        if fault.kind == "maintenance":
            return venue.handle(request, maintenance=True)
        if fault.kind == "kraken_rate_limit":
            response = venue.rate_limited()
        else:
            reason = _HTTP_REASONS.get(fault.status, "Error")
            if fault.status == 429:
                response = venue.rate_limited()
                response.status = 429
            else:
                response = HttpResponse(fault.status, f"{fault.status} {reason}")
        if fault.retry_after is not None:
            response.headers["Retry-After"] = f"{fault.retry_after:g}"
        return response


def _handler_for(server: ExchangeServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "otelres-local-exchange/1"
        # Headers and body go out in separate writes; with Nagle on, keep-alive clients
        # would wait ~40 ms for the delayed ACK on every request.
        disable_nagle_algorithm = True

        def _serve(self) -> None:
            parts = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length).decode() if length else ""
            content_type = self.headers.get("Content-Type") or ""
            form = dict(parse_qsl(body)) if "urlencoded" in content_type else {}
            request = HttpRequest(
                method=self.command,
                path=parts.path,
                query=dict(parse_qsl(parts.query)),
                form=form,
                body=body,
                raw_query=parts.query,
                headers={k.lower(): v for k, v in self.headers.items()},
            )
            response = server._respond(request)
            if response is None:
                self.close_connection = True
                return
            if isinstance(response.body, str):
                payload, kind = response.body.encode(), "text/plain; charset=utf-8"
            else:
                payload, kind = json.dumps(response.body).encode(), "application/json"
            try:
                self.send_response(response.status, _HTTP_REASONS.get(response.status))
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(payload)))
                for name, value in response.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(payload)
            except OSError:
                # The client gave up (its timeout was shorter than an injected delay).
                self.close_connection = True

        do_GET = do_POST = do_DELETE = do_PUT = _serve

        def log_message(self, format: str, *args: Any) -> None:
            return

    return Handler


