"""Fallback: answer something useful when a guarded call fails.

::

    from otelres.resilience import Fallback

    # the last good ticker for the same symbol if it is at most 30 s old, else a placeholder
    ticker_fallback = Fallback("ticker", last_good=True, max_age=30.0,
                               then=Fallback("ticker_default", value=None))

    @ticker_fallback
    def fetch_ticker(symbol): ...

A fallback has one strategy: a static ``value``, a ``handler`` called with the exception,
or the ``last_good`` result of the same function with the same arguments. When the
strategy has nothing to give (no last good result yet, too old, the handler raised) the
next fallback of the ``then=`` chain is asked; when none can answer, the original
exception is re-raised unchanged.

Only ``Exception`` subclasses listed in ``on`` are handled: ``KeyboardInterrupt``,
``SystemExit`` and ``asyncio.CancelledError`` always pass through.
"""

from __future__ import annotations

import inspect
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar, cast

from otelres import _otel
from otelres.resilience import _instruments as _inst
from otelres.resilience import _telemetry as tel
from otelres.resilience._calls import decorate, direct, direct_async, refuse_coroutine
from otelres.resilience._checks import Checker
from otelres.resilience._errors import GuardMisuseError

if TYPE_CHECKING:
    from opentelemetry.metrics import MeterProvider

    from otelres._otel import SpanMode

__all__ = ["Fallback"]

_log = logging.getLogger("otelres")

T = TypeVar("T")
KeyFunction = Callable[[Callable[..., Any], tuple[Any, ...], dict[str, Any]], Hashable]
_UNSET: Any = object()


class _Nothing(Exception):
    """A strategy had nothing to offer (internal: never escapes this module)."""


def default_key(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Hashable:
    """The cache key of a call for ``last_good``: the function and its arguments."""
    return (fn, args, tuple(sorted(kwargs.items())) if kwargs else ())


class Fallback:
    """Turns a failed call into a fallback answer, for sync and async functions.

    Exactly one of ``value``, ``handler`` and ``last_good=True`` must be given.

    ``value``
        Returned as is when the call fails.
    ``handler``
        Called with the exception; its return value is the answer. In ``call_async``
        it may be a coroutine function. If it raises, the next fallback is asked.
    ``last_good``, ``max_age``, ``key``, ``max_entries``
        Remember the latest successful result per call (``key(fn, args, kwargs)``,
        default: the function and its arguments, which must be hashable to be
        remembered) and answer with it when it is at most ``max_age`` seconds old (None:
        any age). At most ``max_entries`` results are kept, least recently stored first out.
    ``on``
        Exception classes that trigger the fallback (default ``(Exception,)``).
    ``then``
        The next fallback to ask when this one has no answer.
    ``clock``
        Seconds for ``max_age`` (monotonic by default; a ``FakeClock`` in tests).

    Every fallback taken is counted in ``otelres.fallbacks`` (``fallback.name``,
    ``error.type``) and becomes an ``otelres.fallback`` event on the active span.
    """

    __slots__ = (
        "__weakref__",
        "_cache",
        "_chain_keepers",
        "_clock",
        "_counter",
        "_handler",
        "_key",
        "_lock",
        "_max_entries",
        "_mode",
        "_value",
        "last_good",
        "max_age",
        "name",
        "on",
        "then",
    )

    def __init__(
        self,
        name: str,
        *,
        value: Any = _UNSET,
        handler: Callable[[Exception], Any] | None = None,
        last_good: bool = False,
        max_age: float | None = None,
        key: KeyFunction = default_key,
        max_entries: int = 1024,
        on: type[Exception] | tuple[type[Exception], ...] = (Exception,),
        then: Fallback | None = None,
        clock: Callable[[], float] = time.monotonic,
        span_mode: SpanMode | None = None,
        meter_provider: MeterProvider | None = None,
    ) -> None:
        check = Checker("Fallback", name)
        given = [value is not _UNSET, handler is not None, bool(last_good)]
        if sum(given) != 1:
            raise ValueError(f"Fallback {name!r}: give exactly one of value=, handler= or last_good=True")
        check.optional_callable("handler", handler)
        check.optional_callable("key", key)
        max_age = check.optional_number("max_age", max_age, None)
        check.integer("max_entries", max_entries, 1, 1)
        if then is not None and not isinstance(then, Fallback):
            raise TypeError(f"Fallback {name!r}: then= must be another Fallback, got {then!r}")
        # BaseException subclasses like CancelledError always pass through: on= takes Exceptions.
        spec = check.exception_spec("on=", on, Exception)
        if not isinstance(spec, tuple):
            raise TypeError(f"Fallback {name!r}: on= takes Exception subclasses, got {on!r}")
        classes = cast("tuple[type[Exception], ...]", spec)
        self.name = name
        self._value = value
        self._handler = handler
        self.last_good = bool(last_good)
        self.max_age = max_age
        self._key = key
        self._max_entries = max_entries
        self.on: tuple[type[Exception], ...] = classes
        self.then = then
        self._clock = clock
        self._mode: SpanMode | None = span_mode
        self._cache: OrderedDict[Hashable, tuple[float, Any]] = OrderedDict()
        self._lock = threading.Lock()
        self._counter = _inst.SlowPathInstruments(_otel.get_meter(meter_provider)).counter(
            "otelres.fallbacks", "{fallback}", "Failed calls answered by a fallback"
        )
        keepers: list[Fallback] = []
        seen: set[int] = set()
        node: Fallback | None = self
        while node is not None and id(node) not in seen:
            seen.add(id(node))
            if node.last_good:
                keepers.append(node)
            node = node.then
        self._chain_keepers: tuple[Fallback, ...] = tuple(keepers)

    def __repr__(self) -> str:
        kind = "last_good" if self.last_good else "handler" if self._handler else "value"
        return f"Fallback({self.name!r}, {kind}, then={self.then!r})"

    # ------------------------------------------------------------------ public calls
    def __call__(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """Decorate a sync or async function with this fallback chain."""
        return decorate(fn, self.call, self.call_async)

    def call(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """``fn(*args, **kwargs)``, or the chain's fallback answer if it raises.

        A coroutine function needs :meth:`call_async`: ``call`` raises ``TypeError`` for it.
        """
        return cast(T, self._run(direct, fn, args, kwargs))

    async def call_async(self, fn: Callable[..., Awaitable[T]], /, *args: Any, **kwargs: Any) -> T:
        """``await fn(*args, **kwargs)``, or the chain's fallback answer if it raises."""
        return cast(T, await self._run_async(direct_async, fn, args, kwargs))

    # ------------------------------------------------------------------ engine
    def _run(
        self,
        invoke: Callable[..., Any],
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        """One guarded call; ``invoke(fn, args, kwargs)`` runs it (a Policy's inner layers).

        Spans made below a fallback never turn ERROR: what fails there may still be answered.
        """
        inside = tel.INSIDE_GUARD.set(True)
        try:
            result = invoke(fn, args, kwargs)
        except Exception as exc:
            failure: Exception | None = exc
        else:
            failure = None
        finally:
            tel.INSIDE_GUARD.reset(inside)
        if failure is not None:
            return self._answer(failure, fn, args, kwargs)
        refuse_coroutine(result, fn, self)  # outside the try: a fallback must not answer it
        if self._chain_keepers:
            self._remember(fn, args, kwargs, result)
        return result

    async def _run_async(
        self,
        invoke: Callable[..., Awaitable[Any]],
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        """The async twin of :meth:`_run`."""
        inside = tel.INSIDE_GUARD.set(True)
        try:
            result = await invoke(fn, args, kwargs)
        except Exception as exc:
            failure: Exception | None = exc
        else:
            failure = None
        finally:
            tel.INSIDE_GUARD.reset(inside)
        if failure is not None:
            return await self._answer_async(failure, fn, args, kwargs)
        if self._chain_keepers:
            self._remember(fn, args, kwargs, result)
        return result

    def _remember(
        self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], result: Any
    ) -> None:
        """Store *result* as this call's last good answer in each ``last_good`` fallback of the chain."""
        now = self._clock()
        for keeper in self._chain_keepers:
            try:
                key = keeper._key(fn, args, kwargs)
                with keeper._lock:
                    keeper._cache[key] = (now, result)
                    keeper._cache.move_to_end(key)
                    if len(keeper._cache) > keeper._max_entries:
                        keeper._cache.popitem(last=False)
            except TypeError:  # unhashable arguments: this call cannot be remembered
                continue
            except Exception:  # a broken key function must not cost the caller its result
                _log.exception("otelres: key function of fallback %r raised", keeper.name)
                continue

    def _offer(
        self, exc: Exception, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        """This fallback's own answer; raises _Nothing when it has none."""
        if self._handler is not None:
            try:
                return self._handler(exc)
            except Exception:
                _log.exception("otelres: handler of fallback %r raised", self.name)
                raise _Nothing from None
        if self.last_good:
            try:
                key = self._key(fn, args, kwargs)
                with self._lock:
                    entry = self._cache.get(key)
            except TypeError:  # unhashable arguments: nothing was remembered
                entry = None
            except Exception:
                _log.exception("otelres: key function of fallback %r raised", self.name)
                entry = None
            if entry is None:
                raise _Nothing
            stored_at, result = entry
            if self.max_age is not None and self._clock() - stored_at > self.max_age:
                raise _Nothing
            return result
        return self._value

    def _candidates(self, exc: Exception) -> Iterator[Fallback]:
        """The fallbacks of the chain, in order, whose ``on`` covers *exc* (each once)."""
        seen: set[int] = set()
        node: Fallback | None = self
        while node is not None and id(node) not in seen:
            seen.add(id(node))
            if isinstance(exc, node.on) and not isinstance(exc, GuardMisuseError):
                yield node
            node = node.then

    def _answer(
        self,
        exc: Exception,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        """Walk the chain for an answer to *exc*; re-raise *exc* when nobody has one."""
        for node in self._candidates(exc):
            try:
                answer = node._offer(exc, fn, args, kwargs)
            except _Nothing:
                continue
            if inspect.isawaitable(answer):
                _close(answer)
                _log.error(
                    "otelres: fallback %r: an async handler cannot answer a sync call", node.name
                )
                continue
            node._taken(exc)
            return answer
        raise exc

    async def _answer_async(
        self, exc: Exception, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        """The async twin of :meth:`_answer`: a handler may be a coroutine function."""
        for node in self._candidates(exc):
            try:
                answer = node._offer(exc, fn, args, kwargs)
                if inspect.isawaitable(answer):
                    answer = await answer
            except _Nothing:
                continue
            except Exception:
                _log.exception("otelres: handler of fallback %r raised", node.name)
                continue
            node._taken(exc)
            return answer
        raise exc

    def _taken(self, exc: Exception) -> None:
        """Count a fallback answer and add the ``otelres.fallback`` span event."""
        attrs = {"fallback.name": self.name, "error.type": tel.error_type(exc)}
        _inst.add(self._counter, 1, attrs)
        tel.add_event("otelres.fallback", attrs, mode=self._mode)


def _close(awaitable: Any) -> None:
    close = getattr(awaitable, "close", None)
    if close is not None:
        close()
