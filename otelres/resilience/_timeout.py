"""Timeout: stop waiting for a call that takes too long.

::

    from otelres.resilience import Timeout

    @Timeout("kraken", 5.0)
    async def fetch_ticker(symbol): ...

When the time is up the caller gets :class:`~otelres.resilience.CallTimeoutError`, a
subclass of the builtin ``TimeoutError``. A circuit breaker placed around the timeout (as
:class:`~otelres.resilience.Policy` does) counts it as a failure.

**Async functions** are cancelled: the coroutine receives ``asyncio.CancelledError`` at
its current ``await``, runs its ``finally`` blocks, and the caller gets the timeout error
once the cancellation has finished. A coroutine that swallows the cancellation keeps the
caller waiting, as with ``asyncio.timeout``.

**Sync functions** cannot be interrupted safely in Python. The call runs in a worker
thread of this timeout's own pool and the *caller* stops waiting after ``seconds``; the
work itself is **not** killed: it runs to completion in the background, and its result or
exception is discarded (an exception is logged at DEBUG). Use timeouts on sync functions
for calls that end by themselves (a socket with its own timeout), and keep the pool
(``max_workers``) large enough for the calls that may hang at once: when every worker is
busy, new calls wait for one and may time out without having started. The caller's
context (the active span, context variables) is copied into the worker.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import inspect
import logging
import sys
import threading
import weakref
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar, cast

from otelres import _otel
from otelres.resilience import _instruments as _inst
from otelres.resilience import _telemetry as tel
from otelres.resilience._calls import decorate, direct
from otelres.resilience._checks import Checker
from otelres.resilience._errors import CallTimeoutError, GuardMisuseError

if TYPE_CHECKING:
    from opentelemetry.metrics import MeterProvider

    from otelres._otel import SpanMode

__all__ = ["Timeout"]

_log = logging.getLogger("otelres")

T = TypeVar("T")


class Timeout:
    """Limits how long the caller waits for a call: *seconds* per call.

    ``max_workers`` sizes the thread pool that runs sync calls (created on the first
    sync call, threads named ``otelres-timeout-<name>``). Timeouts are counted in
    ``otelres.timeouts`` (``timeout.name``, ``error.type``) and become an
    ``otelres.timeout`` event on the active span.
    """

    __slots__ = (
        "__weakref__",
        "_counter",
        "_executor",
        "_lock",
        "_mode",
        "max_workers",
        "name",
        "seconds",
    )

    def __init__(
        self,
        name: str,
        seconds: float,
        *,
        max_workers: int = 32,
        span_mode: SpanMode | None = None,
        meter_provider: MeterProvider | None = None,
    ) -> None:
        check = Checker("Timeout", name)
        seconds = check.positive("seconds", seconds)
        check.integer("max_workers", max_workers, 1, 1)
        self.name = name
        self.seconds = float(seconds)
        self.max_workers = max_workers
        self._mode: SpanMode | None = span_mode
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        self._counter = _inst.SlowPathInstruments(_otel.get_meter(meter_provider)).counter(
            "otelres.timeouts", "{timeout}", "Calls whose caller stopped waiting at the timeout"
        )

    def __repr__(self) -> str:
        return f"Timeout({self.name!r}, {self.seconds})"

    # ------------------------------------------------------------------ public calls
    def __call__(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """Decorate a sync or async function with this timeout."""
        return decorate(fn, self.call, self.call_async)

    def call(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """Run ``fn(*args, **kwargs)`` in a worker thread; wait at most ``seconds`` for it.

        Raises :class:`CallTimeoutError` when the time is up (the work goes on in the
        background); otherwise returns its result or raises its exception.
        """
        if inspect.iscoroutinefunction(fn):
            raise GuardMisuseError(
                f"Timeout({self.name!r}).call() got a coroutine function {fn.__qualname__}: "
                "use await .call_async() (or decorate the async function) to guard it"
            )
        context = contextvars.copy_context()
        future = self._pool().submit(context.run, direct, fn, args, kwargs)
        try:
            result: T = future.result(self.seconds)
            return result
        except concurrent.futures.TimeoutError:
            # A call that never started is cancelled; one that runs goes on in the background.
            if not future.cancel():
                future.add_done_callback(self._discard)
            raise self._expired() from None

    async def call_async(self, fn: Callable[..., Awaitable[T]], /, *args: Any, **kwargs: Any) -> T:
        """Await ``fn(*args, **kwargs)``; cancel it and raise :class:`CallTimeoutError` after ``seconds``."""
        return cast(T, await self._run_async(fn, args, kwargs))

    # ------------------------------------------------------------------ engine
    if sys.version_info >= (3, 11):

        async def _run_async(
            self, fn: Callable[..., Awaitable[Any]], args: tuple[Any, ...], kwargs: dict[str, Any]
        ) -> Any:
            timer = asyncio.timeout(self.seconds)
            try:
                async with timer:
                    return await fn(*args, **kwargs)
            except TimeoutError:
                if timer.expired():
                    raise self._expired() from None
                raise

    else:  # pragma: no cover - Python 3.10

        async def _run_async(
            self, fn: Callable[..., Awaitable[Any]], args: tuple[Any, ...], kwargs: dict[str, Any]
        ) -> Any:
            try:
                return await asyncio.wait_for(fn(*args, **kwargs), self.seconds)
            except asyncio.TimeoutError:
                raise self._expired() from None

    def _pool(self) -> concurrent.futures.ThreadPoolExecutor:
        executor = self._executor
        if executor is None:
            with self._lock:
                executor = self._executor
                if executor is None:
                    executor = concurrent.futures.ThreadPoolExecutor(
                        self.max_workers, thread_name_prefix=f"otelres-timeout-{self.name}"
                    )
                    self._executor = executor
                    # Idle workers of a timeout nobody uses any more are let go with it.
                    weakref.finalize(self, executor.shutdown, wait=False)
        return executor

    def shutdown(self, wait: bool = False) -> None:
        """Release the worker threads of sync calls (they finish their current work first)."""
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=wait)

    def _expired(self) -> CallTimeoutError:
        error = CallTimeoutError(self.name, self.seconds)
        attrs = {"timeout.name": self.name, "error.type": tel.error_type(error)}
        _inst.add(self._counter, 1, attrs)
        tel.add_event("otelres.timeout", {**attrs, "timeout.seconds": self.seconds}, mode=self._mode)
        return error

    def _discard(self, future: concurrent.futures.Future[Any]) -> None:
        if not future.cancelled() and future.exception() is not None:
            _log.debug(
                "otelres: call abandoned by timeout %r later raised %s",
                self.name,
                tel.error_type(cast(BaseException, future.exception())),
            )
