"""Per-call state shared by the wrappers, carried in context variables (safe across tasks)."""

from __future__ import annotations

from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from otelres_instrumentation_ccxt._methods import is_idempotent

if TYPE_CHECKING:
    from opentelemetry.trace import Span

    from otelres_instrumentation_ccxt._guard import ExchangeGuard
    from otelres_instrumentation_ccxt._runtime import Runtime

__all__ = ["CALL", "ENDPOINT", "HTTP", "SKIP_THROTTLE", "Call", "HttpExchange"]


class Call:
    """The unified method call in progress (``kraken fetch_ticker``).

    Nested unified calls (``fetch_ticker`` calling ``load_markets``) see it and run
    untraced and unguarded; its HTTP requests read the runtime, the guard (for the rate
    limiter) and whether the call span records (an unrecorded call gets no HTTP spans)
    from it. ``retry_after`` is the delay the exchange last asked for (a ``Retry-After``
    header), read by the retry policy; ``order`` is the state of a ``create_order``
    under safe order retry; ``reads`` says whether the method only reads (may be resent).
    """

    __slots__ = (
        "exchange", "exchange_id", "guard", "method", "order", "reads", "recording",
        "retry_after", "runtime", "span", "started",
    )

    def __init__(self, exchange: Any, exchange_id: str, method: str, span: Span,
                 runtime: Runtime, started: float) -> None:
        self.exchange = exchange
        self.exchange_id = exchange_id
        self.method = method
        self.reads = is_idempotent(method)
        self.span = span
        self.recording = span.is_recording()
        self.runtime = runtime
        self.guard: ExchangeGuard | None = runtime.guard(exchange_id)
        self.started = started
        self.retry_after: float | None = None
        self.order: Any = None


class HttpExchange:
    """The HTTP request in progress: when it started (ns) and the status ``on_rest_response`` saw."""

    __slots__ = ("start_time", "status")

    def __init__(self, start_time: int) -> None:
        self.start_time = start_time
        self.status: int | None = None


CALL: ContextVar[Call | None] = ContextVar("otelres_ccxt_call", default=None)
HTTP: ContextVar[HttpExchange | None] = ContextVar("otelres_ccxt_http", default=None)
ENDPOINT: ContextVar[tuple[str, str] | None] = ContextVar("otelres_ccxt_endpoint", default=None)
"""(api group, path template) of the request about to be sent, set by ``sign``."""
SKIP_THROTTLE: ContextVar[bool] = ContextVar("otelres_ccxt_skip_throttle", default=False)
"""True while otelres' rate limiter has already paid for the request: ccxt's throttle stands down."""
