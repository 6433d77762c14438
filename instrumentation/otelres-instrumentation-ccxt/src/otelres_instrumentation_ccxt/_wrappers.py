"""The functions that replace ccxt's methods while instrumented.

A handful of hooks cover ccxt's whole REST path, sync and async alike:

* every **unified method** (``fetch_ticker``, ``create_order``...): a CLIENT span
  ``"<exchange> <method>"``, the exchange's resilience guard, the duration histogram;
  unified calls made inside another one (``load_markets`` inside ``fetch_ticker``) are
  part of the outer call and pass straight through;
* ``fetch2`` (every implicit endpoint call): takes the request's cost in ccxt units from
  otelres' rate limiter, and switches ccxt's own retry loop off for writes; ``sign``
  remembers the endpoint template for the HTTP span;
* ``throttle``: stands down when otelres' limiter already paid for the request, so a
  request never waits twice;
* ``fetch`` (one HTTP request): a CLIENT child span with method, endpoint path (no
  query string: that is where signatures live) and status code, which
  ``on_rest_response`` fills in, catching ``Retry-After`` on the way.
"""

from __future__ import annotations

import functools
import inspect
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.instrumentation import utils as _instrumentation_utils
from opentelemetry.instrumentation.utils import is_instrumentation_enabled
from opentelemetry.trace import INVALID_SPAN, SpanKind, Status, StatusCode

from otelres_instrumentation_ccxt._context import (
    CALL,
    ENDPOINT,
    HTTP,
    SKIP_THROTTLE,
    Call,
    HttpExchange,
)
from otelres_instrumentation_ccxt._redact import credential_values
from otelres_instrumentation_ccxt._runtime import Runtime, record_exception

if TYPE_CHECKING:
    from opentelemetry.util.types import AttributeValue

__all__ = ["MARK", "RuntimeGetter", "make_wrapper", "unwrap"]

MARK = "_otelres_ccxt_wrapper"
"""Attribute set on every wrapper function, so patching never wraps a wrapper."""

RuntimeGetter = Callable[[], "Runtime | None"]

_CLIENT = SpanKind.CLIENT
_log = logging.getLogger("otelres_instrumentation_ccxt")
# Set in the context of an HTTP span, so that requests/aiohttp instrumentations, when
# also enabled, do not record the same request twice.
_SUPPRESS_HTTP_KEY: str = getattr(
    _instrumentation_utils, "_SUPPRESS_HTTP_INSTRUMENTATION_KEY", "suppress_http_instrumentation"
)

_symbol_positions: dict[str, int | None] = {}

# Span names and attribute dicts are reused (the SDK copies attributes on span start); the
# caches stop growing at this size, beyond which shapes are built per call.
_SHAPE_CACHE_SIZE = 4096
CallShape = tuple[str, str, dict[str, "AttributeValue"]]
_call_shapes: dict[tuple[Any, str, str | None], CallShape] = {}
_http_shapes: dict[tuple[str, str, tuple[str, str] | None],
                   tuple[str, dict[str, AttributeValue]]] = {}


def unwrap(function: Any) -> Any:
    """The original ccxt function behind any number of otelres wrappers."""
    while getattr(function, MARK, False):
        function = function.__wrapped__
    return function


def make_wrapper(name: str, original: Callable[..., Any], get_runtime: RuntimeGetter) -> Any:
    """The wrapper for ccxt method *name* (unified method or HTTP hook), sync or async."""
    is_async = inspect.iscoroutinefunction(original)
    if name == "fetch":
        wrapper = (_fetch_async if is_async else _fetch_sync)(original, get_runtime)
    elif name == "fetch2":
        wrapper = _fetch2(original, get_runtime, is_async)
    elif name == "sign":
        wrapper = _sign(original)
    elif name == "throttle":
        wrapper = (_throttle_async if is_async else _throttle_sync)(original)
    elif name == "on_rest_response":
        wrapper = _on_rest_response(original)
    else:
        position = _symbol_position(name, original)
        make = _unified_async if is_async else _unified_sync
        wrapper = make(name, original, position, get_runtime)
    functools.update_wrapper(wrapper, original)
    setattr(wrapper, MARK, True)
    return wrapper


# --------------------------------------------------------------------------- unified methods
def _symbol_position(name: str, original: Callable[..., Any]) -> int | None:
    """Index of the ``symbol`` argument after ``self`` (cached per method name)."""
    if name in _symbol_positions:
        return _symbol_positions[name]
    position = None
    try:
        params = list(inspect.signature(original).parameters)
        if "symbol" in params:
            position = params.index("symbol") - 1
    except (TypeError, ValueError):
        pass
    _symbol_positions[name] = position
    return position


def _call_shape(
    exchange: Any, name: str, position: int | None, args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> CallShape:
    """(exchange id, span name, attributes) of a unified call, built once per
    (exchange, method, symbol)."""
    exchange_id = getattr(exchange, "id", None) or type(exchange).__name__
    symbol = None
    if position is not None:
        symbol = args[position] if len(args) > position else kwargs.get("symbol")
        if not isinstance(symbol, str):
            symbol = None
    key = (exchange_id, name, symbol)
    shape = _call_shapes.get(key)
    if shape is None:
        exchange_id = str(exchange_id)
        attributes: dict[str, AttributeValue] = {
            "ccxt.exchange.id": exchange_id,
            "ccxt.method": name,
        }
        if symbol is not None:
            attributes["ccxt.symbol"] = symbol
        shape = (exchange_id, f"{exchange_id} {name}", attributes)
        if len(_call_shapes) < _SHAPE_CACHE_SIZE:
            _call_shapes[key] = shape
    return shape


def _start_call(
    runtime: Runtime, exchange: Any, name: str, position: int | None,
    args: tuple[Any, ...], kwargs: dict[str, Any],
) -> tuple[Call, Any, Any]:
    started = time.perf_counter()
    exchange_id, span_name, attributes = _call_shape(exchange, name, position, args, kwargs)
    try:
        span = runtime.tracer.start_span(span_name, kind=_CLIENT, attributes=attributes)
    except Exception:  # a broken SDK or span processor must not fail the call
        _log.debug("otelres ccxt: starting the call span failed", exc_info=True)
        span = INVALID_SPAN
    call = Call(exchange, exchange_id, name, span, runtime, started)
    # The span is current even when it does not record (it carries the sampling decision),
    # and the HTTP requests of this call are ours to record: requests/aiohttp
    # instrumentations, when also on, stand down for the whole call.
    context = otel_context.set_value(_SUPPRESS_HTTP_KEY, True, trace.set_span_in_context(span))
    ctx_token = otel_context.attach(context)
    call_token = CALL.set(call)
    return call, ctx_token, call_token


def _finish_call(call: Call, ctx_token: Any, call_token: Any, exc: BaseException | None) -> None:
    CALL.reset(call_token)
    otel_context.detach(ctx_token)
    span = call.span
    # The call has run: nothing recording it may change its result or its exception.
    try:
        # A cancelled call (the caller gave up) is no failure of the call: no ERROR.
        if isinstance(exc, Exception) and call.recording:
            record_exception(span, exc, credential_values(call.exchange))
        span.end()
        call.runtime.record_duration(
            time.perf_counter() - call.started, call.exchange_id, call.method, exc
        )
    except Exception:
        _log.debug("otelres ccxt: recording the call failed", exc_info=True)


def _unified_sync(
    name: str, original: Callable[..., Any], position: int | None, get_runtime: RuntimeGetter
) -> Callable[..., Any]:
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        runtime = get_runtime()
        if runtime is None or CALL.get() is not None or not is_instrumentation_enabled():
            return original(self, *args, **kwargs)
        call, ctx_token, call_token = _start_call(runtime, self, name, position, args, kwargs)
        try:
            guard = call.guard
            if guard is None:
                result = original(self, *args, **kwargs)
            else:
                result = guard.run(call, original, args, kwargs)
        except BaseException as exc:
            _finish_call(call, ctx_token, call_token, exc)
            raise
        _finish_call(call, ctx_token, call_token, None)
        return result

    return wrapper


def _unified_async(
    name: str, original: Callable[..., Any], position: int | None, get_runtime: RuntimeGetter
) -> Callable[..., Any]:
    async def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        runtime = get_runtime()
        if runtime is None or CALL.get() is not None or not is_instrumentation_enabled():
            return await original(self, *args, **kwargs)
        call, ctx_token, call_token = _start_call(runtime, self, name, position, args, kwargs)
        try:
            guard = call.guard
            if guard is None:
                result = await original(self, *args, **kwargs)
            else:
                result = await guard.run_async(call, original, args, kwargs)
        except BaseException as exc:
            _finish_call(call, ctx_token, call_token, exc)
            raise
        _finish_call(call, ctx_token, call_token, None)
        return result

    return wrapper


# --------------------------------------------------------------------------- fetch2 / throttle
_FETCH2_PARAMETERS = ("path", "api", "method", "params", "config")


def _without_ccxt_retries(
    args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """fetch2's arguments with ``maxRetriesOnFailure`` 0 unless the call itself set it.

    ccxt's own retry loop (the ``maxRetriesOnFailure`` option, off by default) resends
    whatever failed, orders included; under the guard a write is never resent blindly, so
    an option set for the whole client does not apply to writes; and a read the guard
    retries itself would otherwise be retried twice over (3 x 3 requests, the breaker
    seeing 3). ccxt takes the key out of the parameters before signing.
    """
    params = args[3] if len(args) > 3 else kwargs.get("params")
    if params is None:
        params = {}
    if not isinstance(params, dict) or "maxRetriesOnFailure" in params:
        return args, kwargs
    params = {**params, "maxRetriesOnFailure": 0}
    if len(args) > 3:
        return (*args[:3], params, *args[4:]), kwargs
    return args, {**kwargs, "params": params}


def _limiter_cost(
    call: Call | None, get_runtime: RuntimeGetter, exchange: Any, args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> tuple[Any, float]:
    """otelres' limiter for this exchange and the request's cost in ccxt units, or (None, 0)."""
    if call is not None:
        guard = call.guard
    else:
        runtime = get_runtime()
        guard = None if runtime is None else runtime.guard(exchange.id)
    limiter = None if guard is None else guard.limiter
    if limiter is None:
        return None, 0.0
    path, api, method, params, config = (
        args[i] if i < len(args) else kwargs.get(key)
        for i, key in enumerate(_FETCH2_PARAMETERS)
    )
    try:
        cost = float(exchange.calculate_rate_limiter_cost(
            api if api is not None else "public", method or "GET", path, params or {}, config or {}
        ))
    except Exception:
        cost = 1.0
    if cost <= 0:
        # ccxt prices some endpoints at 0 (Kraken's AddOrder): they take no tokens, so
        # there is nothing to acquire and ccxt's own throttle has nothing to wait for either.
        return None, 0.0
    return limiter, cost


def _endpoint(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[str, str]:
    """(api group, path template) from fetch2's arguments: ``("public", "Ticker")``."""
    path = args[0] if args else kwargs.get("path", "")
    api = args[1] if len(args) > 1 else kwargs.get("api", "public")
    if not isinstance(api, str):
        api = "/".join(map(str, api))
    return api, str(path)


def _fetch2(
    original: Callable[..., Any], get_runtime: RuntimeGetter, is_async: bool
) -> Callable[..., Any]:
    """Pay the request's cost to otelres' limiter, then let ccxt's throttle stand down.

    A plain function in both flavours: without a limiter it hands back ccxt's own result
    (or coroutine), so the common case adds no frame to every resumption of the request.
    """

    async def limited_async(self: Any, limiter: Any, cost: float, args: tuple[Any, ...],
                            kwargs: dict[str, Any]) -> Any:
        await limiter.acquire_async(min(cost, limiter.capacity))
        skip_token = SKIP_THROTTLE.set(True)
        try:
            return await original(self, *args, **kwargs)
        finally:
            SKIP_THROTTLE.reset(skip_token)

    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        call = CALL.get()
        if (
            call is not None
            and call.guard is not None
            and (not call.reads or call.guard.read_retry is not None)
        ):
            args, kwargs = _without_ccxt_retries(args, kwargs)
        limiter, cost = _limiter_cost(call, get_runtime, self, args, kwargs)
        if limiter is None:
            return original(self, *args, **kwargs)
        if is_async:
            return limited_async(self, limiter, cost, args, kwargs)
        limiter.acquire(min(cost, limiter.capacity))
        skip_token = SKIP_THROTTLE.set(True)
        try:
            return original(self, *args, **kwargs)
        finally:
            SKIP_THROTTLE.reset(skip_token)

    return wrapper


def _sign(original: Callable[..., Any]) -> Callable[..., Any]:
    """Remember the endpoint (api group, path template) that ``fetch`` is about to request.

    ccxt signs every request right before fetching it, with the path template still
    unfilled (``orders/{id}``), which makes a low-cardinality span name. Inside a call
    that is not recorded there is no HTTP span to name.
    """

    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        call = CALL.get()
        if call is None or call.recording:
            ENDPOINT.set(_endpoint(args, kwargs))
        return original(self, *args, **kwargs)

    return wrapper


def _throttle_sync(original: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        if SKIP_THROTTLE.get():
            return None
        return original(self, *args, **kwargs)

    return wrapper


def _throttle_async(original: Callable[..., Any]) -> Callable[..., Any]:
    async def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        if SKIP_THROTTLE.get():
            return None
        return await original(self, *args, **kwargs)

    return wrapper


# --------------------------------------------------------------------------- HTTP
def _http_shape(url: str, method: str) -> tuple[str, dict[str, AttributeValue]]:
    """Span name and attributes of a request, built once per (method, URL path, endpoint).

    The query string is never looked at: it is where Binance puts its signature.
    """
    base = url.split("?", 1)[0]
    endpoint = ENDPOINT.get()
    if endpoint is not None:
        ENDPOINT.set(None)  # used once: a later direct fetch() must not inherit it
    key = (method, base, endpoint)
    shape = _http_shapes.get(key)
    if shape is None:
        parts = urlsplit(base)
        attributes: dict[str, AttributeValue] = {
            "http.request.method": method,
            "server.address": parts.hostname or "",
            "url.path": parts.path,
        }
        if parts.port is not None:
            attributes["server.port"] = parts.port
        name = method
        if endpoint is not None:
            attributes["url.template"] = endpoint[1]
            name = f"{method} {endpoint[1]}"
        shape = (name, attributes)
        if len(_http_shapes) < _SHAPE_CACHE_SIZE:
            _http_shapes[key] = shape
    return shape


def _http_runtime(get_runtime: RuntimeGetter) -> Runtime | None:
    """The runtime that records this request, or None: the request goes untraced.

    Inside a unified call, the call's runtime when its span records (an unsampled call
    gets no HTTP span either); outside one, the current runtime unless suppressed.
    """
    call = CALL.get()
    if call is not None:
        return call.runtime if call.recording else None
    runtime = get_runtime()
    if runtime is None or not is_instrumentation_enabled():
        return None
    return runtime


def _start_http() -> tuple[HttpExchange, Any, Any]:
    """Begin one request; outside a unified call, also suppress HTTP instrumentations."""
    http = HttpExchange(time.time_ns())
    ctx_token = None
    if CALL.get() is None:
        ctx_token = otel_context.attach(otel_context.set_value(_SUPPRESS_HTTP_KEY, True))
    return http, ctx_token, HTTP.set(http)


def _finish_http(runtime: Runtime, url: str, method: str, http: HttpExchange, ctx_token: Any,
                 http_token: Any, exc: BaseException | None) -> None:
    """Record the request's span, started at its beginning, with everything known at its end.

    Created once the answer is in, the span gets all its attributes (status code
    included) in one go, which the SDK handles faster than later ``set_attribute`` calls.
    """
    HTTP.reset(http_token)
    if ctx_token is not None:
        otel_context.detach(ctx_token)
    try:
        _record_http(runtime, url, method, http, exc)
    except Exception:  # the request has run: recording it must not change its outcome
        _log.debug("otelres ccxt: recording the HTTP request failed", exc_info=True)


def _record_http(runtime: Runtime, url: str, method: str, http: HttpExchange,
                 exc: BaseException | None) -> None:
    name, attributes = _http_shape(url, method)
    status = http.status
    error = None
    if isinstance(exc, Exception):
        error = type(exc).__qualname__
    elif status is not None and status >= 400:
        error = str(status)
    if status is not None or error is not None:
        attributes = dict(attributes)
        if status is not None:
            attributes["http.response.status_code"] = status
        if error is not None:
            attributes["error.type"] = error
    span = runtime.tracer.start_span(
        name, kind=_CLIENT, attributes=attributes, start_time=http.start_time
    )
    if error is not None:
        span.set_status(Status(StatusCode.ERROR))
    span.end()


def _fetch_sync(original: Callable[..., Any], get_runtime: RuntimeGetter) -> Callable[..., Any]:
    def wrapper(self: Any, url: str, method: str = "GET", *args: Any, **kwargs: Any) -> Any:
        runtime = _http_runtime(get_runtime)
        if runtime is None:
            return original(self, url, method, *args, **kwargs)
        http, ctx_token, http_token = _start_http()
        try:
            result = original(self, url, method, *args, **kwargs)
        except BaseException as exc:
            _finish_http(runtime, url, method, http, ctx_token, http_token, exc)
            raise
        _finish_http(runtime, url, method, http, ctx_token, http_token, None)
        return result

    return wrapper


def _fetch_async(original: Callable[..., Any], get_runtime: RuntimeGetter) -> Callable[..., Any]:
    async def traced(self: Any, runtime: Runtime, url: str, method: str, args: tuple[Any, ...],
                     kwargs: dict[str, Any]) -> Any:
        http, ctx_token, http_token = _start_http()
        try:
            result = await original(self, url, method, *args, **kwargs)
        except BaseException as exc:
            _finish_http(runtime, url, method, http, ctx_token, http_token, exc)
            raise
        _finish_http(runtime, url, method, http, ctx_token, http_token, None)
        return result

    # A plain function: an untraced request gets ccxt's own coroutine, no extra frame.
    def wrapper(self: Any, url: str, method: str = "GET", *args: Any, **kwargs: Any) -> Any:
        runtime = _http_runtime(get_runtime)
        if runtime is None:
            return original(self, url, method, *args, **kwargs)
        return traced(self, runtime, url, method, args, kwargs)

    return wrapper


def _retry_after_seconds(headers: Any) -> float | None:
    if not headers:
        return None
    value = headers.get("Retry-After") or headers.get("retry-after")
    if value is None:
        return None
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        # An HTTP date: how far in the future it lies.
        from email.utils import parsedate_to_datetime

        try:
            seconds = parsedate_to_datetime(str(value)).timestamp() - time.time()
        except (TypeError, ValueError):
            return None
    return max(0.0, seconds)


def _on_rest_response(original: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(self: Any, code: Any, reason: Any, url: Any, method: Any, response_headers: Any,
                *args: Any, **kwargs: Any) -> Any:
        try:
            status: int | None = int(code)
        except (TypeError, ValueError):
            status = None
        http = HTTP.get()
        if http is not None:
            http.status = status
        if status is not None and status >= 400:
            call = CALL.get()
            if call is not None:
                call.retry_after = _retry_after_seconds(response_headers)
        return original(self, code, reason, url, method, response_headers, *args, **kwargs)

    return wrapper
