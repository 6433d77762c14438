"""Telemetry helpers shared by every resilience primitive (breaker, retry, limiter, ...).

They keep the hot path cheap and make telemetry unable to break a guarded call:

* :func:`error_type` is the ``error.type`` attribute value for an exception: its class
  name, low-cardinality as OpenTelemetry asks.
* :func:`effective_mode` resolves a component's ``span_mode`` argument: ``None`` follows
  the process-wide :func:`otelres._otel.span_mode` *at call time* (so ``otelres.configure()``
  affects components built before it), a string is fixed at construction.
* :func:`recording_span` returns the active span only when events should be added to it
  (mode is not ``"off"`` and the span is recording), else ``None``: build event attributes
  only after it said yes.
* :func:`add_event` adds one event to the active span under the same conditions; it is a
  couple of attribute reads when nothing records, and it never raises.
* :func:`guarded_span` is the span of one guarded call or attempt (mode ``"always"``, or the
  retry attempt child spans of mode ``"events"``): it becomes the current span, ends on exit,
  records ``error.type`` and status ERROR only when an ``Exception`` leaves it (the caller
  sees it), and never lets a telemetry failure reach the caller.
* :func:`mark_handled` records an error the guard handled (retried, fell back) as an event
  on a span without making it an ERROR.

How a primitive uses them (R2's retry, for instance)::

    from otelres.resilience import _telemetry as tel

    class Retry:
        def __init__(self, name, *, span_mode=None, tracer_provider=None, ...):
            self._mode = span_mode                      # None: follow the global mode
            self._tracer = get_tracer(tracer_provider)  # from otelres._otel, once

        def _on_retry(self, attempt, exc, delay):
            tel.add_event(
                "otelres.retry.attempt_failed",        # names: see docs/TELEMETRY.md
                {"retry.name": self.name, "retry.attempt": attempt,
                 "error.type": tel.error_type(exc), "retry.delay": delay},
                mode=self._mode,
            )

        def call(self, fn, *args, **kwargs):
            if tel.effective_mode(self._mode) == "always":
                with tel.guarded_span(self._tracer, "otelres.retry", {"retry.name": self.name}):
                    return self._call(fn, *args, **kwargs)
            return self._call(fn, *args, **kwargs)

Attribute dictionaries passed to :func:`add_event` are built by the caller even when
nothing records; when they are costly to build, ask :func:`recording_span` first::

    span = tel.recording_span(self._mode)
    if span is not None:
        span.add_event("otelres.retry.attempt_failed", {...expensive...})
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from opentelemetry import context, trace
from opentelemetry.trace import INVALID_SPAN, Status, StatusCode

from otelres import _otel

if TYPE_CHECKING:
    from opentelemetry.trace import Span, Tracer
    from opentelemetry.util.types import AttributeValue

    from otelres._otel import SpanMode

__all__ = [
    "INSIDE_GUARD",
    "add_event",
    "effective_mode",
    "error_type",
    "guarded_span",
    "mark_handled",
    "record_error",
    "recording_span",
]

_log = logging.getLogger("otelres")

INSIDE_GUARD: ContextVar[bool] = ContextVar("otelres_inside_guard", default=False)
"""True while an otelres span (or a fallback, which may answer for what fails below it)
encloses the running code: an exception leaving an inner otelres span has not reached the
caller yet, so that span gets ``error.type`` but not status ERROR."""


def error_type(exc: BaseException) -> str:
    """The ``error.type`` attribute value for *exc*: its class name (``"TimeoutError"``).

    An internal carrier (a policy smuggling a limiter rejection past its breaker) names the
    error it carries (``_otelres_carried``), never its own private class.
    """
    carried = getattr(exc, "_otelres_carried", None)
    return type(exc if carried is None else carried).__name__


def effective_mode(mode: SpanMode | None) -> SpanMode:
    """*mode* itself, or the process-wide span mode when *mode* is None."""
    return _otel.span_mode() if mode is None else mode


def recording_span(mode: SpanMode | None = None) -> Span | None:
    """The active span if events should go on it now, else None.

    None when the effective mode is ``"off"`` or no recording span is active. Never raises.
    """
    if (_otel.span_mode() if mode is None else mode) == "off":
        return None
    try:
        span = trace.get_current_span()
        return span if span.is_recording() else None
    except Exception:  # pragma: no cover - a broken context implementation
        return None


def add_event(
    name: str,
    attributes: Mapping[str, AttributeValue] | None = None,
    *,
    mode: SpanMode | None = None,
) -> bool:
    """Add event *name* to the active span when it is recording and the mode is not ``"off"``.

    Returns whether the event was added. A failing SDK or exporter is logged, never raised.
    """
    span = recording_span(mode)
    if span is None:
        return False
    try:
        span.add_event(name, attributes)
    except Exception:
        _log.debug("otelres: adding span event %s failed", name, exc_info=True)
        return False
    return True


def mark_handled(span: Span, exc: BaseException, event: str = "otelres.handled_error") -> None:
    """Record *exc*, which the guard handled, as event *event* on *span* (status unchanged)."""
    try:
        if span.is_recording():
            span.add_event(event, {"error.type": error_type(exc)})
    except Exception:
        _log.debug("otelres: recording a handled error failed", exc_info=True)


@contextmanager
def guarded_span(
    tracer: Tracer,
    name: str,
    attributes: Mapping[str, AttributeValue] | None = None,
    *,
    error_status: bool = True,
) -> Iterator[Span]:
    """A span for one guarded call, current inside the block, ended on exit.

    An ``Exception`` leaving the block sets ``error.type``, and status ERROR when the caller
    sees it: when *error_status* is true and no other otelres span or fallback encloses
    this one (:data:`INSIDE_GUARD`), so a failed call shows exactly one red otelres span,
    the outermost, and errors that a retry or fallback handled show none.
    ``asyncio.CancelledError``, ``KeyboardInterrupt`` and ``SystemExit`` end the span with
    ``error.type`` set but no ERROR status (nothing failed). The exception itself always
    propagates unchanged. Works for sync and async code alike (the span is held in a context
    variable). If the tracer fails to start a span, the block runs under a non-recording span.
    """
    outermost = not INSIDE_GUARD.get()
    try:
        span = tracer.start_span(name, attributes=attributes)
    except Exception:
        _log.debug("otelres: starting span %s failed", name, exc_info=True)
        span = INVALID_SPAN
    try:
        token: Any = _attach(span)
    except Exception:  # pragma: no cover - a broken context implementation
        token = None
    inside = INSIDE_GUARD.set(True)
    try:
        yield span
    except BaseException as exc:
        _end_failed(span, exc, error_status and outermost)
        raise
    finally:
        _leave_guard(inside)
        if token is not None:
            _detach(token)
        try:
            span.end()
        except Exception:
            _log.debug("otelres: ending span %s failed", name, exc_info=True)


def record_error(span: Span, exc: BaseException, error_status: bool) -> None:
    """Set ``error.type`` of *exc* on *span*, and status ERROR when *error_status* is true.

    For a guard that catches an exception inside its span (a retry attempt): pass whether
    the caller sees it and no enclosing otelres span does (``not INSIDE_GUARD.get()`` read
    before the span was entered). Never raises.
    """
    _end_failed(span, exc, error_status)


def _leave_guard(token: Any) -> None:
    try:
        INSIDE_GUARD.reset(token)
    except ValueError:  # pragma: no cover - left in another context (a manual __exit__)
        INSIDE_GUARD.set(False)


def _end_failed(span: Span, exc: BaseException, error_status: bool) -> None:
    try:
        span.set_attribute("error.type", error_type(exc))
        if error_status and isinstance(exc, Exception):
            # The type only: exception messages (ccxt's carry signed URLs) may hold secrets.
            span.set_status(Status(StatusCode.ERROR, error_type(exc)))
    except Exception:
        _log.debug("otelres: marking a span failed raised", exc_info=True)


def _attach(span: Span) -> object:
    return context.attach(trace.set_span_in_context(span))


def _detach(token: Any) -> None:
    try:
        context.detach(token)
    except Exception:  # pragma: no cover - detaching in another context is only logged
        _log.debug("otelres: detaching a span context failed", exc_info=True)
