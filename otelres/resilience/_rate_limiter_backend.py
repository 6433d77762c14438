"""Where a :class:`~otelres.resilience.RateLimiter` keeps its tokens.

A limiter decides *when* callers wait, reject or queue; a **backend** only holds the
token bucket and answers two questions atomically: "can I have *cost* tokens now?" and
"reserve *cost* tokens for me and tell me how long to wait". Two backends exist:

* :class:`LocalTokenBucket` (this module): one process, a lock and two floats;
* a Redis token bucket (``otelres.resilience._redis*``): one budget shared by every
  process and host that uses the same key, since one exchange API key is one budget.

Any object that implements :class:`TokenBucketBackend` can be passed as
``RateLimiter(name, backend=...)``.

The model, which every backend must follow:

* the bucket holds at most ``capacity`` tokens and refills continuously at ``rate``
  tokens per second;
* ``tokens`` may go **negative** through :meth:`TokenBucketBackend.reserve` (tokens
  promised to a caller who is sleeping until they exist); refill first pays that debt;
* a request for ``cost > capacity`` can never be granted; the limiter rejects it with a
  clear error before asking the backend, so backends may assume ``0 < cost <= capacity``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Protocol, runtime_checkable

__all__ = ["LocalTokenBucket", "TokenBucketBackend"]


@runtime_checkable
class TokenBucketBackend(Protocol):
    """The token-bucket state behind a rate limiter; every method is atomic.

    Methods are synchronous and must be thread-safe. A backend that does I/O (Redis)
    also provides the ``*_async`` variants so that an event loop is never blocked; an
    in-memory backend implements them by calling the synchronous method.

    Errors: an exception a method raises reaches the caller of ``acquire``. A backend that
    should keep the application working when its store is down (``fail_mode = "open"``)
    handles that itself, for example by falling back to a :class:`LocalTokenBucket`.
    """

    @property
    def rate(self) -> float:
        """Tokens added per second (> 0)."""
        ...

    @property
    def capacity(self) -> float:
        """Most tokens the bucket holds: the largest burst and the largest single ``cost``."""
        ...

    def try_acquire(self, cost: float) -> float:
        """Take *cost* tokens if the bucket holds them now.

        Returns ``0.0`` when they were taken. Otherwise takes nothing and returns the
        seconds (> 0) until *cost* tokens will be there if nobody else takes any
        (``(cost - tokens) / rate``); the async limiter sleeps that long and asks again.
        """
        ...

    def reserve(self, cost: float, max_wait: float | None) -> float | None:
        """Take *cost* tokens now, even into debt, and return the seconds to wait before using them.

        ``0.0`` means the tokens were there. A positive value ``w`` means the tokens were
        promised: the bucket went to ``tokens - cost`` (possibly negative) and the caller
        must sleep ``w = (cost - tokens) / rate`` seconds before its call. Reservations
        are granted in the order the backend receives them, which makes waiting threads
        first-come first-served. When ``w`` would exceed *max_wait* (None: no limit),
        nothing is taken and ``None`` is returned.
        """
        ...

    def refund(self, cost: float) -> None:
        """Give back *cost* tokens that were taken but not used (never above ``capacity``)."""
        ...

    def available(self) -> float:
        """Tokens in the bucket now, after refill (negative while reservations are pending).

        Read by the ``otelres.limiter.available_tokens`` gauge at collection time; a remote
        backend may answer from a value cached within the last second, and may raise
        (the gauge then skips the limiter).
        """
        ...

    async def try_acquire_async(self, cost: float) -> float:
        """:meth:`try_acquire` without blocking the event loop."""
        ...

    async def reserve_async(self, cost: float, max_wait: float | None) -> float | None:
        """:meth:`reserve` without blocking the event loop."""
        ...


class LocalTokenBucket:
    """An in-process token bucket: thread-safe, monotonic, and cheap (one short lock).

    *start_full* decides whether the first ``capacity`` calls pass at once (True) or the
    bucket fills up from zero at *rate* (False). *clock* returns seconds (monotonic by
    default; pass a :class:`~otelres.testing.FakeClock` in tests).
    """

    __slots__ = ("_capacity", "_clock", "_lock", "_rate", "_stamp", "_tokens")

    def __init__(
        self,
        rate: float,
        capacity: float,
        *,
        start_full: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not rate > 0:
            raise ValueError(f"rate must be > 0 tokens per second; got {rate!r}")
        if not capacity > 0:
            raise ValueError(f"capacity must be > 0 tokens; got {capacity!r}")
        self._rate = float(rate)
        self._capacity = float(capacity)
        self._clock = clock
        self._lock = threading.Lock()
        self._tokens = self._capacity if start_full else 0.0
        self._stamp = clock()

    @property
    def rate(self) -> float:
        """Tokens added per second."""
        return self._rate

    @property
    def capacity(self) -> float:
        """Most tokens the bucket holds."""
        return self._capacity

    def try_acquire(self, cost: float) -> float:
        """Take *cost* tokens now (returns 0.0) or say how many seconds until they exist."""
        with self._lock:
            now = self._clock()
            tokens = self._tokens + (now - self._stamp) * self._rate
            if tokens > self._capacity:
                tokens = self._capacity
            self._stamp = now
            if tokens >= cost:
                self._tokens = tokens - cost
                return 0.0
            self._tokens = tokens
            return (cost - tokens) / self._rate

    def reserve(self, cost: float, max_wait: float | None) -> float | None:
        """Take *cost* tokens, into debt if needed; the wait, or None if it exceeds *max_wait*."""
        with self._lock:
            now = self._clock()
            tokens = min(self._capacity, self._tokens + (now - self._stamp) * self._rate)
            self._stamp = now
            wait = 0.0 if tokens >= cost else (cost - tokens) / self._rate
            if max_wait is not None and wait > max_wait:
                self._tokens = tokens
                return None
            self._tokens = tokens - cost
            return wait

    def refund(self, cost: float) -> None:
        """Give back *cost* unused tokens (capped at capacity)."""
        with self._lock:
            self._tokens = min(self._capacity, self._tokens + cost)

    def available(self) -> float:
        """Tokens in the bucket now (negative while reservations are pending)."""
        with self._lock:
            now = self._clock()
            self._tokens = min(self._capacity, self._tokens + (now - self._stamp) * self._rate)
            self._stamp = now
            return self._tokens

    async def try_acquire_async(self, cost: float) -> float:
        """:meth:`try_acquire`; it never blocks, so it is safe on the event loop."""
        return self.try_acquire(cost)

    async def reserve_async(self, cost: float, max_wait: float | None) -> float | None:
        """:meth:`reserve`; it never blocks, so it is safe on the event loop."""
        return self.reserve(cost, max_wait)

    def __repr__(self) -> str:
        return f"LocalTokenBucket(rate={self._rate!r}, capacity={self._capacity!r})"
