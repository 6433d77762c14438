"""Per-call state shared by the wrappers, carried in context variables (safe across tasks)."""

from __future__ import annotations

from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from opentelemetry.trace import Span

__all__ = ["CALL", "ENDPOINT", "HTTP", "SKIP_THROTTLE", "Call", "HttpExchange"]


class Call:
    """The unified method call in progress (``kraken fetch_ticker``).

    Nested unified calls (``fetch_ticker`` calling ``load_markets``) see it and run
    untraced and unguarded; ``retry_after`` is the delay the exchange last asked for
    (a ``Retry-After`` header), read by the retry policy; ``order`` is the state of a
    ``create_order`` under safe order retry.
    """

    __slots__ = ("exchange", "method", "order", "retry_after", "span")

    def __init__(self, exchange: Any, method: str, span: Span) -> None:
        self.exchange = exchange
        self.method = method
        self.span = span
        self.retry_after: float | None = None
        self.order: Any = None


class HttpExchange:
    """The HTTP request in progress: its span and the status code ``on_rest_response`` saw."""

    __slots__ = ("span", "status")

    def __init__(self, span: Span) -> None:
        self.span = span
        self.status: int | None = None


CALL: ContextVar[Call | None] = ContextVar("otelres_ccxt_call", default=None)
HTTP: ContextVar[HttpExchange | None] = ContextVar("otelres_ccxt_http", default=None)
ENDPOINT: ContextVar[tuple[str, str] | None] = ContextVar("otelres_ccxt_endpoint", default=None)
"""(api group, path template) of the request about to be sent, set by ``sign``."""
SKIP_THROTTLE: ContextVar[bool] = ContextVar("otelres_ccxt_skip_throttle", default=False)
"""True while otelres' rate limiter has already paid for the request: ccxt's throttle stands down."""
