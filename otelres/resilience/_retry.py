"""Retry: call again after a transient failure, with jittered exponential backoff.

::

    from otelres.resilience import Retry

    retry = Retry("kraken", max_attempts=4, retry_on=(ConnectionError, TimeoutError))

    @retry
    async def fetch_ticker(symbol): ...

What it promises:

* the last exception is re-raised unchanged (never wrapped); ``KeyboardInterrupt``,
  ``SystemExit`` and ``asyncio.CancelledError`` are never retried;
* a breaker rejection (:class:`CircuitBreakerOpenError`, or pybreaker's own
  ``CircuitBreakerError`` from a breaker you kept) is never retried: the breaker
  just said the service is down, and hammering it defeats the breaker;
* a delay the server asked for (Retry-After) is honoured through ``retry_after=``;
* a non-idempotent operation (``idempotent=False``) is retried only when ``retry_safe``
  says so for that failure (for instance after looking up whether the order exists);
* the success path costs one ``try`` and a counter bump; telemetry is recorded only when
  a retry happens.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import random
import threading
import time
from collections.abc import Awaitable, Callable, Generator, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, TypeAlias, TypeVar, overload

from otelres import _otel
from otelres.resilience import _instruments as _inst
from otelres.resilience import _telemetry as tel
from otelres.resilience._calls import COROUTINE as _COROUTINE
from otelres.resilience._calls import decorate, direct, direct_async, refuse_coroutine
from otelres.resilience._checks import Checker
from otelres.resilience._errors import BreakerRejection, GuardMisuseError, RateLimitExceededError

if TYPE_CHECKING:
    from collections.abc import Coroutine

    from opentelemetry.metrics import Meter, MeterProvider
    from opentelemetry.trace import TracerProvider
    from opentelemetry.util.types import AttributeValue

    from otelres._otel import SpanMode
    from otelres.config import RetrySettings

__all__ = ["Jitter", "Retry", "RetryDetails", "RetryHook", "no_backoff"]

_log = logging.getLogger("otelres")

T = TypeVar("T")
Jitter = Literal["full", "decorrelated", "none"]
ExceptionTypes: TypeAlias = (
    "type[BaseException] | tuple[type[BaseException], ...] | list[type[BaseException]]"
)
RetryOn: TypeAlias = "ExceptionTypes | Callable[[BaseException], bool]"
Invoke = Callable[[Callable[..., Any], tuple[Any, ...], dict[str, Any]], Any]
R = TypeVar("R")
_Engine: TypeAlias = Generator["BaseException | float | None", Any, R]
"""A step of the retry engine: yields what a driver must do, returns *R* (see ``_engine``)."""


@dataclass(frozen=True, slots=True)
class RetryDetails:
    """What a retry hook learns about one scheduled retry.

    ``attempt`` is the number of the attempt about to run (2 for the first retry);
    ``wait`` the seconds slept before it; ``waited_so_far`` the seconds slept before
    earlier retries of the same call. ``caused_by`` is the exception of the failed attempt,
    or None when a result was rejected by ``retry_if_result`` (then ``result`` holds it).
    ``args`` / ``kwargs`` are the call's arguments.
    """

    name: str
    attempt: int
    wait: float
    waited_so_far: float
    caused_by: BaseException | None
    result: object = None
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)


RetryHook = Callable[[RetryDetails], object]
"""A function called with a :class:`RetryDetails` each time a retry is scheduled.

It runs before the backoff sleep; whatever it raises is logged and never reaches the caller.
"""

# --------------------------------------------------------------------------- no_backoff
_no_backoff_depth = 0
_no_backoff_lock = threading.Lock()


@contextmanager
def no_backoff() -> Iterator[None]:
    """Within the block, every :class:`Retry` retries at once instead of sleeping.

    For tests of code that uses otelres: attempts, hooks (with ``wait`` 0) and telemetry
    behave as usual, only the backoff is skipped. Process-wide and nestable::

        from otelres.testing import no_backoff

        with no_backoff():
            assert fetch_with_retries() == "ok"
    """
    global _no_backoff_depth
    with _no_backoff_lock:
        _no_backoff_depth += 1
    try:
        yield
    finally:
        with _no_backoff_lock:
            _no_backoff_depth -= 1


def _seconds(value: object) -> float | None:
    """A ``retry_after`` hook's answer as seconds: None, a number >= 0 or a numeric string."""
    if value is None:
        return None
    if isinstance(value, (str, bytes)):
        value = float(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"expected seconds, got {value!r}")
    if not value >= 0:  # negative or NaN
        raise ValueError(f"expected seconds >= 0, got {value!r}")
    return float(value)


def _default_retry_after(exc: BaseException) -> float | None:
    """The ``retry_after`` attribute (seconds) of *exc* when it has a numeric one."""
    value = getattr(exc, "retry_after", None)
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0:
        return float(value)
    return None


class _NotAResult:
    __slots__ = ()


_NO_RESULT: Any = _NotAResult()
_SUCCEEDED = -1.0
"""What the retry decision returns for an attempt that succeeded (waits are >= 0)."""


def _once(
    invoke: Invoke, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[BaseException | None, Any]:
    """One attempt: ``(None, result)`` or ``(exception, _NO_RESULT)``."""
    try:
        return None, invoke(fn, args, kwargs)
    except Exception as exc:
        return exc, _NO_RESULT


async def _once_async(
    invoke: Callable[..., Awaitable[Any]],
    fn: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> tuple[BaseException | None, Any]:
    """The async twin of :func:`_once`."""
    try:
        return None, await invoke(fn, args, kwargs)
    except Exception as exc:
        return exc, _NO_RESULT


def _install(meter: Meter, live: Callable[[], list[Retry]]) -> None:
    outcomes = (
        ("_ok_first", {"retry.outcome": "success_without_retry"}),
        ("_ok_retried", {"retry.outcome": "success_with_retry"}),
        ("_failed_first", {"retry.outcome": "failed_without_retry"}),
        ("_failed_retried", {"retry.outcome": "failed_with_retry"}),
    )
    meter.create_observable_counter(
        "otelres.retry.calls",
        [_inst.summed_by_name("otelres.retry.calls", live, "retry.name", outcomes)],
        unit="{call}",
        description="Calls guarded by a retry, by outcome",
    )


_RETRIES: _otel.ObservedSet[Retry] = _otel.ObservedSet(_install)


class Retry:
    """Retries a call after failures, with exponential backoff and jitter.

    Parameters (all keyword-only after *name*):

    ``max_attempts``
        Attempts in total, the first included (1 disables retrying).
    ``retry_on``
        Exception classes to retry (a class, a tuple or a list), or a predicate receiving
        the exception. Default ``(Exception,)``. A breaker rejection
        (:class:`CircuitBreakerOpenError`, ``pybreaker.CircuitBreakerError``) is never
        retried whatever this says.
    ``retry_if_result``
        A predicate on the returned value: True means "this result is a failure, try
        again". When attempts run out the last result is returned.
    ``initial_delay``, ``multiplier``, ``max_delay``
        Backoff before retry *n* is ``min(max_delay, initial_delay * multiplier ** (n-1))``
        seconds, then jittered.
    ``jitter``
        ``"full"`` (default): a uniform random wait between 0 and the backoff, which
        spreads synchronized clients best. ``"decorrelated"``: uniform between
        ``initial_delay`` and three times the previous wait, capped at ``max_delay``.
        ``"none"``: the backoff itself.
    ``deadline``
        Seconds for the whole call, attempts and waits included: no retry is scheduled
        whose wait would end after it. None: no deadline.
    ``retry_after``
        A function receiving the exception and returning the delay in seconds the server
        asked for (an HTTP ``Retry-After``: a number, or the header's numeric string), or
        None; anything else (an HTTP date, a negative number) is logged and ignored, never
        raised. The wait becomes at least that
        delay; if the server asks for more than ``max_delay`` (or past the deadline) the
        exception is re-raised instead, since an earlier retry would be refused anyway.
        The default reads a numeric ``retry_after`` attribute, which otelres'
        :class:`RateLimitExceededError` carries. Pass None to ignore server delays.
    ``idempotent``, ``retry_safe``
        With ``idempotent=False`` a failed attempt is retried only if
        ``retry_safe(exception)`` returns True (for ``call_async`` it may return an
        awaitable): check that the order was not placed before sending it again. A
        :class:`RateLimitExceededError` is always safe to retry: the request was never
        sent.
    ``on_retry``
        A :data:`RetryHook` or a sequence of them, called with a :class:`RetryDetails`
        before each backoff sleep.
    ``clock``, ``sleep``, ``async_sleep``, ``random``
        Injectable for tests (``FakeClock``, ``FakeClock.sleep``, ``FakeClock.async_sleep``).
    ``span_mode``, ``meter_provider``, ``tracer_provider``
        Telemetry: the span mode (None follows ``otelres._otel.span_mode()``) and
        injected providers (None: the global ones).
    """

    __slots__ = (
        "__weakref__",
        "_async_sleep",
        "_attempts_counter",
        "_clock",
        "_delay_histogram",
        "_failed_first",
        "_failed_retried",
        "_hooks",
        "_mode",
        "_ok_first",
        "_ok_retried",
        "_random",
        "_retry_classes",
        "_retry_predicate",
        "_sleep",
        "_tracer",
        "deadline",
        "idempotent",
        "initial_delay",
        "jitter",
        "max_attempts",
        "max_delay",
        "multiplier",
        "name",
        "retry_after",
        "retry_if_result",
        "retry_safe",
    )

    def __init__(
        self,
        name: str,
        *,
        max_attempts: int = 3,
        retry_on: RetryOn = (Exception,),
        retry_if_result: Callable[[Any], bool] | None = None,
        initial_delay: float = 0.1,
        max_delay: float = 10.0,
        multiplier: float = 2.0,
        jitter: Jitter = "full",
        deadline: float | None = None,
        retry_after: Callable[[BaseException], float | None] | None = _default_retry_after,
        idempotent: bool = True,
        retry_safe: Callable[[BaseException], bool | Awaitable[bool]] | None = None,
        on_retry: RetryHook | Sequence[RetryHook] = (),
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], object] = time.sleep,
        async_sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
        random: Callable[[], float] = random.random,
        span_mode: SpanMode | None = None,
        meter_provider: MeterProvider | None = None,
        tracer_provider: TracerProvider | None = None,
    ) -> None:
        check = Checker("Retry", name)
        check.integer("max_attempts", max_attempts, 1, 1)
        initial_delay = check.at_least("initial_delay", initial_delay, 0.0)
        max_delay = check.at_least("max_delay", max_delay, 0.0)
        multiplier = check.at_least("multiplier", multiplier, 1.0)
        check.choice("jitter", jitter, ("full", "decorrelated", "none"))
        deadline = check.optional_number("deadline", deadline, None)
        if span_mode is not None:
            check.choice("span_mode", span_mode, _otel.SPAN_MODES)
        for arg, function in (
            ("retry_if_result", retry_if_result),
            ("retry_after", retry_after),
            ("retry_safe", retry_safe),
        ):
            check.optional_callable(arg, function)
        self.name = name
        self.max_attempts = max_attempts
        self.initial_delay = initial_delay
        self.max_delay = max_delay
        self.multiplier = multiplier
        self.jitter: Jitter = jitter
        self.deadline = deadline
        self.retry_after = retry_after
        self.retry_if_result = retry_if_result
        self.idempotent = idempotent
        self.retry_safe = retry_safe
        spec = check.exception_spec("retry_on", retry_on)
        if isinstance(spec, tuple):
            self._retry_classes: tuple[type[BaseException], ...] | None = spec
            self._retry_predicate: Callable[[BaseException], bool] | None = None
        else:
            self._retry_classes, self._retry_predicate = None, spec
        self._hooks: tuple[RetryHook, ...] = check.callables("on_retry", on_retry)
        self._clock = clock
        self._sleep = sleep
        self._async_sleep = async_sleep
        self._random = random
        self._mode: SpanMode | None = span_mode
        self._tracer = _otel.get_tracer(tracer_provider)
        slow = _inst.SlowPathInstruments(_otel.get_meter(meter_provider))
        self._attempts_counter = slow.counter(
            "otelres.retry.attempts", "{attempt}", "Retry attempts scheduled after a failure"
        )
        self._delay_histogram = slow.histogram(
            "otelres.retry.delay", "s", "Backoff waited before a retry attempt"
        )
        self._ok_first = 0
        self._ok_retried = 0
        self._failed_first = 0
        self._failed_retried = 0
        _RETRIES.add(self, meter_provider)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_settings(cls, name: str, settings: RetrySettings, **overrides: Any) -> Retry:
        """A retry with the values of a :class:`otelres.config.RetrySettings`; *overrides* win."""
        params: dict[str, Any] = {
            "max_attempts": settings.max_attempts,
            "initial_delay": settings.initial_delay_seconds,
            "max_delay": settings.max_delay_seconds,
            "multiplier": settings.multiplier,
            "jitter": settings.jitter,
            "deadline": settings.deadline_seconds,
        }
        params.update(overrides)
        return cls(name, **params)

    @classmethod
    def from_config(cls, name: str, **overrides: Any) -> Retry:
        """A retry for *name* as ``[resilience.retry.<name>]`` (or ``[resilience.retry]``) says."""
        from otelres import config

        return cls.from_settings(name, config.current().resilience.retry_for(name), **overrides)

    def stats(self) -> dict[str, int]:
        """Calls so far by outcome: the values published as ``otelres.retry.calls``."""
        return {
            "success_without_retry": self._ok_first,
            "success_with_retry": self._ok_retried,
            "failed_without_retry": self._failed_first,
            "failed_with_retry": self._failed_retried,
        }

    def __repr__(self) -> str:
        return (
            f"Retry({self.name!r}, max_attempts={self.max_attempts}, "
            f"initial_delay={self.initial_delay}, max_delay={self.max_delay}, "
            f"jitter={self.jitter!r}, deadline={self.deadline})"
        )

    # ------------------------------------------------------------------ public calls
    @overload
    def __call__(
        self, fn: Callable[..., Coroutine[Any, Any, T]]
    ) -> Callable[..., Coroutine[Any, Any, T]]: ...
    @overload
    def __call__(self, fn: Callable[..., T]) -> Callable[..., T]: ...
    def __call__(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """Decorate a sync or async function so that every call goes through this retry."""
        return decorate(fn, self.call, self.call_async)

    def call(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """Call ``fn(*args, **kwargs)`` with retries; its result, or its last exception."""
        if self.deadline is not None or (self._mode or _otel._span_mode) == "always":
            slow: T = self._run(direct, fn, args, kwargs)
            return slow
        # The common case, inlined: one try and a counter bump when the first attempt succeeds.
        try:
            result = fn(*args, **kwargs)
        except Exception as exc:
            failed: T = self._loop(direct, fn, args, kwargs, 0.0, False, exc)
            return failed
        if type(result) is _COROUTINE:
            refuse_coroutine(result, fn, self)
        if self.retry_if_result is not None and self._result_rejected(result):
            rejected: T = self._loop(direct, fn, args, kwargs, 0.0, False, None, result)
            return rejected
        self._ok_first += 1
        return result

    async def call_async(self, fn: Callable[..., Awaitable[T]], /, *args: Any, **kwargs: Any) -> T:
        """Await ``fn(*args, **kwargs)`` with retries; its result, or its last exception."""
        if self.deadline is not None or (self._mode or _otel._span_mode) == "always":
            slow: T = await self._run_async(direct_async, fn, args, kwargs)
            return slow
        try:
            result = await fn(*args, **kwargs)
        except Exception as exc:
            failed: T = await self._loop_async(direct_async, fn, args, kwargs, 0.0, False, exc)
            return failed
        if self.retry_if_result is not None and self._result_rejected(result):
            rejected: T = await self._loop_async(direct_async, fn, args, kwargs, 0.0, False, None, result)
            return rejected
        self._ok_first += 1
        return result

    # ------------------------------------------------------------------ calls through a Policy
    def _run(
        self, invoke: Invoke, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        """One guarded call; ``invoke(fn, args, kwargs)`` runs one attempt (a Policy's inner layers)."""
        mode = self._mode or _otel._span_mode
        if mode == "always":
            with tel.guarded_span(self._tracer, "otelres.retry", {"retry.name": self.name}):
                return self._loop(invoke, fn, args, kwargs, self._start(), True)
        start = self._clock() if self.deadline is not None else 0.0
        try:
            result = invoke(fn, args, kwargs)
        except Exception as exc:
            return self._loop(invoke, fn, args, kwargs, start, False, exc)
        if self.retry_if_result is not None and self._result_rejected(result):
            return self._loop(invoke, fn, args, kwargs, start, False, None, result)
        self._ok_first += 1
        return result

    def _start(self) -> float:
        return self._clock() if self.deadline is not None else 0.0

    async def _run_async(
        self,
        invoke: Callable[..., Awaitable[Any]],
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        """The async twin of :meth:`_run` (both keep the first attempt's success path inline)."""
        mode = self._mode or _otel._span_mode
        if mode == "always":
            with tel.guarded_span(self._tracer, "otelres.retry", {"retry.name": self.name}):
                return await self._loop_async(invoke, fn, args, kwargs, self._start(), True)
        start = self._clock() if self.deadline is not None else 0.0
        try:
            result = await invoke(fn, args, kwargs)
        except Exception as exc:
            return await self._loop_async(invoke, fn, args, kwargs, start, False, exc)
        if self.retry_if_result is not None and self._result_rejected(result):
            return await self._loop_async(invoke, fn, args, kwargs, start, False, None, result)
        self._ok_first += 1
        return result

    # ------------------------------------------------------------------ engine and drivers
    # The retry logic (decisions, spans, telemetry, hooks) lives once, in the generator
    # _engine. It yields what it needs done and is sent the answer:
    #   None           -> run the next attempt; send (exception or None, result)
    #   BaseException  -> ask retry_safe about that failure; send True / False
    #   float (> 0)    -> sleep that many seconds; send None
    # and returns (exception or None, result), the call's final outcome. The sync driver
    # _loop and the async driver _loop_async only carry out those three steps.

    def _loop(
        self,
        invoke: Invoke,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        start: float,
        span_every_attempt: bool,
        exc: BaseException | None = None,
        result: Any = _NO_RESULT,
    ) -> Any:
        """Retry after the first attempt's outcome (*exc* or *result*) until success or giving up.

        With *span_every_attempt* (span mode ``always``) the first attempt has not run yet
        and runs here, in its own span like every other attempt. Drives :meth:`_engine`
        synchronously.
        """
        engine = self._engine(args, kwargs, start, span_every_attempt, exc, result)
        reply: Any = None
        while True:
            try:
                step = engine.send(reply)
            except StopIteration as done:
                exc, result = done.value
                break
            try:
                if step is None:
                    reply = _once(invoke, fn, args, kwargs)
                elif isinstance(step, BaseException):
                    reply = self._safe_sync(step)
                else:
                    reply = self._sleep(step)
            except BaseException as error:
                # Into the engine, so that an attempt span open around it sees it and ends.
                engine.throw(error)
                raise
        # Raised here, outside the engine: a StopIteration must not become a RuntimeError.
        if exc is not None:
            raise exc
        return result

    async def _loop_async(
        self,
        invoke: Callable[..., Awaitable[Any]],
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        start: float,
        span_every_attempt: bool,
        exc: BaseException | None = None,
        result: Any = _NO_RESULT,
    ) -> Any:
        """The async driver of :meth:`_engine`, as :meth:`_loop`; ``retry_safe`` may be awaited."""
        engine = self._engine(args, kwargs, start, span_every_attempt, exc, result)
        reply: Any = None
        while True:
            try:
                step = engine.send(reply)
            except StopIteration as done:
                exc, result = done.value
                break
            try:
                if step is None:
                    reply = await _once_async(invoke, fn, args, kwargs)
                elif isinstance(step, BaseException):
                    reply = await self._safe_async(step)
                else:
                    reply = await self._async_sleep(step)
            except BaseException as error:
                engine.throw(error)
                raise
        if exc is not None:
            raise exc
        return result

    def _engine(
        self,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        start: float,
        span_every_attempt: bool,
        exc: BaseException | None,
        result: Any,
    ) -> _Engine[tuple[BaseException | None, Any]]:
        """The retry loop after the first attempt's outcome, as steps for a driver (see above)."""
        attempt = 1
        previous = self.initial_delay
        if span_every_attempt:
            exc, result, delay = yield from self._attempt(attempt, start, previous)
        else:
            delay = yield from self._decide(attempt, exc, result, start, previous, judged=True)
        waited = 0.0
        while True:
            if delay is None:
                return self._failed(attempt, exc, result)
            if delay < 0:
                return self._succeeded(attempt, result)
            self._before_retry(attempt, delay, waited, exc, result, args, kwargs)
            if delay > 0:
                yield delay
            waited += delay
            previous = max(delay, self.initial_delay)
            attempt += 1
            exc, result, delay = yield from self._attempt(attempt, start, previous)

    def _attempt(
        self, attempt: int, start: float, previous: float
    ) -> _Engine[tuple[BaseException | None, Any, float | None]]:
        """Run attempt number *attempt* in its own child span and decide what follows (see
        :meth:`_decide`) before that span ends: the span is ERROR only when its exception is
        the one the caller gets. No span when spans are off or no recording span is active
        (an attempt span is a child: without a parent it would be a trace of its own)."""
        if tel.recording_span(self._mode) is None:
            exc, result = yield None
            return exc, result, (yield from self._decide(attempt, exc, result, start, previous))
        attrs: dict[str, AttributeValue] = {"retry.name": self.name, "retry.attempt": attempt}
        outermost = not tel.INSIDE_GUARD.get()
        with tel.guarded_span(self._tracer, "otelres.retry.attempt", attrs) as span:
            exc, result = yield None
            delay = yield from self._decide(attempt, exc, result, start, previous)
            if exc is not None:
                tel.record_error(span, exc, outermost and delay is None)
        return exc, result, delay

    def _decide(
        self,
        attempt: int,
        exc: BaseException | None,
        result: Any,
        start: float,
        previous: float,
        judged: bool = False,
    ) -> _Engine[float | None]:
        """After attempt *attempt*: -1.0 if it succeeded, None to give up, else the wait
        before the next one. *judged*: the outcome is already known to be a failure."""
        if not judged and exc is None and not self._result_rejected(result):
            return _SUCCEEDED
        delay = self._next_delay(attempt, exc, start, previous)
        if delay is not None and exc is not None and not self.idempotent and not (yield exc):
            return None
        return delay

    def _safe_verdict(self, exc: BaseException) -> object:
        """``retry_safe``'s answer for *exc* (maybe an awaitable); False when it raised."""
        if isinstance(exc, RateLimitExceededError):
            return True
        if self.retry_safe is None:
            return False
        try:
            return self.retry_safe(exc)
        except Exception:
            self._log_unsafe()
            return False

    def _log_unsafe(self) -> None:
        """Log the exception a ``retry_safe`` check raised (the call is then not retried)."""
        _log.exception("otelres: retry_safe check of retry %r raised; not retrying", self.name)

    def _safe_sync(self, exc: BaseException) -> bool:
        """Whether a non-idempotent call may be sent again after *exc* (sync ``retry_safe``)."""
        verdict = self._safe_verdict(exc)
        if inspect.isawaitable(verdict):
            _log.error(
                "otelres: retry %r: retry_safe returned an awaitable in a sync call; not retrying",
                self.name,
            )
            close = getattr(verdict, "close", None)
            if close is not None:
                close()
            return False
        return bool(verdict)

    async def _safe_async(self, exc: BaseException) -> bool:
        """Whether a non-idempotent call may be sent again after *exc*; awaits an async check."""
        verdict = self._safe_verdict(exc)
        if inspect.isawaitable(verdict):
            try:
                verdict = await verdict
            except Exception:
                self._log_unsafe()
                return False
        return bool(verdict)

    # ------------------------------------------------------------------ shared decisions
    def _result_rejected(self, result: Any) -> bool:
        """Whether ``retry_if_result`` calls *result* a failure (False without a predicate)."""
        if self.retry_if_result is None:
            return False
        try:
            return bool(self.retry_if_result(result))
        except Exception:
            _log.exception("otelres: retry_if_result of retry %r raised; result accepted", self.name)
            return False

    def _wants(self, exc: BaseException) -> bool:
        """Whether ``retry_on`` covers *exc*; a breaker rejection never is."""
        if isinstance(exc, (BreakerRejection, GuardMisuseError)):
            return False
        if self._retry_classes is not None:
            return isinstance(exc, self._retry_classes)
        assert self._retry_predicate is not None
        try:
            return bool(self._retry_predicate(exc))
        except Exception:
            _log.exception("otelres: retry_on of retry %r raised; not retrying", self.name)
            return False

    def _next_delay(
        self,
        attempt: int,
        exc: BaseException | None,
        start: float,
        previous: float,
    ) -> float | None:
        """The wait before attempt ``attempt + 1`` after a failure, or None: do not retry.

        *exc* is the failed attempt's exception, or None when its result was rejected.
        """
        if attempt >= self.max_attempts:
            return None
        if exc is not None and not self._wants(exc):
            return None
        delay = self._backoff(attempt, previous)
        if exc is not None and self.retry_after is not None:
            try:
                asked = _seconds(self.retry_after(exc))
            except Exception:
                _log.exception(
                    "otelres: retry_after of retry %r raised or gave no number of seconds; ignored",
                    self.name,
                )
                asked = None
            if asked is not None:
                if asked > self.max_delay:
                    return None
                delay = max(delay, float(asked))
        if _no_backoff_depth:
            delay = 0.0
        if self.deadline is not None and self._clock() + delay > start + self.deadline:
            return None
        return delay

    def _backoff(self, attempt: int, previous: float) -> float:
        """The jittered wait before retry number *attempt* (1 for the first retry)."""
        if self.jitter == "decorrelated":
            low = self.initial_delay
            high = max(low, previous * 3)
            return min(self.max_delay, low + (high - low) * self._random())
        ceiling = min(self.max_delay, self.initial_delay * self.multiplier ** (attempt - 1))
        if self.jitter == "full":
            return ceiling * self._random()
        return ceiling

    def _before_retry(
        self,
        attempt: int,
        delay: float,
        waited: float,
        exc: BaseException | None,
        result: Any,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> None:
        """Record a scheduled retry: counter, histogram, span event, then the user's hooks."""
        kind = "_OTHER" if exc is None else tel.error_type(exc)
        attrs = {"retry.name": self.name, "error.type": kind}
        _inst.add(self._attempts_counter, 1, attrs)
        _inst.observe(self._delay_histogram, delay, attrs)
        span = tel.recording_span(self._mode)
        if span is not None:
            try:
                span.add_event(
                    "otelres.retry",
                    {**attrs, "retry.attempt": attempt + 1, "retry.delay": delay},
                )
            except Exception:
                _log.debug("otelres: adding a retry event failed", exc_info=True)
        if self._hooks:
            details = RetryDetails(
                self.name,
                attempt + 1,
                delay,
                waited,
                exc,
                None if result is _NO_RESULT else result,
                args,
                kwargs,
            )
            for hook in self._hooks:
                _otel.call_hook(hook, details, what=f"on_retry hook of retry {self.name!r}")

    def _succeeded(self, attempt: int, result: Any) -> tuple[None, Any]:
        """Count a call that succeeded, with or without retries; its outcome for the driver."""
        if attempt > 1:
            self._ok_retried += 1
        else:
            self._ok_first += 1
        return None, result

    def _failed(
        self, attempt: int, exc: BaseException | None, result: Any
    ) -> tuple[BaseException | None, Any]:
        """Count a call that failed for good; its outcome (the driver re-raises *exc*, or
        returns the last *result*)."""
        if attempt > 1:
            self._failed_retried += 1
        else:
            self._failed_first += 1
        return exc, result
