"""RedisBreakerStorage against a real redis-server: atomic transitions, probes, TTLs, cache."""

from __future__ import annotations

import threading
import time

import pytest

from otelres.resilience._breaker_state import BreakerState
from otelres.resilience._breaker_storage import BreakerStorage
from otelres.resilience._redis_breaker import RedisBreakerStorage
from otelres.resilience._redis_client import RedisConnection
from otelres.testing import FakeClock

pytestmark = pytest.mark.integration

CLOSED = BreakerState.CLOSED
OPEN = BreakerState.OPEN
HALF_OPEN = BreakerState.HALF_OPEN



def storages(conns: list[RedisConnection], name: str = "kraken") -> list[RedisBreakerStorage]:
    return [RedisBreakerStorage(name, conn) for conn in conns]


def test_implements_the_storage_protocol_and_starts_closed(conns: list[RedisConnection]) -> None:
    """A new breaker reads closed with nothing counted, and nothing is written for it yet."""
    storage = RedisBreakerStorage("fresh", conns[0])
    assert isinstance(storage, BreakerStorage)
    assert storage.key == "t:breaker:fresh"
    assert storage.state is CLOSED
    snap = storage.snapshot()
    assert (snap.state, snap.generation, snap.failures, snap.trips) == (CLOSED, 0, 0, 0)
    assert conns[0].client.exists(storage.key) == 0


def test_failures_are_counted_across_processes(conns: list[RedisConnection]) -> None:
    """Consecutive failures recorded by different processes add up in one count."""
    a, b, c = storages(conns)
    assert [a.add_failure(), b.add_failure(), c.add_failure()] == [1, 2, 3]
    assert a.snapshot().failures == 3
    b.reset_failures()
    assert c.snapshot().failures == 0


def test_concurrent_failures_are_never_lost(conns: list[RedisConnection]) -> None:
    """Eight threads adding 50 failures each leave exactly 400 (the increment is atomic)."""
    storage = RedisBreakerStorage("race", conns[0])

    def fail() -> None:
        for _ in range(50):
            storage.add_failure()

    threads = [threading.Thread(target=fail) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert storage.snapshot().failures == 400


def test_only_one_of_racing_transitions_wins(conns: list[RedisConnection]) -> None:
    """Two processes opening the same generation: one succeeds, the other gets None."""
    a, b, _ = storages(conns)
    first = a.transition(CLOSED, OPEN, generation=0, open_for=5)
    second = b.transition(CLOSED, OPEN, generation=0, open_for=5)
    assert first is not None
    assert second is None
    assert (first.state, first.generation, first.trips) == (OPEN, 1, 1)
    assert b.state is OPEN  # the loser sees the winner's state on its next read


def test_the_open_period_is_timed_by_redis_in_milliseconds(conns: list[RedisConnection]) -> None:
    """retry_after counts down the open period with millisecond precision, then reads 0."""
    a, b, _ = storages(conns)
    a.transition(CLOSED, OPEN, generation=0, open_for=0.3)
    retry_after = b.snapshot().retry_after
    assert 0.2 < retry_after <= 0.3
    assert retry_after != round(retry_after)  # not whole seconds, as pybreaker's storage keeps
    time.sleep(0.35)
    snap = b.snapshot()
    assert (snap.state, snap.retry_after) == (OPEN, 0.0)
    assert b.transition(OPEN, HALF_OPEN, generation=snap.generation) is not None


def test_the_open_period_ignores_the_clients_clock(conns: list[RedisConnection]) -> None:
    """The open period ends by Redis' clock even when the client's clock stands still."""
    frozen = FakeClock()
    storage = RedisBreakerStorage("clock", conns[0], clock=frozen)
    storage.transition(CLOSED, OPEN, generation=0, open_for=0.2)
    time.sleep(0.25)
    assert storage.snapshot().retry_after == 0.0


def test_probe_limit_holds_across_processes(conns: list[RedisConnection]) -> None:
    """With a limit of two, three processes asking for probe permits get two between them."""
    a, b, c = storages(conns)
    a.transition(CLOSED, OPEN, generation=0, open_for=0.001)
    time.sleep(0.01)
    half = a.transition(OPEN, HALF_OPEN, generation=1)
    assert half is not None
    gen = half.generation
    granted = [s.try_acquire_probe(gen, 2) for s in (a, b, c)]
    assert granted == [True, True, False]
    assert a.release_probe(gen, success=True) == 1
    assert c.try_acquire_probe(gen, 2)  # a permit came back
    assert b.release_probe(gen, success=True) == 2
    assert a.try_acquire_probe(gen + 1, 2) is False  # a stale generation gets nothing
    assert a.release_probe(gen - 1, success=True) == 0


def test_a_probe_permit_of_a_dead_process_expires(conns: list[RedisConnection]) -> None:
    """A permit never given back (its process died) is reclaimed after the open duration."""
    a, b, _ = storages(conns)
    a.transition(CLOSED, OPEN, generation=0, open_for=0.2)
    time.sleep(0.25)
    gen = a.transition(OPEN, HALF_OPEN, generation=1).generation  # type: ignore[union-attr]
    assert a.try_acquire_probe(gen, 1)  # ... and this process dies
    assert not b.try_acquire_probe(gen, 1)
    time.sleep(1.05)  # permits live at least one second
    assert b.try_acquire_probe(gen, 1)


def test_closing_clears_counts_and_trips(conns: list[RedisConnection]) -> None:
    """Half-open to closed resets failures, trips and probe counts; generations keep rising."""
    a, b, _ = storages(conns)
    a.transition(CLOSED, OPEN, generation=0, open_for=0.001)
    time.sleep(0.01)
    a.transition(OPEN, HALF_OPEN, generation=1)
    assert a.try_acquire_probe(2, 1)
    assert a.release_probe(2, success=True) == 1
    closed = b.transition(HALF_OPEN, CLOSED, generation=2)
    assert closed is not None
    assert (closed.state, closed.generation, closed.trips, closed.probes) == (CLOSED, 3, 0, 0)


def test_trips_count_reopenings_without_closing(conns: list[RedisConnection]) -> None:
    """Each re-opening from half-open adds a trip (the breaker grows its open time with it)."""
    a = RedisBreakerStorage("trips", conns[0])
    a.transition(CLOSED, OPEN, generation=0, open_for=0.001)
    time.sleep(0.005)
    a.transition(OPEN, HALF_OPEN, generation=1)
    reopened = a.transition(HALF_OPEN, OPEN, generation=2, open_for=10)
    assert reopened is not None
    assert reopened.trips == 2


def test_keys_have_ttls_except_states_set_by_hand(conns: list[RedisConnection]) -> None:
    """Written state expires after state_ttl (an open key outlives its period); forced states persist."""
    client = conns[0].client
    short = RedisBreakerStorage("ttl", conns[0], state_ttl=30)
    short.add_failure()
    assert 29_000 < client.pttl(short.key) <= 30_000
    short.transition(CLOSED, OPEN, generation=0, open_for=60)
    assert 119_000 < client.pttl(short.key) <= 121_000  # twice the open period plus 1 s
    short.force(BreakerState.FORCED_OPEN)
    assert client.pttl(short.key) == -1
    assert RedisBreakerStorage("ttl", conns[1]).state is BreakerState.FORCED_OPEN
    short.force(CLOSED)
    assert 29_000 < client.pttl(short.key) <= 30_000


def test_state_cache_bounds_how_late_a_remote_trip_is_seen(conns: list[RedisConnection]) -> None:
    """With state_cache_seconds, a trip elsewhere is seen within that time; without, at once."""
    cached = RedisBreakerStorage("cache", conns[0], state_cache_seconds=0.3)
    uncached = RedisBreakerStorage("cache", conns[1])
    assert cached.state is CLOSED
    assert uncached.state is CLOSED
    RedisBreakerStorage("cache", conns[2]).transition(CLOSED, OPEN, generation=0, open_for=30)
    assert uncached.state is OPEN
    assert cached.state is CLOSED  # still the reading of less than 0.3 s ago
    time.sleep(0.35)
    assert cached.state is OPEN


def test_a_local_failure_refreshes_the_cached_state(conns: list[RedisConnection]) -> None:
    """A failure recorded through a caching storage drops its cache, so its own trip shows at once."""
    cached = RedisBreakerStorage("own", conns[0], state_cache_seconds=30)
    assert cached.state is CLOSED
    cached.add_failure()
    moved = RedisBreakerStorage("own", conns[1]).transition(CLOSED, OPEN, generation=0, open_for=30)
    assert moved is not None
    assert cached.state is OPEN


def test_invalid_arguments_are_named(conns: list[RedisConnection]) -> None:
    """Bad fail_mode, cache or TTL values raise a ValueError naming the argument."""
    with pytest.raises(ValueError, match="fail_mode"):
        RedisBreakerStorage("x", conns[0], fail_mode="sideways")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="state_cache_seconds"):
        RedisBreakerStorage("x", conns[0], state_cache_seconds=-1)
    with pytest.raises(ValueError, match="state_ttl"):
        RedisBreakerStorage("x", conns[0], state_ttl=0)
