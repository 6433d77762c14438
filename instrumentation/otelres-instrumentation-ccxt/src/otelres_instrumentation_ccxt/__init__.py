"""OpenTelemetry instrumentation and per-exchange resilience for ccxt clients.

::

    from otelres_instrumentation_ccxt import CcxtInstrumentor

    CcxtInstrumentor().instrument()          # every ccxt client, sync, async and pro (REST)
    kraken = ccxt.kraken()
    kraken.fetch_ticker("BTC/USD")           # span "kraken fetch_ticker" with an HTTP child span

or, for one client only, ``CcxtInstrumentor().instrument_client(kraken)``. Under
``opentelemetry-instrument python app.py`` it is switched on by its entry point
(``ccxt``) and off with ``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS=ccxt``.

What you get:

* a CLIENT span per unified method call, ``"<exchange> <method>"``, with
  ``ccxt.exchange.id``, ``ccxt.method``, ``ccxt.symbol`` and, on failure, ``error.type``
  (the ccxt exception class) and a cleaned exception event;
* a CLIENT child span per HTTP request, ``"<METHOD> <endpoint>"``, with
  ``http.request.method``, ``url.path`` (no query string), ``server.address``,
  ``http.response.status_code``;
* the histogram ``otelres.ccxt.call.duration`` (s) by ``ccxt.exchange.id``,
  ``ccxt.method``, ``ccxt.outcome`` (success, failure, rejected, error), ``error.type``;
* per-exchange resilience from ``config.toml`` (breaker, retries for reads, safe order
  retry, rate limiter in ccxt cost units), whose events land on those spans;
* no credentials anywhere: keys, secrets, passwords, signatures and nonces are removed
  from everything recorded, and from ccxt's own log lines.

Options of :meth:`CcxtInstrumentor.instrument` (keyword arguments):

``tracer_provider``, ``meter_provider``
    Providers to use instead of the global ones.
``resilience``
    Guard calls with the per-exchange breaker, retries and rate limiter (default True;
    the environment variable ``OTELRES_CCXT_RESILIENCE=false`` turns it off).
``safe_order_retry``
    Retry ``create_order`` after a network error or timeout, with a client order id and
    a lookup before any resend (default False; ``OTELRES_CCXT_SAFE_ORDER_RETRY=true``).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Collection
from typing import TYPE_CHECKING, Any

from opentelemetry.instrumentation.instrumentor import (  # type: ignore[attr-defined]
    BaseInstrumentor,
)

from otelres_instrumentation_ccxt import _runtime
from otelres_instrumentation_ccxt.package import _instruments
from otelres_instrumentation_ccxt.version import __version__

if TYPE_CHECKING:
    from otelres_instrumentation_ccxt._guard import ExchangeGuard
    from otelres_instrumentation_ccxt._patcher import ClassPatcher

__all__ = ["CcxtInstrumentor", "__version__"]

# ccxt logs request headers and bodies at DEBUG; urllib3 (under sync ccxt) logs signed URLs.
_CCXT_LOGGERS = (
    "ccxt.base.exchange",
    "ccxt.async_support.base.exchange",
    "urllib3.connectionpool",
)
_lock = threading.Lock()
_class_patcher: ClassPatcher | None = None
# Runtimes of clients instrumented one by one, by the options they were asked for.
_client_runtimes: dict[tuple[Any, ...], _runtime.Runtime] = {}
# Clients instrumented one by one and not uninstrumented yet: while there are any (or the
# instrumentor is on), ccxt's log lines are cleaned.
_single_clients = 0


def _env_flag(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{name} must be true or false; got {value!r}")


def _redact_logs(on: bool) -> None:
    """Put the credential-cleaning filter on ccxt's loggers (once), or take it off."""
    from otelres_instrumentation_ccxt._redact import CcxtLogRedactor

    for name in _CCXT_LOGGERS:
        logger = logging.getLogger(name)
        present = [f for f in logger.filters if isinstance(f, CcxtLogRedactor)]
        if on and not present:
            logger.addFilter(CcxtLogRedactor())
        elif not on:
            for log_filter in present:
                logger.removeFilter(log_filter)


def _options(kwargs: dict[str, Any]) -> tuple[Any, Any, bool, bool]:
    """(tracer_provider, meter_provider, resilience, safe_order_retry) asked for."""
    resilience = kwargs.get("resilience")
    safe = kwargs.get("safe_order_retry")
    return (
        kwargs.get("tracer_provider"),
        kwargs.get("meter_provider"),
        _env_flag("OTELRES_CCXT_RESILIENCE", True) if resilience is None else bool(resilience),
        _env_flag("OTELRES_CCXT_SAFE_ORDER_RETRY", False) if safe is None else bool(safe),
    )


def _runtime_from(kwargs: dict[str, Any]) -> _runtime.Runtime:
    from otelres_instrumentation_ccxt._guard import GuardOptions

    tracer_provider, meter_provider, resilience, safe = _options(kwargs)
    options = GuardOptions(resilience=resilience, safe_order_retry=safe)
    return _runtime.Runtime(
        tracer_provider=tracer_provider,
        meter_provider=meter_provider,
        guard_factory=options.factory(),
    )


class CcxtInstrumentor(BaseInstrumentor):  # type: ignore[misc]
    """Traces, measures and guards ccxt's REST calls; see the module docstring.

    ``instrument()`` and ``uninstrument()`` are idempotent (a second call does nothing)
    and ``uninstrument()`` puts back every original method, camelCase aliases included.
    """

    def instrumentation_dependencies(self) -> Collection[str]:
        """The ccxt versions this instrumentor supports."""
        return _instruments

    def _instrument(self, **kwargs: Any) -> None:
        global _class_patcher
        from otelres_instrumentation_ccxt._patcher import ClassPatcher

        with _lock:
            _runtime.set_current(_runtime_from(kwargs))
            if _class_patcher is None:
                _class_patcher = ClassPatcher(_runtime.current)
            _class_patcher.patch()
            _redact_logs(True)

    def _uninstrument(self, **kwargs: Any) -> None:
        with _lock:
            if _class_patcher is not None:
                _class_patcher.unpatch()
            _runtime.set_current(None)
            _redact_logs(_single_clients > 0)

    # ------------------------------------------------------------------ single clients
    @staticmethod
    def instrument_client(exchange: Any, **kwargs: Any) -> None:
        """Instrument one ccxt *exchange* instance (sync, async or pro), leaving others alone.

        Takes the same keyword options as ``instrument()``, for this client (clients
        instrumented with the same options share one runtime; every client of an
        exchange shares its breaker and rate limit whatever the options). Instrumenting
        a client twice does nothing: uninstrument it first to change its options.
        """
        from otelres_instrumentation_ccxt._patcher import instrument_instance

        global _single_clients
        key = _options(kwargs)
        with _lock:
            runtime = _client_runtimes.get(key)
            if runtime is None:
                runtime = _client_runtimes[key] = _runtime_from(kwargs)
            if instrument_instance(exchange, lambda: runtime):
                _single_clients += 1
                _redact_logs(True)

    @staticmethod
    def uninstrument_client(exchange: Any) -> None:
        """Undo :meth:`instrument_client` for *exchange* (nothing happens if it was not)."""
        global _single_clients
        from otelres_instrumentation_ccxt._patcher import uninstrument_instance

        with _lock:
            if uninstrument_instance(exchange):
                _single_clients -= 1
                _redact_logs(_single_clients > 0 or _runtime.current() is not None)

    @staticmethod
    def guard(exchange_id: str) -> ExchangeGuard | None:
        """The resilience guard (breaker, retries, limiter) in force for *exchange_id*.

        The instrumentor's while it is on (None with ``resilience=False``); otherwise that
        of clients instrumented one by one with resilience on; None when there is none.
        """
        runtime = _runtime.current()
        if runtime is not None:
            return runtime.guard(exchange_id)
        for runtime in list(_client_runtimes.values()):
            guard = runtime.guard(exchange_id)
            if guard is not None:
                return guard
        return None
