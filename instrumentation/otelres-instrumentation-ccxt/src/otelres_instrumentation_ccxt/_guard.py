"""Per-exchange resilience for ccxt calls, built from ``config.toml``.

For exchange ``kraken`` the guard holds:

* the circuit breaker ``kraken`` (``[resilience.circuit_breaker.kraken]``), counting
  only ccxt's ``OperationFailed`` family (network errors, timeouts, unavailability,
  maintenance, rate limiting, bad responses): a bad symbol, insufficient funds or a
  rejected order are the caller's problem and leave it alone;
* the retry ``kraken`` (``[resilience.retry.kraken]``) for idempotent methods
  (``fetch_*``, ``load_markets``) on that same family, waiting at least what the
  exchange asked for (``Retry-After``; after a rate-limit error without one, one
  request's worth of ccxt's ``rateLimit``);
* for ``create_order`` with safe order retry on, the retry ``kraken.orders``: a client
  order id is fixed before the first attempt, and after a failure the order is looked
  up by it; an order that exists is returned instead of being sent again, and the
  order is resent only when the lookup says it does not exist;
* the rate limiter ``kraken`` when ``[resilience.rate_limits]`` names it (or
  ``default``), in ccxt cost units per second, taken per HTTP request by the ``fetch2``
  hook (see :mod:`._wrappers`); one limiter per exchange and configuration, shared by
  every client of that exchange however it was instrumented.

Every other method (``cancel_*``, ``edit_order``, ``withdraw``, ``transfer``, and
``create_order`` without safe order retry) goes through the breaker once, never retried.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from otelres_instrumentation_ccxt._context import CALL, Call
from otelres_instrumentation_ccxt._methods import ORDER_METHODS

if TYPE_CHECKING:
    from otelres.resilience import CircuitBreaker, RateLimiter, Retry

__all__ = ["ExchangeGuard", "GuardFactory", "GuardOptions", "OrderLookup", "lookup_order"]

_log = logging.getLogger("otelres_instrumentation_ccxt")

GuardFactory = Callable[[str], "ExchangeGuard | None"]


class GuardOptions:
    """What the instrumentor was asked for: resilience on or off, safe order retry."""

    __slots__ = ("resilience", "safe_order_retry")

    def __init__(self, *, resilience: bool = True, safe_order_retry: bool = False) -> None:
        self.resilience = resilience
        self.safe_order_retry = safe_order_retry

    def factory(self) -> GuardFactory | None:
        """A function building the guard of one exchange, or None when resilience is off."""
        if not self.resilience:
            return None
        safe = self.safe_order_retry
        return lambda exchange_id: ExchangeGuard.from_config(exchange_id, safe_order_retry=safe)


# Where each venue expects the client order id in create_order params (ccxt maps the
# unified `clientOrderId` for most; Coinbase Advanced only reads `client_order_id`).
_CLIENT_ID_PARAM = {"coinbase": "client_order_id", "coinbaseadvanced": "client_order_id"}


class _OrderAttempt:
    """One create_order call under safe order retry: its client order id and what a lookup found."""

    __slots__ = ("client_order_id", "found", "symbol")

    def __init__(self, symbol: str, client_order_id: str) -> None:
        self.symbol = symbol
        self.client_order_id = client_order_id
        self.found: dict[str, Any] | None = None


class ExchangeGuard:
    """The breaker, retries and rate limiter of one exchange (see the module docstring)."""

    __slots__ = ("breaker", "limiter", "name", "order_retry", "read_retry")

    def __init__(
        self,
        name: str,
        *,
        breaker: CircuitBreaker | None,
        read_retry: Retry | None,
        order_retry: Retry | None = None,
        limiter: RateLimiter | None = None,
    ) -> None:
        self.name = name
        self.breaker = breaker
        self.read_retry = read_retry
        self.order_retry = order_retry
        self.limiter = limiter

    @classmethod
    def from_config(cls, exchange_id: str, *, safe_order_retry: bool = False) -> ExchangeGuard:
        """The guard ``config.toml`` describes for *exchange_id* (see the module docstring)."""
        import ccxt

        from otelres import config
        from otelres.resilience import Retry, get_breaker

        transient = (ccxt.OperationFailed,)
        settings = config.current().resilience
        try:
            breaker: CircuitBreaker | None = get_breaker(
                exchange_id, record_exceptions=transient
            )
        except ValueError:
            # The application registered breaker `exchange_id` itself with other
            # settings: use that one, as it decided what counts.
            from otelres.resilience import all_breakers

            breaker = all_breakers().get(exchange_id)
            _log.warning(
                "otelres ccxt: breaker %r already exists with other settings; using it as is",
                exchange_id,
            )
        read_retry = Retry.from_settings(
            exchange_id,
            settings.retry_for(exchange_id),
            retry_on=transient,
            retry_after=_retry_after,
        )
        order_retry = None
        if safe_order_retry:
            order_retry = Retry.from_settings(
                f"{exchange_id}.orders",
                settings.retry_for(exchange_id),
                retry_on=transient,
                retry_after=_retry_after,
                idempotent=False,
                retry_safe=_order_absent,
            )
        return cls(exchange_id, breaker=breaker, read_retry=read_retry,
                   order_retry=order_retry, limiter=_shared_limiter(exchange_id))

    # ------------------------------------------------------------------ running calls
    def run(self, call: Call, original: Callable[..., Any], args: tuple[Any, ...],
            kwargs: dict[str, Any]) -> Any:
        """Run a sync unified call through breaker and, where safe, retries."""
        exchange, method = call.exchange, call.method
        # Retry(breaker(original)): each attempt asks the breaker; a rejection is final.
        fn: Callable[..., Any]
        lead: tuple[Any, ...]
        if self.breaker is None:
            fn, lead = original, (exchange,)
        else:
            fn, lead = self.breaker.call, (original, exchange)
        if call.reads and self.read_retry is not None:
            return self.read_retry.call(fn, *lead, *args, **kwargs)
        if method in ORDER_METHODS and self.order_retry is not None:
            args, kwargs, attempt = _prepare_order(call, args, kwargs)
            try:
                return self.order_retry.call(fn, *lead, *args, **kwargs)
            except Exception:
                if attempt.found is not None:
                    return attempt.found
                raise
        return fn(*lead, *args, **kwargs)

    def run_async(self, call: Call, original: Callable[..., Awaitable[Any]],
                  args: tuple[Any, ...], kwargs: dict[str, Any]) -> Awaitable[Any]:
        """An async unified call through breaker and, where safe, retries, to be awaited.

        A plain function handing back the retry's (or breaker's) own coroutine, so a
        call adds no frame of ours to every resumption of the request.
        """
        exchange, method = call.exchange, call.method
        fn: Callable[..., Awaitable[Any]]
        lead: tuple[Any, ...]
        if self.breaker is None:
            fn, lead = original, (exchange,)
        else:
            fn, lead = self.breaker.call_async, (original, exchange)
        if call.reads and self.read_retry is not None:
            return self.read_retry.call_async(fn, *lead, *args, **kwargs)
        if method in ORDER_METHODS and self.order_retry is not None:
            return self._order_async(call, fn, lead, args, kwargs)
        return fn(*lead, *args, **kwargs)

    async def _order_async(self, call: Call, fn: Callable[..., Awaitable[Any]],
                           lead: tuple[Any, ...], args: tuple[Any, ...],
                           kwargs: dict[str, Any]) -> Any:
        assert self.order_retry is not None
        args, kwargs, attempt = _prepare_order(call, args, kwargs)
        try:
            return await self.order_retry.call_async(fn, *lead, *args, **kwargs)
        except Exception:
            if attempt.found is not None:
                return attempt.found
            raise


# One exchange API key is one budget: every guard of an exchange (the instrumentor's, those
# of clients instrumented one by one, those built after re-instrumenting) takes its tokens
# from one limiter, rebuilt only when the configuration changes.
_limiters: dict[str, tuple[object, RateLimiter]] = {}
_limiters_lock = threading.Lock()


def _shared_limiter(exchange_id: str) -> RateLimiter | None:
    """The rate limiter of *exchange_id* under the current configuration, or None."""
    from otelres import config
    from otelres.resilience import RateLimiter

    current = config.current()
    if current.resilience.rate_limit(exchange_id) is None:
        return None
    with _limiters_lock:
        cached = _limiters.get(exchange_id)
        if cached is not None and cached[0] is current:
            return cached[1]
        limiter = RateLimiter.from_config(exchange_id)
        _limiters[exchange_id] = (current, limiter)
        return limiter


# --------------------------------------------------------------------------- retry hooks
def _retry_after(exc: BaseException) -> float | None:
    """Seconds the exchange asked us to wait before retrying after *exc*, if it said so.

    A ``Retry-After`` header wins; after a rate-limit error without one, the wait is
    at least one request's worth of the exchange's ``rateLimit`` (ms per cost unit).
    """
    call = CALL.get()
    if call is None:
        return None
    asked, call.retry_after = call.retry_after, None
    if asked is not None:
        return asked
    import ccxt

    if isinstance(exc, (ccxt.RateLimitExceeded, ccxt.DDoSProtection)):
        rate_limit_ms = getattr(call.exchange, "rateLimit", None)
        if isinstance(rate_limit_ms, (int, float)) and rate_limit_ms > 0:
            return float(rate_limit_ms) / 1000.0
    return None


def _prepare_order(
    call: Call, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[tuple[Any, ...], dict[str, Any], _OrderAttempt]:
    """Fix the client order id of a create_order call once, before the first attempt."""
    # create_order(symbol, type, side, amount, price=None, params={})
    names = ("symbol", "type", "side", "amount", "price", "params")
    bound = dict(zip(names, args, strict=False))
    bound.update(kwargs)
    params = dict(bound.get("params") or {})
    exchange_id = str(getattr(call.exchange, "id", ""))
    key = _CLIENT_ID_PARAM.get(exchange_id, "clientOrderId")
    client_order_id = params.get(key) or params.get("clientOrderId")
    if not client_order_id:
        client_order_id = str(uuid.uuid4())
    params[key] = client_order_id
    bound["params"] = params
    bound.setdefault("price", None)
    attempt = _OrderAttempt(str(bound.get("symbol")), str(client_order_id))
    call.order = attempt
    call.span.set_attribute("ccxt.client_order_id", attempt.client_order_id)
    return (), bound, attempt


OrderLookup = Callable[[Any, str, str], Any]


def lookup_order(exchange: Any, symbol: str, client_order_id: str) -> Any:
    """Find the order with *client_order_id* on *exchange* (sync or async), or None.

    Binance looks it up directly (``fetch_order`` with ``clientOrderId``); other
    exchanges search open, then closed orders filtered by the client order id. For an
    async client this returns a coroutine.
    """
    import ccxt

    if _is_async(exchange):
        return _lookup_async(exchange, symbol, client_order_id, ccxt.OrderNotFound)
    if exchange.id == "binance":
        try:
            return exchange.fetch_order(None, symbol, {"clientOrderId": client_order_id})
        except ccxt.OrderNotFound:
            return None
    for fetch in (exchange.fetch_open_orders, exchange.fetch_closed_orders):
        for order in fetch(symbol, None, None, {"clientOrderId": client_order_id}):
            if order.get("clientOrderId") == client_order_id:
                return order
    return None


def _is_async(exchange: Any) -> bool:
    """Whether *exchange* is a ``ccxt.async_support`` / ``ccxt.pro`` client."""
    return getattr(exchange, "synchronous", True) is False


async def _lookup_async(exchange: Any, symbol: str, client_order_id: str,
                        not_found: type[BaseException]) -> Any:
    if exchange.id == "binance":
        try:
            return await exchange.fetch_order(None, symbol, {"clientOrderId": client_order_id})
        except not_found:
            return None
    for fetch in (exchange.fetch_open_orders, exchange.fetch_closed_orders):
        for order in await fetch(symbol, None, None, {"clientOrderId": client_order_id}):
            if order.get("clientOrderId") == client_order_id:
                return order
    return None


def _record_lookup(call: Call, attempt: _OrderAttempt, found: Any, exc: BaseException) -> bool:
    """Note the lookup's verdict on the call span; True means: the order is absent, resend."""
    if found is not None:
        attempt.found = found
    if call.span.is_recording():
        call.span.add_event("otelres.ccxt.order_lookup", {
            "ccxt.client_order_id": attempt.client_order_id,
            "ccxt.order.found": found is not None,
            "error.type": type(exc).__qualname__,
        })
    return found is None


def _order_absent(exc: BaseException) -> bool | Awaitable[bool]:
    """retry_safe of order retries: look the order up; resend only when it does not exist.

    A lookup that fails itself leaves the order's fate unknown, so nothing is resent.
    """
    call = CALL.get()
    attempt = None if call is None else call.order
    if call is None or not isinstance(attempt, _OrderAttempt):
        return False
    exchange = call.exchange
    try:
        found = lookup_order(exchange, attempt.symbol, attempt.client_order_id)
    except Exception:
        _log.warning("otelres ccxt: looking up order %s failed; not resending it",
                     attempt.client_order_id)
        return False
    if not hasattr(found, "__await__"):
        return _record_lookup(call, attempt, found, exc)

    async def verdict() -> bool:
        try:
            order = await found
        except Exception:
            _log.warning("otelres ccxt: looking up order %s failed; not resending it",
                         attempt.client_order_id)
            return False
        return _record_lookup(call, attempt, order, exc)

    return verdict()
