"""otelres telemetry for existing ``pybreaker`` breakers, without changing them.

::

    import pybreaker
    from otelres.resilience import instrument_pybreaker

    db_breaker = pybreaker.CircuitBreaker(fail_max=5, reset_timeout=60, name="db")
    instrument_pybreaker(db_breaker)

From then on ``db_breaker`` publishes the same instruments as a native
:class:`~otelres.resilience.CircuitBreaker` (``otelres.breaker.calls``, ``.state``,
``.transitions``; the rates read -1 since pybreaker has no sliding window) and adds the same
``otelres.breaker.transition`` / ``otelres.breaker.rejected`` events to the active span.

:class:`PybreakerListener` is a ``pybreaker.CircuitBreakerListener``; it can also be given
to pybreaker directly (``listeners=[PybreakerListener()]`` or ``add_listener``). pybreaker
rejects calls before it calls any listener, so to count rejections the listener also wraps
the breaker's ``call`` method (the path of ``breaker.call(...)``, ``@breaker`` and
``with breaker.calling()``) the first time it meets the breaker; ``instrument_pybreaker``
does that at once.

pybreaker's own semantics stay as they are: an excluded exception is a success to pybreaker
and is counted as ``success`` here, and its listeners run under its lock. This listener never
raises into pybreaker (a raising listener would reach pybreaker's caller).
"""

from __future__ import annotations

import functools
import itertools
import logging
import threading
import weakref
from collections.abc import Callable
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from otelres.resilience import _telemetry as tel
from otelres.resilience._breaker_metrics import PUBLISHED
from otelres.resilience._breaker_state import BreakerState
from otelres.resilience._pybreaker_import import load_pybreaker

if TYPE_CHECKING:
    import pybreaker
    from opentelemetry.metrics import MeterProvider

    from otelres._otel import SpanMode
else:
    pybreaker = load_pybreaker()

__all__ = ["PybreakerListener", "instrument_pybreaker"]

_log = logging.getLogger("otelres")

_STATES = {
    "closed": BreakerState.CLOSED,
    "open": BreakerState.OPEN,
    "half-open": BreakerState.HALF_OPEN,
    "half_open": BreakerState.HALF_OPEN,
}


def _state_of(name: object) -> BreakerState:
    return _STATES.get(str(name), BreakerState.CLOSED)


def _count_of(counter: itertools.count[int]) -> int:
    return int(repr(counter)[6:-1])


class _Bridged:
    """The counters of one pybreaker breaker, in the shape the breaker instruments read."""

    __slots__ = (
        "__weakref__",
        "_admitted",
        "_breaker",
        "_failures",
        "_last_state",
        "_lock",
        "_rejected",
        "_successes",
        "_transitions",
        "name",
    )

    def __init__(self, breaker: pybreaker.CircuitBreaker, name: str) -> None:
        self.name = name
        self._breaker = weakref.ref(breaker)
        self._successes = itertools.count()
        self._failures = itertools.count()
        self._rejected = itertools.count()
        self._transitions: dict[tuple[BreakerState, BreakerState], int] = {}
        self._lock = threading.Lock()
        self._admitted = threading.local()
        self._last_state = BreakerState.CLOSED

    def _outcome_counts(self) -> tuple[int, int, int, int, int]:
        return (
            _count_of(self._successes),
            _count_of(self._failures),
            0,
            _count_of(self._rejected),
            0,
        )

    def _current_state(self) -> BreakerState:
        breaker = self._breaker()
        if breaker is not None:
            try:
                # With pybreaker's Redis storage this reads Redis; keep the last good answer.
                self._last_state = _state_of(breaker.current_state)
            except Exception:
                _log.debug("otelres: reading pybreaker state failed", exc_info=True)
        return self._last_state

    def _transition_counts(self) -> list[tuple[BreakerState, BreakerState, int]]:
        with self._lock:
            return [(a, b, n) for (a, b), n in self._transitions.items()]

    def _rates(self) -> tuple[float, float]:
        return -1.0, -1.0

    def admissions(self) -> int:
        return int(getattr(self._admitted, "count", 0))

    def admitted(self) -> None:
        self._admitted.count = self.admissions() + 1


class PybreakerListener(pybreaker.CircuitBreakerListener):
    """Publishes otelres metrics and span events for every pybreaker breaker it listens to.

    *name* names the breaker in telemetry (``breaker.name``); by default the breaker's own
    ``name``, else ``"pybreaker"``. Give one listener per breaker when you pass *name*.
    *meter_provider* and *span_mode* work as for :class:`~otelres.resilience.CircuitBreaker`.
    """

    def __init__(
        self,
        *,
        name: str | None = None,
        meter_provider: MeterProvider | None = None,
        span_mode: SpanMode | None = None,
    ) -> None:
        self._name = name
        self._meter_provider = meter_provider
        self._mode: SpanMode | None = span_mode
        self._lock = threading.Lock()
        self._bridged: weakref.WeakKeyDictionary[pybreaker.CircuitBreaker, _Bridged] = (
            weakref.WeakKeyDictionary()
        )

    def bind(self, breaker: pybreaker.CircuitBreaker) -> None:
        """Start publishing *breaker* now (also done on the first callback from it)."""
        self._stats(breaker)

    # pybreaker's hooks; each one must never raise (pybreaker would pass it to the caller).
    def before_call(
        self, cb: pybreaker.CircuitBreaker, func: Callable[..., Any], *args: Any, **kwargs: Any
    ) -> None:
        try:
            self._stats(cb).admitted()
        except Exception:
            _log.exception("otelres: pybreaker listener failed")

    def success(self, cb: pybreaker.CircuitBreaker) -> None:
        try:
            next(self._stats(cb)._successes)
        except Exception:
            _log.exception("otelres: pybreaker listener failed")

    def failure(self, cb: pybreaker.CircuitBreaker, exc: BaseException) -> None:
        try:
            next(self._stats(cb)._failures)
        except Exception:
            _log.exception("otelres: pybreaker listener failed")

    def state_change(self, cb: pybreaker.CircuitBreaker, old_state: Any, new_state: Any) -> None:
        try:
            stats = self._stats(cb)
            before = _state_of(getattr(old_state, "name", old_state))
            after = _state_of(getattr(new_state, "name", new_state))
            if old_state is None or before is after:
                return
            with stats._lock:
                key = (before, after)
                stats._transitions[key] = stats._transitions.get(key, 0) + 1
            stats._last_state = after
            tel.add_event(
                "otelres.breaker.transition",
                {
                    "breaker.name": stats.name,
                    "breaker.from_state": before.value,
                    "breaker.to_state": after.value,
                    "breaker.reason": "pybreaker",
                },
                mode=self._mode,
            )
        except Exception:
            _log.exception("otelres: pybreaker listener failed")

    # ------------------------------------------------------------------ binding
    def _stats(self, cb: pybreaker.CircuitBreaker) -> _Bridged:
        stats = self._bridged.get(cb)
        if stats is not None:
            return stats
        with self._lock:
            stats = self._bridged.get(cb)
            if stats is None:
                stats = _Bridged(cb, self._name or cb.name or "pybreaker")
                stats._last_state = _state_of(cb.current_state)
                self._bridged[cb] = stats
                PUBLISHED.add(stats, self._meter_provider)
                self._wrap_call(cb, stats)
        return stats

    def _wrap_call(self, cb: pybreaker.CircuitBreaker, stats: _Bridged) -> None:
        """Count pybreaker's rejections, which happen before any listener hook runs."""
        if getattr(cb.call, "_otelres_wrapped", False):
            return
        original = cb.call
        mode = self._mode

        @functools.wraps(original)
        def call(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
            before = stats.admissions()
            try:
                return original(func, *args, **kwargs)
            except pybreaker.CircuitBreakerError:
                if stats.admissions() == before:
                    next(stats._rejected)
                    _rejected_event(cb, stats, mode)
                raise

        call._otelres_wrapped = True  # type: ignore[attr-defined]
        cb.call = call  # type: ignore[method-assign]


def _rejected_event(cb: pybreaker.CircuitBreaker, stats: _Bridged, mode: SpanMode | None) -> None:
    span = tel.recording_span(mode)
    if span is None:
        return
    try:
        attributes: dict[str, Any] = {"breaker.name": stats.name, "breaker.state": "open"}
        opened_at = cb._state_storage.opened_at
        if opened_at is not None:
            elapsed = (datetime.now(timezone.utc) - opened_at).total_seconds()
            attributes["breaker.retry_after"] = max(0.0, float(cb.reset_timeout) - elapsed)
        span.add_event("otelres.breaker.rejected", attributes)
    except Exception:
        _log.debug("otelres: adding a pybreaker rejection event failed", exc_info=True)


def instrument_pybreaker(
    breaker: pybreaker.CircuitBreaker,
    *,
    name: str | None = None,
    meter_provider: MeterProvider | None = None,
    span_mode: SpanMode | None = None,
) -> PybreakerListener:
    """Make an existing ``pybreaker.CircuitBreaker`` publish otelres telemetry; return its listener.

    Adds a :class:`PybreakerListener` and starts publishing at once (state included, before
    any call). Calling it again for the same breaker adds nothing and returns the listener
    already there.
    """
    for existing in breaker.listeners:
        if isinstance(existing, PybreakerListener):
            existing.bind(breaker)
            return existing
    listener = PybreakerListener(name=name, meter_provider=meter_provider, span_mode=span_mode)
    breaker.add_listener(listener)
    listener.bind(breaker)
    return listener
