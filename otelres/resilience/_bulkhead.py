"""Bulkhead: cap how many calls to one dependency run at once.

::

    from otelres.resilience import Bulkhead

    orders = Bulkhead("orders", max_concurrent=4, max_queue=16, queue_timeout=2.0)

    @orders
    async def create_order(...): ...

At most ``max_concurrent`` calls run at a time; up to ``max_queue`` more wait for a slot
(at most ``queue_timeout`` seconds, None: as long as it takes); anything beyond is refused
at once with :class:`~otelres.resilience.BulkheadFullError`. A slow dependency thus
holds a bounded number of threads or tasks instead of all of them.

Sync (threads) and async (tasks) callers share the same slots. Async waiters are served
first come, first served; a waiter that is cancelled or times out leaves the queue, and a
slot handed to it at that moment is passed on, never lost.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

from opentelemetry.metrics import CallbackOptions, Observation

from otelres import _otel
from otelres.resilience import _instruments as _inst
from otelres.resilience import _telemetry as tel
from otelres.resilience._calls import decorate, refuse_coroutine
from otelres.resilience._checks import Checker
from otelres.resilience._errors import BulkheadFullError

if TYPE_CHECKING:
    from opentelemetry.metrics import Meter, MeterProvider

    from otelres._otel import SpanMode
    from otelres.config import BulkheadSettings

__all__ = ["Bulkhead"]

T = TypeVar("T")


def _install(meter: Meter, live: Callable[[], list[Bulkhead]]) -> None:
    def gauge(attr: str, name: str) -> Callable[[CallbackOptions], Iterator[Observation]]:
        return _inst.summed_by_name(name, live, "bulkhead.name", [(attr, {})])

    meter.create_observable_gauge(
        "otelres.bulkhead.in_flight",
        [gauge("_active", "otelres.bulkhead.in_flight")],
        unit="{call}",
        description="Calls running inside a bulkhead",
    )
    meter.create_observable_gauge(
        "otelres.bulkhead.limit",
        [gauge("max_concurrent", "otelres.bulkhead.limit")],
        unit="{call}",
        description="Most calls a bulkhead lets run at once",
    )
    meter.create_observable_counter(
        "otelres.bulkhead.rejections",
        [gauge("_rejections", "otelres.bulkhead.rejections")],
        unit="{call}",
        description="Calls a bulkhead refused (queue full or queue timeout)",
    )


_BULKHEADS: _otel.ObservedSet[Bulkhead] = _otel.ObservedSet(_install)


class Bulkhead:
    """At most ``max_concurrent`` calls at once, ``max_queue`` more waiting, the rest refused.

    ``queue_timeout`` bounds the wait in the queue (None: no bound); a waiter that runs
    out of time gets :class:`BulkheadFullError` too. ``clock`` is used for that bound.
    Published as ``otelres.bulkhead.in_flight`` / ``.limit`` gauges and the
    ``otelres.bulkhead.rejections`` counter; a rejection is an ``otelres.bulkhead.rejected``
    event on the active span.
    """

    __slots__ = (
        "__weakref__",
        "_active",
        "_async_waiters",
        "_clock",
        "_cond",
        "_lock",
        "_mode",
        "_rejections",
        "_sync_grants",
        "_sync_waiting",
        "max_concurrent",
        "max_queue",
        "name",
        "queue_timeout",
    )

    def __init__(
        self,
        name: str,
        *,
        max_concurrent: int = 10,
        max_queue: int = 0,
        queue_timeout: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        span_mode: SpanMode | None = None,
        meter_provider: MeterProvider | None = None,
    ) -> None:
        check = Checker("Bulkhead", name)
        check.integer("max_concurrent", max_concurrent, 1, 1)
        check.integer("max_queue", max_queue, 0, 0)
        queue_timeout = check.optional_number("queue_timeout", queue_timeout, None)
        self.name = name
        self.max_concurrent = max_concurrent
        self.max_queue = max_queue
        self.queue_timeout = queue_timeout
        self._clock = clock
        self._mode: SpanMode | None = span_mode
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._active = 0
        self._sync_waiting = 0
        self._sync_grants = 0
        self._async_waiters: deque[asyncio.Future[None]] = deque()
        self._rejections = 0
        _BULKHEADS.add(self, meter_provider)

    @classmethod
    def from_settings(cls, name: str, settings: BulkheadSettings, **overrides: Any) -> Bulkhead:
        """A bulkhead with the values of ``[resilience.bulkheads.<name>]``; *overrides* win."""
        params: dict[str, Any] = {
            "max_concurrent": settings.max_concurrent,
            "max_queue": settings.max_queue,
            "queue_timeout": settings.queue_timeout_seconds,
        }
        params.update(overrides)
        return cls(name, **params)

    @property
    def in_flight(self) -> int:
        """Calls running now."""
        return self._active

    @property
    def queued(self) -> int:
        """Callers waiting for a slot now."""
        return self._sync_waiting + len(self._async_waiters)

    def __repr__(self) -> str:
        return (
            f"Bulkhead({self.name!r}, max_concurrent={self.max_concurrent}, "
            f"max_queue={self.max_queue}, in_flight={self._active})"
        )

    # ------------------------------------------------------------------ public calls
    def __call__(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """Decorate a sync or async function with this bulkhead."""
        return decorate(fn, self.call, self.call_async)

    def call(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """Run ``fn(*args, **kwargs)`` in a slot, waiting in the queue if allowed."""
        self.acquire()
        try:
            result = fn(*args, **kwargs)
            refuse_coroutine(result, fn, self)
            return result
        finally:
            self.release()

    async def call_async(self, fn: Callable[..., Awaitable[T]], /, *args: Any, **kwargs: Any) -> T:
        """Await ``fn(*args, **kwargs)`` in a slot, waiting in the queue if allowed."""
        await self.acquire_async()
        try:
            return await fn(*args, **kwargs)
        finally:
            self.release()

    # ------------------------------------------------------------------ context managers
    def __enter__(self) -> Bulkhead:
        """``with bulkhead:`` holds a slot for the block (see :meth:`acquire`)."""
        self.acquire()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()

    async def __aenter__(self) -> Bulkhead:
        """``async with bulkhead:`` holds a slot for the block (see :meth:`acquire_async`)."""
        await self.acquire_async()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.release()

    # ------------------------------------------------------------------ slots
    def acquire(self) -> None:
        """Take a slot for the calling thread, or raise :class:`BulkheadFullError`.

        Pair every successful call with :meth:`release`.
        """
        with self._lock:
            if self._take_free_slot():
                return
            self._sync_waiting += 1
            try:
                deadline = None if self.queue_timeout is None else self._clock() + self.queue_timeout
                while self._sync_grants == 0:
                    remaining = None if deadline is None else deadline - self._clock()
                    if remaining is not None and remaining <= 0:
                        raise self._reject("queue_timeout")
                    self._cond.wait(remaining)
                self._sync_grants -= 1
            finally:
                self._sync_waiting -= 1
                if self._sync_grants > self._sync_waiting:
                    # A slot was handed to this thread as it left (KeyboardInterrupt in the
                    # wait): pass it on rather than lose it.
                    self._sync_grants -= 1
                    self._pass_slot_on()

    async def acquire_async(self) -> None:
        """Take a slot for the current task, or raise :class:`BulkheadFullError`.

        Pair every successful call with :meth:`release`.
        """
        with self._lock:
            if self._take_free_slot():
                return
            future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._async_waiters.append(future)
        try:
            if self.queue_timeout is None:
                await future
            else:
                await asyncio.wait_for(asyncio.shield(future), self.queue_timeout)
        except BaseException as exc:
            with self._lock:
                granted = future.done() and not future.cancelled()
                if not granted:
                    future.cancel()
                    try:
                        self._async_waiters.remove(future)
                    except ValueError:
                        pass
            if granted:
                self.release()
            if isinstance(exc, asyncio.TimeoutError):
                raise self._reject("queue_timeout") from None
            raise

    def release(self) -> None:
        """Give a slot back: it goes to the longest-waiting async caller, else a waiting thread."""
        with self._lock:
            self._pass_slot_on()

    def _pass_slot_on(self) -> None:
        """Under the lock: hand a freed slot to the next waiter, or free it."""
        while self._async_waiters:
            future = self._async_waiters.popleft()
            if self._grant(future):
                return
        if self._sync_waiting > self._sync_grants:
            self._sync_grants += 1
            self._cond.notify()
            return
        self._active -= 1

    # ------------------------------------------------------------------ internals
    def _take_free_slot(self) -> bool:
        """Under the lock: take a free slot (True) unless someone queues before us; False
        when the caller must queue; raise :class:`BulkheadFullError` when the queue is full."""
        if self._active < self.max_concurrent and not self._has_waiters():
            self._active += 1
            return True
        if self._sync_waiting + len(self._async_waiters) >= self.max_queue:
            raise self._reject("full")
        return False

    def _has_waiters(self) -> bool:
        """Whether any thread or task is queued (newcomers must not overtake them)."""
        return bool(self._sync_waiting or self._async_waiters)

    def _grant(self, future: asyncio.Future[None]) -> bool:
        """Hand the caller's slot to *future*'s task; False if that waiter is gone."""
        if future.done():
            return False
        loop = future.get_loop()
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            future.set_result(None)
            return True
        try:
            loop.call_soon_threadsafe(self._grant_later, future)
        except RuntimeError:  # its loop is closed
            return False
        return True

    def _grant_later(self, future: asyncio.Future[None]) -> None:
        """Hand-over scheduled from another thread, run on the waiter's own loop."""
        if future.done():  # cancelled before the hand-over arrived: pass the slot on
            self.release()
        else:
            future.set_result(None)

    def _reject(self, why: str) -> BulkheadFullError:
        """Count a refusal, add the span event, and build the error for the caller to raise."""
        self._rejections += 1
        tel.add_event(
            "otelres.bulkhead.rejected",
            {"bulkhead.name": self.name, "bulkhead.reason": why},
            mode=self._mode,
        )
        if why == "full":
            text = (
                f"bulkhead {self.name!r} is full: {self.max_concurrent} calls running, "
                f"{self.max_queue} queued"
            )
        else:
            text = f"bulkhead {self.name!r}: no slot within {self.queue_timeout:g} s"
        return BulkheadFullError(text, name=self.name)
