"""A token bucket in Redis: one rate budget shared by every process and host using its name.

:class:`RedisTokenBucket` implements the
:class:`~otelres.resilience._rate_limiter_backend.TokenBucketBackend` protocol with one Redis
hash per limiter (``<key_prefix>:bucket:<name>``) changed only by one Lua script
(:data:`~otelres.resilience._redis_scripts.BUCKET_SCRIPT`), one round trip per operation:

* refill, check and take happen atomically inside Redis, with the Redis server's clock
  (microseconds), so the budget holds however many clients there are and whatever their
  clocks say;
* a cost may be any number of tokens up to the capacity (weighted calls, like ccxt's
  endpoint costs);
* wait mode: :meth:`~RedisTokenBucket.reserve` takes the tokens at once, into debt, and
  returns how long to wait; the caller sleeps *locally* (no polling of Redis), and the
  next caller's reservation queues behind it, which keeps waiting callers first come,
  first served across all processes;
* reject mode: :meth:`~RedisTokenBucket.try_acquire` takes nothing unless the tokens are
  there, and says how long until they would be;
* the key expires once the bucket would be full again (a full bucket and no key mean the
  same), so idle limiters cost no memory.

When Redis cannot be reached the bucket follows its fail mode: ``"open"`` takes tokens
from a bucket in this process (at ``fail_open_rate``, by default the full rate: with N
processes the shared budget can then be exceeded up to N times, so set it to
``rate / N`` when the budget is strict), ``"closed"`` raises
:class:`~otelres.resilience.RateLimitExceededError` so that no call goes out unmetered.
Each call decided without Redis is counted in ``otelres.redis.unavailable``.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, ClassVar

from otelres.resilience._errors import RateLimitExceededError
from otelres.resilience._rate_limiter_backend import LocalTokenBucket
from otelres.resilience._redis_client import (
    FailMode,
    RedisConnection,
    RedisGuardState,
    RedisUnavailableError,
)
from otelres.resilience._redis_scripts import BUCKET_SCRIPT

if TYPE_CHECKING:
    from collections.abc import Callable

    from opentelemetry.metrics import MeterProvider

__all__ = ["RedisTokenBucket", "redis_bucket_factory"]

_NO_LIMIT = b"-1"


def _num(value: float) -> bytes:
    """*value* as Redis receives it: full precision, no float noise for integers."""
    if value == 1:
        return b"1"  # the usual cost, without a conversion
    return (str(int(value)) if float(value).is_integer() else repr(float(value))).encode()


class RedisTokenBucket(RedisGuardState):
    """The token bucket of limiter *name* in Redis, shared by every process using that name.

    Usually built for you by :func:`otelres.resilience.use_redis`; by hand::

        conn = RedisConnection("redis://127.0.0.1:6379/0")
        limiter = RateLimiter("kraken", rate=1.0,
                              backend=RedisTokenBucket("kraken", conn, rate=1.0, capacity=15))

    Every process must give the same *rate* and *capacity* for one name; the bucket obeys
    the values of whichever call reaches Redis. *fail_mode* defaults to the connection's;
    *fail_open_rate* is the rate this process allows itself alone while Redis is
    unreachable in fail-open mode (default: *rate*; its burst shrinks in proportion).
    """

    __slots__ = ("_args_cache", "_available", "_available_at", "_capacity", "_local", "_rate")

    guard_kind: ClassVar[str] = "limiter"
    key_kind: ClassVar[str] = "bucket"

    def __init__(
        self,
        name: str,
        connection: RedisConnection,
        *,
        rate: float,
        capacity: float,
        fail_mode: FailMode | None = None,
        fail_open_rate: float | None = None,
        meter_provider: MeterProvider | None = None,
    ) -> None:
        if not rate > 0:
            raise ValueError(f"rate must be > 0 tokens per second; got {rate!r}")
        if not capacity > 0:
            raise ValueError(f"capacity must be > 0 tokens; got {capacity!r}")
        local_rate = rate if fail_open_rate is None else fail_open_rate
        if not local_rate > 0:
            raise ValueError(f"fail_open_rate must be > 0 tokens per second; got {fail_open_rate!r}")
        self._rate = float(rate)
        self._capacity = float(capacity)
        self._args_cache = (_num(rate), _num(capacity))
        self._local = LocalTokenBucket(local_rate, capacity * min(1.0, local_rate / rate))
        self._available = 0.0
        self._available_at = float("-inf")
        super().__init__(name, connection, fail_mode, meter_provider)

    @property
    def rate(self) -> float:
        """Tokens added per second."""
        return self._rate

    @property
    def capacity(self) -> float:
        """Most tokens the bucket holds."""
        return self._capacity

    # ------------------------------------------------------------------ plumbing
    def _unavailable(self) -> None:
        """Count a call decided without Redis; in fail-closed mode, refuse it."""
        next(self._unavailable_count)
        if self.fail_mode == "closed":
            raise RateLimitExceededError(
                self.name,
                self._conn.retry_in() or None,
                f"rate limit {self.name!r}: Redis is unavailable and fail_mode is 'closed'",
            )

    def _take_args(self, cost: float, max_wait: float | None) -> tuple[bytes, ...]:
        """The script's arguments for taking *cost*: reject mode (*max_wait* 0) or a reservation."""
        rate, capacity = self._args_cache
        if max_wait is None:
            return rate, capacity, _num(cost), _NO_LIMIT
        limit = str(int(max_wait * 1e6)).encode() if max_wait else b"0"
        return rate, capacity, _num(cost), limit

    @staticmethod
    def _try_reply(reply: Any) -> float:
        """:meth:`try_acquire`'s answer from a reject-mode reply: 0.0, or the seconds to wait."""
        return 0.0 if reply[0] else max(int(reply[1]) / 1e6, 1e-6)

    @staticmethod
    def _reserve_reply(reply: Any) -> float | None:
        """:meth:`reserve`'s answer from a reservation reply: the wait, or None (nothing taken)."""
        return int(reply[1]) / 1e6 if reply[0] else None

    # ------------------------------------------------------------------ protocol
    def try_acquire(self, cost: float) -> float:
        """Take *cost* tokens now (0.0), or take nothing and return the seconds until they exist."""
        try:
            reply = self._conn.run(BUCKET_SCRIPT, self._key, *self._take_args(cost, 0))
        except RedisUnavailableError:
            self._unavailable()
            return self._local.try_acquire(cost)
        return self._try_reply(reply)

    def reserve(self, cost: float, max_wait: float | None) -> float | None:
        """Take *cost* tokens, into debt if needed; the wait, or None when it would exceed *max_wait*."""
        try:
            reply = self._conn.run(BUCKET_SCRIPT, self._key, *self._take_args(cost, max_wait))
        except RedisUnavailableError:
            self._unavailable()
            return self._local.reserve(cost, max_wait)
        return self._reserve_reply(reply)

    def refund(self, cost: float) -> None:
        """Give back *cost* unused tokens (capped at capacity)."""
        try:
            self._conn.run(BUCKET_SCRIPT, self._key, *self._take_args(-cost, 0))
        except RedisUnavailableError:
            self._local.refund(cost)

    def available(self) -> float:
        """Tokens in the shared bucket now (read from Redis at most once a second).

        While Redis is unreachable: the local bucket's tokens (fail-open) or 0 (fail-closed).
        """
        now = time.monotonic()
        if now - self._available_at < 1.0:
            return self._available
        try:
            reply = self._conn.run(BUCKET_SCRIPT, self._key, *self._take_args(0, 0))
        except RedisUnavailableError:
            # Fail-closed grants nothing while Redis is away: zero is the truthful answer.
            return 0.0 if self.fail_mode == "closed" else self._local.available()
        self._available = float(reply[2])
        self._available_at = now
        return self._available

    async def try_acquire_async(self, cost: float) -> float:
        """:meth:`try_acquire` on the asyncio client: the event loop never blocks."""
        try:
            reply = await self._conn.run_async(BUCKET_SCRIPT, self._key, *self._take_args(cost, 0))
        except RedisUnavailableError:
            self._unavailable()
            return self._local.try_acquire(cost)
        return self._try_reply(reply)

    async def reserve_async(self, cost: float, max_wait: float | None) -> float | None:
        """:meth:`reserve` on the asyncio client: the event loop never blocks."""
        try:
            reply = await self._conn.run_async(BUCKET_SCRIPT, self._key, *self._take_args(cost, max_wait))
        except RedisUnavailableError:
            self._unavailable()
            return self._local.reserve(cost, max_wait)
        return self._reserve_reply(reply)

    def __repr__(self) -> str:
        return (
            f"RedisTokenBucket({self.name!r}, key={self._key!r}, rate={self._rate!r}, "
            f"capacity={self._capacity!r}, fail_mode={self.fail_mode!r})"
        )


def redis_bucket_factory(
    connection: RedisConnection, *, meter_provider: MeterProvider | None = None
) -> Callable[[str, float, float], RedisTokenBucket]:
    """A backend factory ``(name, rate, capacity) -> RedisTokenBucket`` on *connection*."""

    def make(name: str, rate: float, capacity: float) -> RedisTokenBucket:
        return RedisTokenBucket(name, connection, rate=rate, capacity=capacity, meter_provider=meter_provider)

    return make
