"""What the wrappers need at call time: tracer, instruments, failure classes and guards.

One :class:`Runtime` is current while the instrumentor is on (and for clients
instrumented one by one); wrappers read it through :func:`current`, so providers and
options given to ``instrument()`` take effect without re-patching.
"""

from __future__ import annotations

import threading
import traceback
from typing import TYPE_CHECKING

from opentelemetry import metrics, trace

from otelres import config
from otelres_instrumentation_ccxt._redact import clean_text
from otelres_instrumentation_ccxt.version import __version__

if TYPE_CHECKING:
    from opentelemetry.metrics import Histogram, MeterProvider
    from opentelemetry.trace import Span, Tracer, TracerProvider
    from opentelemetry.util.types import AttributeValue

    from otelres.config import Config
    from otelres_instrumentation_ccxt._guard import ExchangeGuard, GuardFactory

__all__ = ["INSTRUMENTATION_NAME", "SCHEMA_URL", "Runtime", "current", "set_current"]

INSTRUMENTATION_NAME = "otelres_instrumentation_ccxt"
SCHEMA_URL = "https://opentelemetry.io/schemas/1.26.0"

# Outcomes of a unified call, the `ccxt.outcome` attribute of the duration histogram.
SUCCESS, FAILURE, REJECTED, ERROR = "success", "failure", "rejected", "error"
CANCELLED = "cancelled"


class Runtime:
    """Tracer, duration histogram, exception classes and per-exchange guards for the wrappers."""

    __slots__ = (
        "_attrs_cache",
        "_guard_factory",
        "_guards",
        "_lock",
        "duration",
        "operation_failed",
        "resilience_error",
        "tracer",
    )

    def __init__(
        self,
        *,
        tracer_provider: TracerProvider | None = None,
        meter_provider: MeterProvider | None = None,
        guard_factory: GuardFactory | None = None,
    ) -> None:
        import ccxt

        from otelres.resilience import ResilienceError

        self.tracer: Tracer = trace.get_tracer(
            INSTRUMENTATION_NAME, __version__, tracer_provider, schema_url=SCHEMA_URL
        )
        meter = metrics.get_meter(
            INSTRUMENTATION_NAME, __version__, meter_provider, schema_url=SCHEMA_URL
        )
        self.duration: Histogram = meter.create_histogram(
            "otelres.ccxt.call.duration",
            unit="s",
            description="Duration of ccxt unified method calls, retries and waits included",
        )
        self.operation_failed: type[BaseException] = ccxt.OperationFailed
        self.resilience_error: type[BaseException] = ResilienceError
        self._guard_factory = guard_factory
        self._guards: dict[str, tuple[Config, ExchangeGuard | None]] = {}
        self._attrs_cache: dict[tuple[str, str, str, str], dict[str, AttributeValue]] = {}
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ guards
    def guard(self, exchange_id: str) -> ExchangeGuard | None:
        """The resilience guard of *exchange_id*, or None.

        Built from the current configuration on first use, and again whenever that
        configuration is replaced (``otelres.configure()``, ``config.set_current()``), so
        clients instrumented before a reconfiguration follow it.
        """
        current = config.current()
        entry = self._guards.get(exchange_id)
        if entry is not None and entry[0] is current:
            return entry[1]
        with self._lock:
            entry = self._guards.get(exchange_id)
            if entry is None or entry[0] is not current:
                factory = self._guard_factory
                entry = (current, None if factory is None else factory(exchange_id))
                self._guards[exchange_id] = entry
            return entry[1]

    def guards(self) -> dict[str, ExchangeGuard]:
        """The guards built so far, by exchange id."""
        with self._lock:
            return {k: v for k, (_, v) in self._guards.items() if v is not None}

    # ------------------------------------------------------------------ outcomes
    def outcome(self, exc: BaseException | None) -> str:
        """``success``, ``failure`` (exchange or network trouble), ``rejected`` (a guard
        refused the call), ``error`` (the caller's problem: bad symbol, funds, auth...) or
        ``cancelled`` (the caller gave up: ``asyncio.CancelledError``, a timeout around the
        call, ``KeyboardInterrupt``, ...)."""
        if exc is None:
            return SUCCESS
        if not isinstance(exc, Exception):
            return CANCELLED
        if isinstance(exc, self.operation_failed):
            return FAILURE
        if isinstance(exc, self.resilience_error):
            return REJECTED
        return ERROR

    def record_duration(
        self, seconds: float, exchange_id: str, method: str, exc: BaseException | None
    ) -> None:
        """Record one call in ``otelres.ccxt.call.duration`` (attribute dicts are reused)."""
        outcome = self.outcome(exc)
        error_type = "" if exc is None or outcome == CANCELLED else type(exc).__qualname__
        key = (exchange_id, method, outcome, error_type)
        attributes = self._attrs_cache.get(key)
        if attributes is None:
            attributes = {
                "ccxt.exchange.id": exchange_id,
                "ccxt.method": method,
                "ccxt.outcome": outcome,
            }
            if error_type:
                attributes["error.type"] = error_type
            if len(self._attrs_cache) < 4096:
                self._attrs_cache[key] = attributes
        self.duration.record(seconds, attributes)


def record_exception(span: Span, exc: BaseException, secrets: tuple[str, ...]) -> None:
    """Mark *span* failed with *exc*, recording a cleaned message and traceback.

    ccxt messages can hold signed URLs and bodies, so the standard
    ``span.record_exception`` (which copies ``str(exc)``) is not used.
    """
    from opentelemetry.trace import Status, StatusCode

    error_type = type(exc).__qualname__
    message = clean_text(str(exc), secrets)
    stack = clean_text("".join(traceback.format_exception(exc)), secrets)
    span.set_attribute("error.type", error_type)
    span.add_event(
        "exception",
        {
            "exception.type": f"{type(exc).__module__}.{error_type}",
            "exception.message": message,
            "exception.stacktrace": stack,
        },
    )
    span.set_status(Status(StatusCode.ERROR, f"{error_type}: {message}"[:512]))


_current: Runtime | None = None


def current() -> Runtime | None:
    """The runtime in force, or None when nothing is instrumented."""
    return _current


def set_current(runtime: Runtime | None) -> None:
    global _current
    _current = runtime
