"""The circuit breaker, its registry and the seed system's ``@circuit_breaker`` decorator.

A breaker watches the calls it guards. While ``closed`` every call runs; after
``failure_threshold`` consecutive failures (or a failure rate / slow-call rate over a
sliding window, when configured) it *opens* and rejects calls at once with
:class:`~otelres.resilience.CircuitBreakerOpenError` for ``reset_timeout`` seconds. Then it
is ``half_open``: up to ``half_open_max_calls`` probe calls run at the same time while
every other caller is rejected at once; ``success_threshold`` successful probes close it,
one failed probe opens it again (for longer, with ``reset_timeout_multiplier`` > 1).

The protected function never runs under a lock, so concurrent calls are never serialized,
and the closed-state success path is a state check, the call and a counter bump.
"""

from __future__ import annotations

import functools
import itertools
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any, Literal, TypeVar, cast, overload

from otelres import _otel
from otelres.resilience import _telemetry as tel
from otelres.resilience._breaker_metrics import PUBLISHED
from otelres.resilience._breaker_state import BreakerState, BreakerTransition
from otelres.resilience._breaker_storage import (
    BreakerStorage,
    LocalBreakerStorage,
    default_storage_factory,
)
from otelres.resilience._breaker_window import CountWindow, OutcomeWindow, TimeWindow
from otelres.resilience._calls import COROUTINE as _COROUTINE
from otelres.resilience._calls import check_decoratable, refuse_coroutine
from otelres.resilience._calls import is_async as _is_async
from otelres.resilience._checks import Checker
from otelres.resilience._errors import CircuitBreakerOpenError, GuardMisuseError

if TYPE_CHECKING:
    from opentelemetry.metrics import MeterProvider
    from opentelemetry.trace import TracerProvider

    from otelres._otel import SpanMode
    from otelres.config import BreakerSettings

__all__ = [
    "BreakerState",
    "BreakerTransition",
    "CircuitBreaker",
    "all_breakers",
    "circuit_breaker",
    "get_breaker",
]

_log = logging.getLogger("otelres")

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])

_CLOSED = BreakerState.CLOSED
_OPEN = BreakerState.OPEN
_HALF_OPEN = BreakerState.HALF_OPEN
_FORCED_OPEN = BreakerState.FORCED_OPEN
_DISABLED = BreakerState.DISABLED

_NO_PROBE = -1
"""The permit of a call that is not a half-open probe (probe permits are generations >= 0)."""

ExceptionFilter = (
    tuple[type[BaseException], ...] | list[type[BaseException]] | Callable[[BaseException], bool]
)
"""Exception classes (a tuple or a list), or a predicate taking the exception."""

Listener = Callable[[BreakerTransition], object]


def _count_of(counter: itertools.count[int]) -> int:
    """The next value of *counter*, i.e. how many times ``next()`` was called on it."""
    # itertools.count is bumped atomically in C (no lost updates between threads, no lock);
    # its repr is the only public way to read it without advancing it.
    return int(repr(counter)[6:-1])


class CircuitBreaker:
    """A circuit breaker named *name*; use it as a decorator or through :meth:`call`.

    Every setting left as None comes from ``[resilience.circuit_breaker.<name>]`` in
    ``config.toml``, else from the ``[resilience]`` defaults (see
    :meth:`otelres.config.ResilienceSettings.breaker`); arguments given here win.

    Tripping:
        *failure_threshold* consecutive failures open the breaker (the seed's
        ``failure_threshold``, pybreaker's ``fail_max``; default 5). With
        *failure_rate_threshold* (0 < x <= 1) it also opens when the failure ratio over a
        sliding window reaches it; the window holds the last *window_size* calls
        (``window_type="count"``) or the calls of the last *window_size* seconds
        (``"time"``), and is judged only once it holds *minimum_calls* calls (at most
        *window_size* for a count window). With
        *slow_call_duration* (seconds), calls that take at least that long are *slow*,
        and *slow_call_rate_threshold* opens the breaker on the slow ratio likewise.

    Open and half-open:
        The breaker stays open *reset_timeout* seconds (the seed's ``timeout_seconds``,
        accepted as an alias; default 60), multiplied by *reset_timeout_multiplier* for
        each further trip without closing in between, up to *max_reset_timeout*. Then up
        to *half_open_max_calls* probes run at once; *success_threshold* successful probes
        close it and one failed probe re-opens it.

    What counts:
        An exception is a failure when it matches *record_exceptions* (classes, or a
        predicate; default every ``Exception``) and not *ignore_exceptions*; otherwise it
        is *ignored* (neither success nor failure). A returned value is a failure when
        *result_is_failure* (a predicate) says so. ``asyncio.CancelledError``,
        ``KeyboardInterrupt``, ``SystemExit`` and every other non-``Exception`` never
        count. The exception always reaches the caller unchanged.

    Switched off:
        ``enabled=False`` (or ``[resilience] circuit_breaker_enabled = false`` when
        *enabled* is None) starts the breaker ``disabled``: calls pass and are counted,
        nothing trips it, until :meth:`reset`.

    Telemetry (see docs/TELEMETRY.md):
        Outcomes and state are published through observable instruments of
        *meter_provider* (the global one when None); transitions and rejections become
        events on the active span; with span mode ``"always"`` each call gets a span of
        *tracer_provider*. *span_mode* None follows the process-wide mode.

    *listeners* are called with a :class:`BreakerTransition` on every state change; one
    that raises is logged and never reaches the caller. *storage* keeps the state (see
    :class:`~otelres.resilience.BreakerStorage`; default: this process). *clock* is the
    monotonic clock (a :class:`otelres.testing.FakeClock` in tests).
    """

    __slots__ = (
        "__weakref__",
        "_clock",
        "_failure_rate_threshold",
        "_failures",
        "_half_open_max_calls",
        "_ignore",
        "_ignored",
        "_listeners",
        "_lock",
        "_max_reset_timeout",
        "_mode",
        "_name",
        "_plain",
        "_record",
        "_rejected",
        "_reset_multiplier",
        "_reset_timeout",
        "_result_is_failure",
        "_slow",
        "_slow_call_duration",
        "_slow_rate_threshold",
        "_storage",
        "_success_threshold",
        "_successes",
        "_threshold",
        "_tracer",
        "_transitions",
        "_window",
    )

    def __init__(
        self,
        name: str,
        *,
        failure_threshold: int | None = None,
        reset_timeout: float | None = None,
        half_open_max_calls: int | None = None,
        success_threshold: int | None = None,
        failure_rate_threshold: float | None = None,
        slow_call_duration: float | None = None,
        slow_call_rate_threshold: float | None = None,
        window_type: Literal["count", "time"] | None = None,
        window_size: float | None = None,
        minimum_calls: int | None = None,
        reset_timeout_multiplier: float | None = None,
        max_reset_timeout: float | None = None,
        record_exceptions: ExceptionFilter = (Exception,),
        ignore_exceptions: ExceptionFilter = (),
        result_is_failure: Callable[[Any], bool] | None = None,
        enabled: bool | None = None,
        listeners: Iterable[Listener] = (),
        storage: BreakerStorage | None = None,
        clock: Callable[[], float] = time.monotonic,
        meter_provider: MeterProvider | None = None,
        tracer_provider: TracerProvider | None = None,
        span_mode: SpanMode | None = None,
        timeout_seconds: float | None = None,
    ) -> None:
        if not isinstance(name, str) or not name:
            raise ValueError(f"CircuitBreaker: name must be a non-empty string, got {name!r}")
        if timeout_seconds is not None:
            if reset_timeout is not None:
                raise ValueError(
                    f"CircuitBreaker({name!r}): pass reset_timeout or its alias "
                    "timeout_seconds, not both"
                )
            reset_timeout = timeout_seconds
        settings, default_enabled = _configured(name)
        check = Checker("CircuitBreaker", name)
        self._name = name
        self._threshold = check.integer(
            "failure_threshold", failure_threshold, settings.threshold, 1
        )
        self._reset_timeout = check.number("reset_timeout", reset_timeout, settings.timeout_seconds)
        self._half_open_max_calls = check.integer(
            "half_open_max_calls", half_open_max_calls, settings.half_open_max_calls, 1
        )
        self._success_threshold = check.integer(
            "success_threshold", success_threshold, settings.success_threshold, 1
        )
        self._failure_rate_threshold = check.ratio(
            "failure_rate_threshold", failure_rate_threshold, settings.failure_rate_threshold
        )
        self._slow_call_duration = check.optional_number(
            "slow_call_duration", slow_call_duration, settings.slow_call_duration_seconds
        )
        self._slow_rate_threshold = check.ratio(
            "slow_call_rate_threshold", slow_call_rate_threshold, settings.slow_call_rate_threshold
        )
        self._reset_multiplier = check.number(
            "reset_timeout_multiplier", reset_timeout_multiplier, settings.timeout_multiplier, 1.0
        )
        self._max_reset_timeout = check.number(
            "max_reset_timeout", max_reset_timeout, settings.max_timeout_seconds
        )
        kind = settings.window_type if window_type is None else window_type
        if kind not in ("count", "time"):
            raise ValueError(
                f"CircuitBreaker({name!r}): window_type must be 'count' or 'time', got {kind!r}"
            )
        size = check.number("window_size", window_size, float(settings.window_size))
        minimum = check.integer("minimum_calls", minimum_calls, settings.minimum_calls, 1)
        if self._slow_rate_threshold is not None and self._slow_call_duration is None:
            raise ValueError(
                f"CircuitBreaker({name!r}): slow_call_rate_threshold needs slow_call_duration"
            )
        self._window: OutcomeWindow | None = None
        if self._failure_rate_threshold is not None or self._slow_call_duration is not None:
            if kind == "count":
                if size != int(size):
                    raise ValueError(
                        f"CircuitBreaker({name!r}): window_size of a count window must be a "
                        f"whole number of calls, got {size!r}"
                    )
                # As Resilience4j does: a minimum above the window size could never be met.
                self._window = CountWindow(int(size), min(minimum, int(size)))
            else:
                self._window = TimeWindow(size, minimum, clock)
        self._record = _matcher("record_exceptions", name, record_exceptions)
        self._ignore = _matcher("ignore_exceptions", name, ignore_exceptions)
        if result_is_failure is not None and not callable(result_is_failure):
            raise TypeError(f"CircuitBreaker({name!r}): result_is_failure must be callable")
        self._result_is_failure = result_is_failure
        if span_mode is not None and span_mode not in _otel.SPAN_MODES:
            raise ValueError(
                f"CircuitBreaker({name!r}): span_mode must be one of "
                f"{', '.join(_otel.SPAN_MODES)} or None, got {span_mode!r}"
            )
        self._mode: SpanMode | None = span_mode
        self._clock = clock
        self._tracer = _otel.get_tracer(tracer_provider)
        self._lock = threading.Lock()
        self._listeners: tuple[Listener, ...] = tuple(listeners)
        self._successes = itertools.count()
        self._failures = itertools.count()
        self._ignored = itertools.count()
        self._rejected = itertools.count()
        self._slow = itertools.count()
        self._transitions: dict[tuple[BreakerState, BreakerState], int] = {}
        # Decided once: with no window, no result predicate and no fixed "always" mode, a
        # closed-state call needs nothing but the state check and a counter bump.
        self._plain = (
            self._window is None and result_is_failure is None and span_mode != "always"
        )
        switched_on = default_enabled if enabled is None else enabled
        if storage is None:
            # A breaker switched off here must not switch off a shared state other
            # processes use, so it keeps its (disabled) state locally.
            storage = (
                default_storage_factory()(name, clock)
                if switched_on
                else LocalBreakerStorage(clock)
            )
        self._storage = storage
        if not switched_on:
            storage.force(_DISABLED)
        PUBLISHED.add(self, meter_provider)

    # ------------------------------------------------------------------ introspection
    @property
    def name(self) -> str:
        """The breaker's name (the ``breaker.name`` attribute of its telemetry)."""
        return self._name

    @property
    def state(self) -> BreakerState:
        """The current state (an open breaker whose timeout elapsed still reads ``open``
        until the next call makes it ``half_open``)."""
        return self._storage.state

    @property
    def failure_threshold(self) -> int:
        """Consecutive failures that open the breaker."""
        return self._threshold

    @property
    def reset_timeout(self) -> float:
        """Seconds the breaker stays open after its first trip."""
        return self._reset_timeout

    @property
    def half_open_max_calls(self) -> int:
        """Probe calls a half-open breaker lets run at the same time."""
        return self._half_open_max_calls

    @property
    def success_threshold(self) -> int:
        """Successful probes that close a half-open breaker."""
        return self._success_threshold

    @property
    def storage(self) -> BreakerStorage:
        """Where the state lives."""
        return self._storage

    def retry_after(self) -> float | None:
        """Seconds until the breaker admits a probe: 0 when it admits calls now or probes
        run, None when forced open."""
        snap = self._storage.snapshot()
        if snap.state is _FORCED_OPEN:
            return None
        return snap.retry_after

    def get_state(self) -> dict[str, Any]:
        """A snapshot as the seed system reported it, plus a few more metrics.

        ``{"name", "state", "retry_after", "metrics": {"total_calls", "success_calls",
        "failure_calls", "rejected_calls", "success_rate", "ignored_calls", "slow_calls",
        "consecutive_failures", "failure_rate", "slow_call_rate"}}``. ``success_calls``
        includes slow successes; ``total_calls`` counts every call, rejected ones too;
        ``success_rate`` is success over total (1.0 before any call).
        """
        success, failure, ignored, rejected, slow = self._outcome_counts()
        successes = success + slow
        total = successes + failure + ignored + rejected
        failure_rate, slow_rate = self._rates()
        snap = self._storage.snapshot()
        return {
            "name": self._name,
            "state": snap.state.value,
            "retry_after": None if snap.state is _FORCED_OPEN else snap.retry_after,
            "metrics": {
                "total_calls": total,
                "success_calls": successes,
                "failure_calls": failure,
                "rejected_calls": rejected,
                "success_rate": successes / total if total else 1.0,
                "ignored_calls": ignored,
                "slow_calls": slow,
                "consecutive_failures": snap.failures,
                "failure_rate": failure_rate,
                "slow_call_rate": slow_rate,
            },
        }

    def __repr__(self) -> str:
        return f"<CircuitBreaker {self._name!r} {self._storage.state.value}>"

    # ------------------------------------------------------------------ manual control
    def force_open(self) -> None:
        """Reject every call until :meth:`reset` (``forced_open``)."""
        self._force(_FORCED_OPEN, "forced")

    def disable(self) -> None:
        """Let every call through and never trip until :meth:`reset` (``disabled``)."""
        self._force(_DISABLED, "disabled")

    def reset(self) -> None:
        """Close the breaker and forget its failures (the seed's ``reset()``)."""
        self._force(_CLOSED, "reset")

    def _force(self, to_state: BreakerState, reason: str) -> None:
        before = self._storage.state
        self._storage.force(to_state)
        if self._window is not None:
            with self._lock:
                self._window.clear()
        if before is not to_state:
            self._transitioned(before, to_state, reason, None)

    def add_listener(self, listener: Listener) -> None:
        """Call *listener* with a :class:`BreakerTransition` on every state change."""
        with self._lock:
            self._listeners = (*self._listeners, listener)

    def remove_listener(self, listener: Listener) -> None:
        """Stop calling *listener* (a ValueError if it was not added)."""
        with self._lock:
            listeners = list(self._listeners)
            listeners.remove(listener)
            self._listeners = tuple(listeners)

    # ------------------------------------------------------------------ guarding calls
    def call(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """Call ``fn(*args, **kwargs)`` through the breaker and return its result.

        Raises :class:`~otelres.resilience.CircuitBreakerOpenError` without calling *fn*
        while the breaker rejects calls; *fn*'s own exceptions propagate unchanged. For an
        ``async def`` use :meth:`call_async` (or decorate it): ``call`` would only see the
        coroutine object being created.
        """
        storage = self._storage
        if storage.state is _CLOSED and self._plain and _otel._span_mode != "always":
            try:
                result = fn(*args, **kwargs)
            except BaseException as exc:
                self._on_exception(exc, _NO_PROBE, 0.0)
                raise
            if type(result) is _COROUTINE:
                refuse_coroutine(result, fn, self)
            next(self._successes)
            if storage.failures:
                storage.reset_failures()
            return result
        mode = self._mode
        if (_otel._span_mode if mode is None else mode) == "always":
            with tel.guarded_span(self._tracer, "otelres.breaker", self._span_attributes()):
                return self._call(fn, args, kwargs)
        return self._call(fn, args, kwargs)

    async def call_async(self, fn: Callable[..., Awaitable[T]], /, *args: Any, **kwargs: Any) -> T:
        """Await ``fn(*args, **kwargs)`` through the breaker and return its result.

        The async twin of :meth:`call`; a cancelled call is never counted as a failure.
        """
        storage = self._storage
        if storage.state is _CLOSED and self._plain and _otel._span_mode != "always":
            try:
                result = await fn(*args, **kwargs)
            except BaseException as exc:
                self._on_exception(exc, _NO_PROBE, 0.0)
                raise
            next(self._successes)
            if storage.failures:
                storage.reset_failures()
            return result
        if tel.effective_mode(self._mode) == "always":
            with tel.guarded_span(self._tracer, "otelres.breaker", self._span_attributes()):
                return await self._call_async(fn, args, kwargs)
        return await self._call_async(fn, args, kwargs)

    def guard(self) -> _Guard:
        """A context manager guarding a block of code, sync or async (pybreaker's ``calling()``).

        ::

            with breaker.guard():
                response = session.get(url)

            async with breaker.guard():
                response = await client.get(url)

        Entering raises :class:`~otelres.resilience.CircuitBreakerOpenError` while the
        breaker rejects calls (the block does not run); an exception leaving the block is
        counted as for :meth:`call` and propagates; a block that completes is a success
        (*result_is_failure* does not apply: there is no result).
        """
        return _Guard(self)

    def __call__(self, fn: F) -> F:
        """Decorate *fn* (sync or ``async def``) so every call goes through the breaker.

        The wrapper's ``breaker`` attribute is this breaker. A ``staticmethod`` or
        ``classmethod`` object stays one; generator functions are refused with a TypeError
        (their failures happen after the call returned).
        """
        if isinstance(fn, (staticmethod, classmethod)):
            return type(fn)(self(fn.__func__))
        check_decoratable(fn, self)
        if _is_async(fn):
            call_async = self.call_async

            @functools.wraps(fn)
            async def async_guarded(*a: Any, **k: Any) -> Any:
                return await call_async(fn, *a, **k)

            async_guarded.breaker = self  # type: ignore[attr-defined]
            return async_guarded  # type: ignore[return-value]
        call = self.call

        @functools.wraps(fn)
        def guarded(*a: Any, **k: Any) -> Any:
            return call(fn, *a, **k)

        guarded.breaker = self  # type: ignore[attr-defined]
        return guarded  # type: ignore[return-value]

    def _call(self, fn: Callable[..., T], args: tuple[Any, ...], kwargs: dict[str, Any]) -> T:
        """The general path: admission (probes, rejections), timing, outcome accounting.

        Only the admission and the accounting touch shared state, each briefly; *fn* runs
        with no lock held, so slow calls never queue behind each other.
        """
        permit = self._admit()
        start = self._clock() if self._slow_call_duration is not None else 0.0
        try:
            result = fn(*args, **kwargs)
        except BaseException as exc:
            self._on_exception(exc, permit, start)
            raise
        if type(result) is _COROUTINE:
            if permit != _NO_PROBE:
                self._storage.release_probe(permit, success=False)
            refuse_coroutine(result, fn, self)
        self._on_result(result, permit, start)
        return result

    async def _call_async(
        self, fn: Callable[..., Awaitable[T]], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> T:
        """The async twin of :meth:`_call`."""
        permit = self._admit()
        start = self._clock() if self._slow_call_duration is not None else 0.0
        try:
            result = await fn(*args, **kwargs)
        except BaseException as exc:
            self._on_exception(exc, permit, start)
            raise
        self._on_result(result, permit, start)
        return result

    def _span_attributes(self) -> dict[str, str]:
        """Attributes of the ``otelres.breaker`` span (mode ``always``)."""
        return {"breaker.name": self._name, "breaker.state": self._storage.state.value}

    # ------------------------------------------------------------------ the state machine
    def _admit(self) -> int:
        """Let a call in (returning its probe permit, or _NO_PROBE) or raise the rejection.

        An open breaker whose period is over is moved to half-open by whichever caller
        gets here first (a compare-and-set, so exactly one transition is reported); then
        every caller competes for the probe permits, and those without one are rejected
        with ``retry_after`` 0 instead of waiting for the probes.
        """
        storage = self._storage
        for _ in range(8):
            state = storage.state
            if state is _CLOSED or state is _DISABLED:
                return _NO_PROBE
            if state is _FORCED_OPEN:
                raise self._rejection(_FORCED_OPEN, None)
            snap = storage.snapshot()
            if snap.state is _OPEN:
                if snap.retry_after > 0:
                    raise self._rejection(_OPEN, snap.retry_after)
                if storage.transition(_OPEN, _HALF_OPEN, generation=snap.generation) is not None:
                    self._transitioned(_OPEN, _HALF_OPEN, "open timeout elapsed", None)
                continue
            if snap.state is _HALF_OPEN:
                if storage.try_acquire_probe(snap.generation, self._half_open_max_calls):
                    return snap.generation
                if storage.state is _HALF_OPEN:
                    raise self._rejection(_HALF_OPEN, 0.0)
        # The state kept changing under us (a storm of transitions): refuse rather than spin.
        raise self._rejection(storage.state, 0.0)

    def _rejection(self, state: BreakerState, retry_after: float | None) -> CircuitBreakerOpenError:
        """Count a rejection, note it on the active span, and return the error to raise."""
        next(self._rejected)
        span = tel.recording_span(self._mode)
        if span is not None:
            attributes: dict[str, Any] = {"breaker.name": self._name, "breaker.state": state.value}
            if retry_after is not None:
                attributes["breaker.retry_after"] = retry_after
            try:
                span.add_event("otelres.breaker.rejected", attributes)
            except Exception:
                _log.debug("otelres: adding a rejection event failed", exc_info=True)
        return CircuitBreakerOpenError(self._name, retry_after, state.value)

    def _on_exception(self, exc: BaseException, permit: int, start: float) -> None:
        """Count an exception raised by the guarded function (the caller re-raises it)."""
        if not isinstance(exc, Exception) or not self._counts(exc):
            # Cancellation and interpreter exits say nothing about the service; ignored
            # exceptions neither succeed nor fail. A probe gives its permit back.
            if isinstance(exc, Exception):
                next(self._ignored)
            if permit != _NO_PROBE:
                self._storage.release_probe(permit, success=False)
            return
        slow = self._is_slow(start)
        self._failed(permit, slow)

    def _on_result(self, result: Any, permit: int, start: float) -> None:
        """Count a returned value: a failure if ``result_is_failure`` says so, else a success."""
        slow = self._is_slow(start)
        predicate = self._result_is_failure
        if predicate is not None:
            try:
                failed = bool(predicate(result))
            except Exception:
                _log.exception(
                    "otelres: result_is_failure of breaker %r raised; counting a success",
                    self._name,
                )
                failed = False
            if failed:
                self._failed(permit, slow)
                return
        self._succeeded(permit, slow)

    def _succeeded(self, permit: int, slow: bool) -> None:
        """Count a success: enough successful probes close; in closed, judge the window."""
        next(self._slow if slow else self._successes)
        storage = self._storage
        if permit != _NO_PROBE:
            if storage.release_probe(permit, success=True) >= self._success_threshold:
                self._move(_HALF_OPEN, _CLOSED, permit, "probes succeeded")
            return
        if storage.state is not _CLOSED:
            return
        if self._window is not None:
            # A success can still trip: it may be the call that fills the window up to
            # minimum_calls, or a slow one.
            with self._lock:
                rates = self._window.record(False, slow)
            reason = self._window_verdict(*rates)
            if reason is not None:
                self._trip(reason)
                return
        if storage.failures:
            storage.reset_failures()

    def _failed(self, permit: int, slow: bool) -> None:
        """Count a failure: a failed probe re-opens; in closed, judge the run and the window.

        A call admitted while closed that fails after the breaker left ``closed`` is counted
        in the metrics but changes nothing: the breaker already decided.
        """
        next(self._failures)
        storage = self._storage
        if permit != _NO_PROBE:
            self._move(_HALF_OPEN, _OPEN, permit, "probe failed")
            return
        if storage.state is not _CLOSED:
            return
        reason = None
        if self._window is not None:
            with self._lock:
                rates = self._window.record(True, slow)
            reason = self._window_verdict(*rates)
        if storage.add_failure() >= self._threshold:
            reason = "failure threshold"
        if reason is not None:
            self._trip(reason)

    def _is_slow(self, start: float) -> bool:
        limit = self._slow_call_duration
        return limit is not None and self._clock() - start >= limit

    def _window_verdict(self, failure_rate: float, slow_rate: float) -> str | None:
        """The reason to trip on these window rates (-1: not enough calls), or None."""
        threshold = self._failure_rate_threshold
        if threshold is not None and failure_rate >= threshold:
            return "failure rate"
        threshold = self._slow_rate_threshold
        if threshold is not None and slow_rate >= threshold:
            return "slow call rate"
        return None

    def _trip(self, reason: str) -> None:
        """Open a closed breaker for *reason*, the open period grown by its earlier trips."""
        snap = self._storage.snapshot()
        if snap.state is _CLOSED:
            self._move(_CLOSED, _OPEN, snap.generation, reason, snap.trips)

    def _move(
        self,
        from_state: BreakerState,
        to_state: BreakerState,
        generation: int,
        reason: str,
        trips: int | None = None,
    ) -> None:
        """Make one compare-and-set transition; report it if this caller won the race."""
        open_for = None
        if to_state is _OPEN:
            if trips is None:
                trips = self._storage.snapshot().trips
            open_for = self._open_duration(trips)
        moved = self._storage.transition(
            from_state, to_state, generation=generation, open_for=open_for or 0.0
        )
        if moved is None:
            return
        if self._window is not None:
            with self._lock:
                self._window.clear()
        self._transitioned(from_state, to_state, reason, open_for)

    def _open_duration(self, trips: int) -> float:
        """How long to stay open after *trips* earlier trips without closing in between."""
        base = self._reset_timeout
        multiplier = self._reset_multiplier
        if multiplier == 1.0 or trips <= 0:
            return base
        cap = max(self._max_reset_timeout, base)
        try:
            return min(base * multiplier**trips, cap)
        except OverflowError:
            return cap

    def _transitioned(
        self,
        from_state: BreakerState,
        to_state: BreakerState,
        reason: str,
        open_for: float | None,
    ) -> None:
        """Count, log, annotate the active span and tell the listeners about a transition."""
        with self._lock:
            key = (from_state, to_state)
            self._transitions[key] = self._transitions.get(key, 0) + 1
            listeners = self._listeners
        level = logging.WARNING if to_state in (_OPEN, _FORCED_OPEN) else logging.INFO
        if _log.isEnabledFor(level):
            _log.log(
                level,
                "circuit breaker %r: %s -> %s (%s)%s",
                self._name,
                from_state.value,
                to_state.value,
                reason,
                "" if open_for is None else f"; open for {open_for:.3g} s",
            )
        span = tel.recording_span(self._mode)
        if span is not None:
            try:
                span.add_event(
                    "otelres.breaker.transition",
                    {
                        "breaker.name": self._name,
                        "breaker.from_state": from_state.value,
                        "breaker.to_state": to_state.value,
                        "breaker.reason": reason,
                    },
                )
            except Exception:
                _log.debug("otelres: adding a transition event failed", exc_info=True)
        if listeners:
            record = BreakerTransition(
                self._name, from_state, to_state, self._clock(), reason, open_for
            )
            for listener in listeners:
                _otel.call_hook(listener, record, what=f"circuit breaker {self._name!r} listener")

    def _counts(self, exc: Exception) -> bool:
        """Whether *exc* is a failure (recorded and not ignored)."""
        return not isinstance(exc, GuardMisuseError) and self._record(exc) and not self._ignore(exc)

    # ------------------------------------------------------------------ published state
    def _outcome_counts(self) -> tuple[int, int, int, int, int]:
        return (
            _count_of(self._successes),
            _count_of(self._failures),
            _count_of(self._ignored),
            _count_of(self._rejected),
            _count_of(self._slow),
        )

    def _current_state(self) -> BreakerState:
        return self._storage.state

    def _transition_counts(self) -> list[tuple[BreakerState, BreakerState, int]]:
        with self._lock:
            return [(a, b, n) for (a, b), n in self._transitions.items()]

    def _rates(self) -> tuple[float, float]:
        window = self._window
        if window is None:
            return -1.0, -1.0
        with self._lock:
            failure_rate, slow_rate = window.rates()
        return (
            failure_rate if self._failure_rate_threshold is not None else -1.0,
            slow_rate if self._slow_call_duration is not None else -1.0,
        )


class _Guard:
    """The context manager :meth:`CircuitBreaker.guard` returns (one per ``with``)."""

    __slots__ = ("_breaker", "_permit", "_span", "_start")

    def __init__(self, breaker: CircuitBreaker) -> None:
        self._breaker = breaker
        self._span: Any = None

    def __enter__(self) -> None:
        breaker = self._breaker
        if tel.effective_mode(breaker._mode) == "always":
            self._span = tel.guarded_span(
                breaker._tracer, "otelres.breaker", breaker._span_attributes()
            )
            self._span.__enter__()
        try:
            self._permit = breaker._admit()
        except BaseException as exc:
            self._close_span(exc)
            raise
        self._start = breaker._clock() if breaker._slow_call_duration is not None else 0.0

    def __exit__(self, exc_type: Any, exc: BaseException | None, traceback: Any) -> None:
        breaker = self._breaker
        if exc is None:
            breaker._succeeded(self._permit, breaker._is_slow(self._start))
        else:
            breaker._on_exception(exc, self._permit, self._start)
        self._close_span(exc)

    async def __aenter__(self) -> None:
        self.__enter__()

    async def __aexit__(self, exc_type: Any, exc: BaseException | None, traceback: Any) -> None:
        self.__exit__(exc_type, exc, traceback)

    def _close_span(self, exc: BaseException | None) -> None:
        span, self._span = self._span, None
        if span is not None:
            span.__exit__(type(exc) if exc is not None else None, exc, None)


# ---------------------------------------------------------------------- construction helpers
def _configured(name: str) -> tuple[BreakerSettings, bool]:
    """The configured settings of breaker *name* and whether breakers are enabled."""
    from otelres import config

    resilience = config.current().resilience
    return resilience.breaker(name), resilience.circuit_breaker_enabled


def _matcher(arg: str, name: str, spec: ExceptionFilter) -> Callable[[BaseException], bool]:
    """A predicate for *spec*: a tuple of exception classes, or a predicate already."""
    if isinstance(spec, type) and issubclass(spec, BaseException):
        spec = (spec,)
    if isinstance(spec, (list, set, frozenset)):  # pybreaker's exclude=[...] habit
        spec = tuple(spec)
    if isinstance(spec, tuple):
        for item in spec:
            if not (isinstance(item, type) and issubclass(item, BaseException)):
                raise TypeError(
                    f"CircuitBreaker({name!r}): {arg} must hold exception classes, got {item!r}"
                )
        classes = spec

        def matches(exc: BaseException) -> bool:
            return isinstance(exc, classes)

        return matches
    if callable(spec):
        predicate = cast("Callable[[BaseException], bool]", spec)

        def safe(exc: BaseException) -> bool:
            try:
                return bool(predicate(exc))
            except Exception:
                _log.exception("otelres: %s predicate of breaker %r raised", arg, name)
                return arg == "record_exceptions"

        return safe
    raise TypeError(
        f"CircuitBreaker({name!r}): {arg} must be a tuple of exception classes or a predicate, "
        f"got {spec!r}"
    )


# ---------------------------------------------------------------------- the registry
_registry: dict[str, tuple[CircuitBreaker, dict[str, Any], tuple[BreakerSettings, bool]]] = {}
_registry_lock = threading.Lock()
_stale_warned: dict[str, tuple[BreakerSettings, bool]] = {}


def get_breaker(name: str, **overrides: Any) -> CircuitBreaker:
    """The process-wide breaker called *name*, created on first use.

    It is built from ``[resilience.circuit_breaker.<name>]`` / ``[resilience]`` with
    *overrides* (any :class:`CircuitBreaker` keyword argument) winning. Later calls return
    the same breaker; passing an override that differs from the one it was created with
    raises ``ValueError`` rather than silently ignoring it.

    The configuration is read once, when the breaker is created: functions decorated with
    it hold it, and its state must not split in two. If the current configuration later
    says something else for *name* (``otelres.configure()`` after import), the breaker
    keeps its settings and a warning says so, once per change: configure before the
    first guarded module is imported.
    """
    with _registry_lock:
        entry = _registry.get(name)
        if entry is None:
            breaker = CircuitBreaker(name, **overrides)
            _registry[name] = (breaker, dict(overrides), _configured(name))
            return breaker
    breaker, created_with, configured = entry
    for key, value in overrides.items():
        if key not in created_with or created_with[key] != value:
            before = created_with.get(key, "<from config>")
            raise ValueError(
                f"get_breaker({name!r}): {key}={value!r} conflicts with the existing breaker "
                f"(created with {key}={before!r}); use one setting per name"
            )
    now = _configured(name)
    if now != configured and _stale_warned.get(name) != now:
        _stale_warned[name] = now
        _log.warning(
            "otelres: circuit breaker %r keeps the settings it was created with; the current "
            "configuration differs for it (configure otelres before guarded modules are "
            "imported to apply it)",
            name,
        )
    return breaker


def all_breakers() -> dict[str, CircuitBreaker]:
    """Every breaker of the registry by name (a copy; breakers built directly are not in it)."""
    with _registry_lock:
        return {name: entry[0] for name, entry in _registry.items()}


def _clear_registry() -> None:
    """Forget every registered breaker (for tests)."""
    with _registry_lock:
        _registry.clear()
        _stale_warned.clear()


@overload
def circuit_breaker(fn: F, /) -> F: ...


@overload
def circuit_breaker(*, name: str | None = None, **overrides: Any) -> Callable[[F], F]: ...


def circuit_breaker(
    fn: F | None = None, /, *, name: str | None = None, **overrides: Any
) -> F | Callable[[F], F]:
    """Guard a sync or async function with the registry's breaker *name* (the seed's decorator).

    ::

        @circuit_breaker(name="kraken_api", failure_threshold=5)
        async def fetch_kraken_data(): ...

    Functions decorated with the same *name* share one breaker (see :func:`get_breaker`).
    Without *name* the breaker is named after the function (``module.qualname``).
    ``fetch_kraken_data.breaker`` is the breaker.
    """

    def decorate(func: F) -> F:
        breaker_name = name or f"{func.__module__}.{func.__qualname__}"
        return get_breaker(breaker_name, **overrides)(func)

    if fn is not None:
        return decorate(fn)
    return decorate
