"""RateLimiter: a token bucket in front of an API with a request budget.

::

    from otelres.resilience import RateLimiter

    kraken = RateLimiter("kraken", rate=10, capacity=20)   # 10 calls/s, bursts of 20

    @kraken
    async def fetch_ticker(symbol): ...

    await kraken.acquire_async(cost=4)   # an endpoint that costs 4 units

The bucket holds ``capacity`` tokens and refills at ``rate`` tokens per second; a call
takes ``cost`` tokens (1 by default). When tokens are short the limiter either **waits**
until they are there (``mode="wait"``, at most ``max_wait`` seconds, then
:class:`RateLimitExceededError`) or **rejects** at once (``mode="reject"``). The error
carries ``retry_after``, which :class:`Retry` honours.

Async waiters are served first come, first served; a waiter that is cancelled leaves the
queue, takes no tokens, and the next one moves up. Sync waiters (threads) reserve their
tokens in arrival order and sleep until they exist. Tokens live in a
:class:`~otelres.resilience._rate_limiter_backend.TokenBucketBackend`: in this process by
default, in Redis to share one budget across processes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from opentelemetry.metrics import CallbackOptions, Observation

from otelres import _otel
from otelres.resilience import _instruments as _inst
from otelres.resilience import _telemetry as tel
from otelres.resilience._calls import COROUTINE as _COROUTINE
from otelres.resilience._calls import decorate, refuse_coroutine
from otelres.resilience._checks import Checker
from otelres.resilience._errors import RateLimitExceededError
from otelres.resilience._rate_limiter_backend import LocalTokenBucket, TokenBucketBackend

if TYPE_CHECKING:
    from opentelemetry.metrics import Meter, MeterProvider

    from otelres._otel import SpanMode

__all__ = [
    "BackendFactory",
    "LimiterMode",
    "LimiterStats",
    "RateLimiter",
    "all_limiters",
    "set_backend_factory",
]

_log = logging.getLogger("otelres")

T = TypeVar("T")
LimiterMode = Literal["wait", "reject"]


@dataclass(frozen=True, slots=True)
class LimiterStats:
    """A snapshot of one limiter: its bucket and what its callers got so far.

    ``acquired`` counts grants without waiting, ``waited`` grants after a wait,
    ``rejected`` refusals; ``waiting`` is the number of async callers queued right now.
    """

    name: str
    rate: float
    capacity: float
    available: float
    acquired: int
    waited: int
    rejected: int
    waiting: int


class _Waiter:
    """One queued async caller: its cost and the future set when it reaches the head."""

    __slots__ = ("cost", "future")

    def __init__(self, cost: float, future: asyncio.Future[None]) -> None:
        self.cost = cost
        self.future = future


def _wake(waiter: _Waiter) -> None:
    future = waiter.future
    if future.done():
        return
    try:
        loop = future.get_loop()
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            future.set_result(None)
        else:
            loop.call_soon_threadsafe(_set_pending, future)
    except RuntimeError:  # its loop is closed: nobody waits on it any more
        pass


def _set_pending(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _install(meter: Meter, live: Callable[[], list[RateLimiter]]) -> None:
    def available(options: CallbackOptions) -> Iterator[Observation]:
        tokens: dict[str, float] = {}
        for limiter in live():
            try:
                tokens[limiter.name] = limiter._backend.available()
            except Exception:
                _log.debug("otelres: reading the tokens of limiter %r failed", limiter.name, exc_info=True)
        return iter([Observation(value, {"limiter.name": name}) for name, value in tokens.items()])

    outcomes = (
        ("_acquired", {"limiter.outcome": "acquired"}),
        ("_waited", {"limiter.outcome": "waited"}),
        ("_rejected", {"limiter.outcome": "rejected"}),
    )
    meter.create_observable_counter(
        "otelres.limiter.acquisitions",
        [_inst.summed_by_name("otelres.limiter.acquisitions", live, "limiter.name", outcomes)],
        unit="{acquisition}",
        description="Token requests to a rate limiter, by outcome",
    )
    meter.create_observable_gauge(
        "otelres.limiter.available_tokens",
        [available],
        unit="{token}",
        description="Tokens in a rate limiter's bucket (negative while reserved by waiters)",
    )


_LIMITERS: _otel.ObservedSet[RateLimiter] = _otel.ObservedSet(_install)

BackendFactory = Callable[[str, float, float], TokenBucketBackend]
"""Builds the token bucket of a limiter from ``(name, rate, capacity)``."""

_backend_factory: BackendFactory | None = None


def set_backend_factory(factory: BackendFactory | None) -> None:
    """Make :meth:`RateLimiter.from_config` (and so ``policy(name)``) use *factory*'s buckets.

    ``otelres.resilience.use_redis()`` installs a factory of Redis buckets so that every
    configured limiter shares its budget across processes; None restores in-process buckets.
    Limiters built before the call keep their bucket.
    """
    global _backend_factory
    _backend_factory = factory


def all_limiters() -> list[RateLimiter]:
    """Every rate limiter alive in this process, in no particular order."""
    return _LIMITERS.live()


class RateLimiter:
    """A token-bucket rate limiter for sync and async callers.

    ``rate``
        Tokens added per second (the seed's ``[resilience.rate_limits]`` values).
    ``capacity``
        Most tokens the bucket holds: the largest burst, and the largest ``cost`` one
        call may ask for. Default: one second of rate, at least 1.
    ``start_full``
        True (default): the first ``capacity`` calls pass at once, as a client that was
        idle would expect. False: the bucket starts empty and fills at ``rate``, for a
        process that restarts while the server's own bucket may still be drained.
    ``mode``, ``max_wait``
        ``"wait"`` (default) sleeps until the tokens are there, but raises
        :class:`RateLimitExceededError` at once when that would take longer than
        ``max_wait`` seconds (None: wait as long as it takes). ``"reject"`` raises at once
        whenever tokens are short.
    ``backend``
        Where the tokens live (:class:`TokenBucketBackend`); default an in-process
        :class:`LocalTokenBucket`. When given, ``rate``/``capacity`` come from it.
    ``clock``, ``sleep``, ``async_sleep``
        Injectable for tests (``FakeClock`` and its ``sleep``/``async_sleep``).
    ``span_mode``, ``meter_provider``
        Telemetry: None follows the process-wide span mode / the global provider.
    """

    __slots__ = (
        "__weakref__",
        "_acquired",
        "_async_sleep",
        "_backend",
        "_capacity",
        "_clock",
        "_local",
        "_mode",
        "_rejected",
        "_rejects",
        "_sleep",
        "_wait_histogram",
        "_waited",
        "_waiters",
        "max_wait",
        "mode",
        "name",
        "rate",
    )

    def __init__(
        self,
        name: str,
        *,
        rate: float | None = None,
        capacity: float | None = None,
        start_full: bool = True,
        mode: LimiterMode = "wait",
        max_wait: float | None = None,
        backend: TokenBucketBackend | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], object] = time.sleep,
        async_sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
        span_mode: SpanMode | None = None,
        meter_provider: MeterProvider | None = None,
    ) -> None:
        check = Checker("RateLimiter", name)
        check.choice("mode", mode, ("wait", "reject"))
        if max_wait is not None:
            max_wait = check.at_least("max_wait", max_wait, 0.0)
        if rate is not None:
            rate = check.positive("rate", rate)
        if capacity is not None:
            capacity = check.positive("capacity", capacity)
        if backend is None:
            if rate is None:
                raise TypeError(f"RateLimiter {name!r}: pass rate= (tokens per second) or backend=")
            if capacity is None:
                capacity = max(1.0, float(rate))
            try:
                backend = LocalTokenBucket(rate, capacity, start_full=start_full, clock=clock)
            except ValueError as exc:
                raise ValueError(f"RateLimiter {name!r}: {exc}") from None
        else:
            for arg, given, actual in (
                ("rate", rate, backend.rate),
                ("capacity", capacity, backend.capacity),
            ):
                if given is not None and float(given) != float(actual):
                    raise ValueError(
                        f"RateLimiter {name!r}: {arg}={given!r} differs from the backend's {actual!r}"
                    )
        self.name = name
        self.rate = backend.rate
        self._capacity = backend.capacity
        self.mode: LimiterMode = mode
        self.max_wait = max_wait
        self._rejects = mode == "reject"
        self._backend = backend
        self._local = isinstance(backend, LocalTokenBucket)
        self._clock = clock
        self._sleep = sleep
        self._async_sleep = async_sleep
        self._mode: SpanMode | None = span_mode
        self._waiters: deque[_Waiter] = deque()
        self._wait_histogram = _inst.SlowPathInstruments(_otel.get_meter(meter_provider)).histogram(
            "otelres.limiter.wait.duration", "s", "Time callers waited for rate limiter tokens"
        )
        self._acquired = 0
        self._waited = 0
        self._rejected = 0
        _LIMITERS.add(self, meter_provider)

    @classmethod
    def from_config(cls, name: str, **overrides: Any) -> RateLimiter:
        """The limiter ``[resilience]`` describes for *name*; *overrides* win.

        Rate from ``rate_limits.<name>`` (or ``rate_limits.default``), capacity
        ``rate x rate_limit_burst_seconds``, ``rate_limit_mode`` and
        ``rate_limit_max_wait_seconds``; the bucket from the factory of
        :func:`set_backend_factory` when one is set (Redis). Raises ``LookupError`` when no
        rate is configured.
        """
        from otelres import config

        settings = config.current().resilience
        rate = settings.rate_limit(name)
        if rate is None and "rate" not in overrides and "backend" not in overrides:
            raise LookupError(
                f"no rate limit for {name!r}: add it (or 'default') to [resilience.rate_limits]"
            )
        params: dict[str, Any] = {
            "mode": settings.rate_limit_mode,
            "max_wait": settings.rate_limit_max_wait_seconds,
        }
        if "backend" not in overrides:
            r = float(overrides.get("rate", rate))  # type: ignore[arg-type]
            params["rate"] = r
            params["capacity"] = max(1.0, r * settings.rate_limit_burst_seconds)
            if _backend_factory is not None:
                capacity = float(overrides.get("capacity", params["capacity"]))
                params["backend"] = _backend_factory(name, r, capacity)
        params.update(overrides)
        return cls(name, **params)

    # ------------------------------------------------------------------ inspection
    @property
    def capacity(self) -> float:
        """Most tokens the bucket holds."""
        return self._capacity

    @property
    def backend(self) -> TokenBucketBackend:
        """The token bucket this limiter draws from."""
        return self._backend

    def available(self) -> float:
        """Tokens in the bucket now (negative while sleeping threads hold reservations)."""
        return self._backend.available()

    def stats(self) -> LimiterStats:
        """A snapshot of the bucket and the outcome counts.

        ``available`` is NaN when the backend cannot say (a shared store that is down).
        """
        try:
            available = self._backend.available()
        except Exception:
            available = float("nan")
        return LimiterStats(
            self.name,
            self.rate,
            self._capacity,
            available,
            self._acquired,
            self._waited,
            self._rejected,
            len(self._waiters),
        )

    def __repr__(self) -> str:
        return (
            f"RateLimiter({self.name!r}, rate={self.rate}, capacity={self._capacity}, "
            f"mode={self.mode!r}, max_wait={self.max_wait})"
        )

    # ------------------------------------------------------------------ sync
    def try_acquire(self, cost: float = 1.0) -> bool:
        """Take *cost* tokens if they are there now; never waits, never raises for lack of tokens."""
        self._check_cost(cost)
        if self._backend.try_acquire(cost) == 0.0:
            self._acquired += 1
            return True
        self._rejected += 1
        return False

    def acquire(self, cost: float = 1.0) -> float:
        """Take *cost* tokens, waiting (wait mode) for them; returns the seconds waited.

        Raises :class:`RateLimitExceededError` in reject mode when tokens are short, and
        in wait mode when the wait would exceed ``max_wait``. Thread-safe.
        """
        if not 0 < cost <= self._capacity:
            self._check_cost(cost)
        if self._rejects:
            wait = self._backend.try_acquire(cost)
            if wait == 0.0:
                self._acquired += 1
                return 0.0
            raise self._reject(cost, wait)
        wait_or_none = self._backend.reserve(cost, self.max_wait)
        if wait_or_none == 0.0:
            self._acquired += 1
            return 0.0
        if wait_or_none is None:
            raise self._reject(cost, None)
        try:
            self._sleep(wait_or_none)
        except BaseException:
            self._backend.refund(cost)
            raise
        self._after_wait(wait_or_none)
        return wait_or_none

    def call(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """Take one token (see :meth:`acquire`), then call ``fn(*args, **kwargs)``."""
        self.acquire(1.0)
        result = fn(*args, **kwargs)
        if type(result) is _COROUTINE:
            refuse_coroutine(result, fn, self)
        return result

    # ------------------------------------------------------------------ async
    async def acquire_async(self, cost: float = 1.0) -> float:
        """Take *cost* tokens without blocking the event loop; returns the seconds waited.

        Waiters are served in arrival order. Cancelling a waiting task removes it from
        the queue without taking tokens. Raises :class:`RateLimitExceededError` like
        :meth:`acquire`.

        With a shared backend (Redis) in wait mode, the caller *reserves* its tokens in the
        shared bucket and sleeps locally: the order of reservations is the order across all
        processes. A cancelled caller then refunds its tokens to the bucket.
        """
        if not 0 < cost <= self._capacity:
            self._check_cost(cost)
        if not self._local and not self._rejects:
            return await self._reserve_shared(cost)
        if not self._waiters:
            if self._local:
                wait = self._backend.try_acquire(cost)
            else:
                wait = await self._backend.try_acquire_async(cost)
            if wait == 0.0:
                self._acquired += 1
                return 0.0
            if self._rejects:
                raise self._reject(cost, wait)
            if self.max_wait is not None and wait > self.max_wait:
                raise self._reject(cost, wait)
        elif self._rejects:
            raise self._reject(cost, None)
        return await self._queue(cost)

    async def _reserve_shared(self, cost: float) -> float:
        """Wait mode on a shared backend: reserve in the shared bucket, sleep locally."""
        wait = await self._backend.reserve_async(cost, self.max_wait)
        if wait == 0.0:
            self._acquired += 1
            return 0.0
        if wait is None:
            raise self._reject(cost, None)
        try:
            await self._async_sleep(wait)
        except BaseException:
            try:
                self._backend.refund(cost)
            except Exception:
                _log.debug("otelres: limiter %r could not refund %g tokens", self.name, cost, exc_info=True)
            raise
        self._after_wait(wait)
        return wait

    def _take_now(self, cost: float) -> bool:
        """Take *cost* tokens if that needs no waiting and no I/O (an in-process bucket, no queue).

        The async fast path of a :class:`Policy`, which then skips creating a coroutine for
        :meth:`acquire_async`; False means "ask :meth:`acquire_async`" (nothing was counted).
        """
        if self._local and not self._waiters and self._backend.try_acquire(cost) == 0.0:
            self._acquired += 1
            return True
        return False

    async def call_async(self, fn: Callable[..., Awaitable[T]], /, *args: Any, **kwargs: Any) -> T:
        """Take one token (see :meth:`acquire_async`), then await ``fn(*args, **kwargs)``."""
        await self.acquire_async(1.0)
        return await fn(*args, **kwargs)

    async def _queue(self, cost: float) -> float:
        """Wait in the FIFO queue of async callers, then for the tokens; the seconds waited.

        Only the head of the queue asks the bucket; when it leaves (served, cancelled,
        timed out) it wakes the next one, so a cancelled waiter takes no tokens.
        """
        loop = asyncio.get_running_loop()
        start = self._clock()
        deadline = None if self.max_wait is None else start + self.max_wait
        if deadline is not None and self._local and self._waiters:
            ahead = sum(w.cost for w in self._waiters) + cost
            estimate = (ahead - self._backend.available()) / self.rate
            if estimate > self.max_wait:  # type: ignore[operator]
                raise self._reject(cost, estimate)
        waiter = _Waiter(cost, loop.create_future())
        self._waiters.append(waiter)
        try:
            if self._waiters[0] is not waiter:
                if deadline is None:
                    await waiter.future
                else:
                    try:
                        await asyncio.wait_for(waiter.future, max(0.0, deadline - self._clock()))
                    except asyncio.TimeoutError:
                        raise self._reject(cost, None) from None
            while True:
                if self._local:
                    wait = self._backend.try_acquire(cost)
                else:
                    wait = await self._backend.try_acquire_async(cost)
                if wait == 0.0:
                    break
                if deadline is not None and self._clock() + wait > deadline:
                    raise self._reject(cost, wait)
                await self._async_sleep(wait)
        finally:
            was_head = bool(self._waiters) and self._waiters[0] is waiter
            try:
                self._waiters.remove(waiter)
            except ValueError:  # pragma: no cover - removed twice is impossible, be safe
                pass
            if was_head and self._waiters:
                _wake(self._waiters[0])
        waited = self._clock() - start
        self._after_wait(waited)
        return waited

    # ------------------------------------------------------------------ context managers
    def __enter__(self) -> RateLimiter:
        """``with limiter:`` takes one token (see :meth:`acquire`) before the block."""
        self.acquire(1.0)
        return self

    def __exit__(self, *exc_info: object) -> None:
        return None

    async def __aenter__(self) -> RateLimiter:
        """``async with limiter:`` takes one token (see :meth:`acquire_async`), as aiolimiter does."""
        await self.acquire_async(1.0)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        return None

    # ------------------------------------------------------------------ decorator
    def __call__(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """Decorate a sync or async function: each call takes one token first."""
        return decorate(fn, self.call, self.call_async)

    # ------------------------------------------------------------------ slow paths
    def _check_cost(self, cost: float) -> None:
        """Raise ValueError naming *cost* unless ``0 < cost <= capacity``."""
        if not 0 < cost <= self._capacity:
            raise ValueError(
                f"RateLimiter {self.name!r}: cost must be > 0 and <= capacity "
                f"{self._capacity:g}; got {cost!r}"
            )

    def _reject(self, cost: float, wait: float | None) -> RateLimitExceededError:
        """Count a refusal, add the span event, and build the error for the caller to raise."""
        self._rejected += 1
        if wait is None:
            try:
                wait = max(0.0, (cost - self._backend.available()) / self.rate)
            except Exception:
                wait = None
        tel.add_event(
            "otelres.limiter.rejected",
            {"limiter.name": self.name, "limiter.cost": cost},
            mode=self._mode,
        )
        return RateLimitExceededError(self.name, wait)

    def _after_wait(self, waited: float) -> None:
        """Count a grant that had to wait and record how long (histogram and span event)."""
        self._waited += 1
        _inst.observe(self._wait_histogram, waited, {"limiter.name": self.name})
        tel.add_event(
            "otelres.limiter.wait",
            {"limiter.name": self.name, "limiter.wait": waited},
            mode=self._mode,
        )
