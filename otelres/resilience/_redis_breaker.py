"""Circuit-breaker state in Redis, shared by every process that uses the same breaker name.

:class:`RedisBreakerStorage` implements the
:class:`~otelres.resilience._breaker_storage.BreakerStorage` protocol with one Redis hash
per breaker (``<key_prefix>:breaker:<name>``) changed only by one Lua script
(:data:`~otelres.resilience._redis_scripts.BREAKER_SCRIPT`). So:

* every transition is a compare-and-set inside Redis: two processes racing to open, probe
  or close one breaker cannot both win, and consecutive failures are counted across them;
* the open period is timed by the Redis server's clock in milliseconds, so hosts whose
  clocks disagree still agree on when the breaker half-opens;
* the half-open probe limit holds across processes, and a permit whose process died
  mid-probe expires after the open duration (at least one second);
* the hash has a TTL (``state_ttl``, refreshed on every write; an open breaker's key
  lives at least twice its open period), so breakers that were renamed or retired leave
  nothing behind. A manual ``forced_open`` or ``disabled`` state never expires.

When Redis cannot be reached the storage follows its fail mode: ``"open"`` answers from a
:class:`~otelres.resilience._breaker_storage.LocalBreakerStorage` (this process alone
counts failures and may trip its own breaker), ``"closed"`` reports the breaker ``open``
until Redis answers again, so every call is rejected. Either way the guarded call never
sees a Redis error and never waits longer than the connection's timeouts; each call
decided without Redis is counted in ``otelres.redis.unavailable``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

from otelres.resilience._breaker_state import BreakerState
from otelres.resilience._breaker_storage import LocalBreakerStorage, StoredState
from otelres.resilience._redis_client import (
    FailMode,
    RedisConnection,
    RedisGuardState,
    RedisUnavailableError,
)
from otelres.resilience._redis_scripts import BREAKER_SCRIPT

if TYPE_CHECKING:
    from opentelemetry.metrics import MeterProvider

    from otelres.resilience._breaker_storage import StorageFactory

__all__ = ["RedisBreakerStorage", "redis_storage_factory"]

_STATES: dict[bytes, BreakerState] = {s.value.encode(): s for s in BreakerState}
_OPEN = BreakerState.OPEN
_DEFAULT_TTL = 86400.0
# Generations of the local fallback are shifted far above any Redis generation, so that
# a reading taken before an outage never matches a state decided during it (or back).
_LOCAL_BASE = 1 << 62


def _stored(reply: list[Any]) -> StoredState:
    """A :class:`StoredState` from the script's snapshot reply."""
    return StoredState(
        state=_STATES[reply[0]],
        generation=int(reply[1]),
        failures=int(reply[2]),
        trips=int(reply[3]),
        retry_after=int(reply[4]) / 1000.0,
        probes=int(reply[5]),
        probe_successes=int(reply[6]),
    )


class RedisBreakerStorage(RedisGuardState):
    """The state of breaker *name* in Redis, shared by every process using that name.

    Usually not built by hand: :func:`otelres.resilience.use_redis` makes every breaker
    created afterwards use one, or pass one explicitly::

        conn = RedisConnection("redis://127.0.0.1:6379/0")
        breaker = CircuitBreaker("kraken", storage=RedisBreakerStorage("kraken", conn))

    *fail_mode* and *state_cache_seconds* default to the connection's. With
    ``state_cache_seconds > 0`` the state read on every call is answered from the last
    reading while it is younger than that, saving a round trip; a breaker opened elsewhere
    is then seen up to that many seconds late. Every write (a failure, a transition)
    refreshes the reading. *state_ttl* is the lifetime of the Redis key after its last
    write. *clock* times the local fallback's open periods and the cache.
    """

    __slots__ = (
        "_cache_for",
        "_cached",
        "_cached_until",
        "_clock",
        "_failures",
        "_local",
        "_local_dirty",
        "_ttl_ms",
    )

    guard_kind: ClassVar[str] = "breaker"
    key_kind: ClassVar[str] = "breaker"

    def __init__(
        self,
        name: str,
        connection: RedisConnection,
        *,
        fail_mode: FailMode | None = None,
        state_cache_seconds: float | None = None,
        state_ttl: float = _DEFAULT_TTL,
        clock: Callable[[], float] = time.monotonic,
        meter_provider: MeterProvider | None = None,
    ) -> None:
        cache = connection.state_cache_seconds if state_cache_seconds is None else state_cache_seconds
        if not cache >= 0:
            raise ValueError(f"state_cache_seconds must be >= 0; got {cache!r}")
        if not state_ttl > 0:
            raise ValueError(f"state_ttl must be > 0 seconds; got {state_ttl!r}")
        self._ttl_ms = max(1000, int(state_ttl * 1000))
        self._clock = clock
        self._cache_for = float(cache)
        self._cached: StoredState | None = None
        self._cached_until = 0.0
        self._failures = 0
        self._local = LocalBreakerStorage(clock)
        self._local_dirty = False
        super().__init__(name, connection, fail_mode, meter_provider)

    # ------------------------------------------------------------------ plumbing
    def _run(self, *args: Any) -> Any:
        """Run one operation of the breaker script on this breaker's key (with the TTL).

        Raises :class:`RedisUnavailableError`; each public method turns that into the fail
        mode. A success after an outage drops what the local fallback decided meanwhile.
        """
        reply = self._conn.run(BREAKER_SCRIPT, self._key, args[0], self._ttl_ms, *args[1:])
        if self._local_dirty:
            # Redis is back: what this process decided alone during the outage is dropped.
            self._local = LocalBreakerStorage(self._clock)
            self._local_dirty = False
        return reply

    def _remember(self, stored: StoredState) -> StoredState:
        """Keep *stored* as the latest reading: for ``failures``, and for the state cache."""
        self._failures = stored.failures
        if self._cache_for:
            self._cached = stored
            self._cached_until = self._clock() + self._cache_for
        return stored

    def _fallback(self) -> LocalBreakerStorage:
        """The local storage that answers during an outage (fail-open), marked as in use."""
        self._local_dirty = True
        return self._local

    def _closed_answer(self) -> StoredState:
        """Fail-closed: the breaker reads ``open`` until Redis may be tried again."""
        wait = max(0.001, self._conn.retry_in())
        return StoredState(state=_OPEN, generation=_LOCAL_BASE - 1, failures=0, trips=0, retry_after=wait)

    @staticmethod
    def _local_state(stored: StoredState) -> StoredState:
        """*stored* of the local fallback, with its generation shifted (see ``_LOCAL_BASE``)."""
        return StoredState(
            state=stored.state,
            generation=_LOCAL_BASE + stored.generation,
            failures=stored.failures,
            trips=stored.trips,
            retry_after=stored.retry_after,
            probes=stored.probes,
            probe_successes=stored.probe_successes,
        )

    # ------------------------------------------------------------------ protocol
    @property
    def state(self) -> BreakerState:
        """The current state: from Redis, or from the cache while it is fresh."""
        cached = self._cached
        if cached is not None and self._clock() < self._cached_until:
            return cached.state
        try:
            return self._remember(_stored(self._run("snap"))).state
        except RedisUnavailableError:
            next(self._unavailable_count)
            if self.fail_mode == "closed":
                return _OPEN
            local = self._fallback()
            self._failures = local.failures
            return local.state

    @property
    def failures(self) -> int:
        """Consecutive failures as of the last reading (local ones during an outage)."""
        return self._local.failures if self._local_dirty else self._failures

    def snapshot(self) -> StoredState:
        """A consistent reading of everything stored for this breaker."""
        try:
            return self._remember(_stored(self._run("snap")))
        except RedisUnavailableError:
            if self.fail_mode == "closed":
                return self._closed_answer()
            return self._local_state(self._fallback().snapshot())

    def add_failure(self) -> int:
        """Count one failure in Redis (atomically, across processes); the new count."""
        try:
            count = int(self._run("fail"))
        except RedisUnavailableError:
            if self.fail_mode == "closed":
                return 0
            return self._fallback().add_failure()
        self._failures = count
        if self._cached is not None:
            self._cached = None  # the next state read sees the count, and maybe a trip
        return count

    def reset_failures(self) -> None:
        """Set the consecutive failures back to 0."""
        try:
            self._run("reset")
            self._failures = 0
        except RedisUnavailableError:
            if self.fail_mode == "open":
                self._fallback().reset_failures()

    def transition(
        self,
        from_state: BreakerState,
        to_state: BreakerState,
        *,
        generation: int,
        open_for: float = 0.0,
    ) -> StoredState | None:
        """Compare-and-set the state inside Redis (see the protocol)."""
        if generation >= _LOCAL_BASE:
            return self._local_transition(from_state, to_state, generation, open_for)
        try:
            reply = self._run(
                "trans",
                from_state.value,
                to_state.value,
                generation,
                max(0, round(open_for * 1000)),
            )
        except RedisUnavailableError:
            return None
        if reply == 0:
            self._cached = None
            return None
        return self._remember(_stored(reply))

    def _local_transition(
        self, from_state: BreakerState, to_state: BreakerState, generation: int, open_for: float
    ) -> StoredState | None:
        """A transition on the local fallback, for a generation read from it during an outage."""
        if self.fail_mode == "closed" or not self._local_dirty:
            return None  # a fail-closed answer, or a local reading from an outage now over
        done = self._local.transition(
            from_state, to_state, generation=generation - _LOCAL_BASE, open_for=open_for
        )
        return None if done is None else self._local_state(done)

    def force(self, to_state: BreakerState) -> StoredState:
        """Set *to_state* unconditionally in Redis (in this process only while Redis is away)."""
        try:
            return self._remember(_stored(self._run("force", to_state.value)))
        except RedisUnavailableError:
            return self._local_state(self._fallback().force(to_state))

    def try_acquire_probe(self, generation: int, limit: int) -> bool:
        """Take a half-open probe permit; the limit holds across every process."""
        if generation >= _LOCAL_BASE:
            if self.fail_mode == "closed" or not self._local_dirty:
                return False
            return self._local.try_acquire_probe(generation - _LOCAL_BASE, limit)
        try:
            return int(self._run("probe", generation, limit)) == 1
        except RedisUnavailableError:
            return False

    def release_probe(self, generation: int, *, success: bool) -> int:
        """Give a probe permit back; the successful probes of the period so far."""
        if generation >= _LOCAL_BASE:
            if not self._local_dirty:
                return 0
            return self._local.release_probe(generation - _LOCAL_BASE, success=success)
        try:
            return int(self._run("release", generation, 1 if success else 0))
        except RedisUnavailableError:
            return 0

    def __repr__(self) -> str:
        return f"RedisBreakerStorage({self.name!r}, key={self._key!r}, fail_mode={self.fail_mode!r})"


def redis_storage_factory(
    connection: RedisConnection, *, meter_provider: MeterProvider | None = None
) -> StorageFactory:
    """A storage factory (for ``set_default_storage_factory``) putting every breaker in Redis."""

    def make(name: str, clock: Callable[[], float]) -> RedisBreakerStorage:
        """The Redis storage of breaker *name*, timed locally by the breaker's *clock*."""
        return RedisBreakerStorage(name, connection, clock=clock, meter_provider=meter_provider)

    return make
