"""RedisTokenBucket against a real redis-server: the Lua token bucket and its protocol."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
import redis

from otelres.resilience._rate_limiter_backend import TokenBucketBackend
from otelres.resilience._redis_bucket import RedisTokenBucket
from otelres.resilience._redis_client import RedisConnection
from tests.redis.conftest import RedisServer

pytestmark = pytest.mark.integration



def test_implements_the_backend_protocol(conn: RedisConnection) -> None:
    """A RedisTokenBucket is a TokenBucketBackend with the rate and capacity it was given."""
    bucket = RedisTokenBucket("kraken", conn, rate=2.5, capacity=7)
    assert isinstance(bucket, TokenBucketBackend)
    assert (bucket.rate, bucket.capacity) == (2.5, 7.0)
    assert bucket.key == "t:bucket:kraken"


def test_try_acquire_grants_the_burst_then_says_how_long_to_wait(conn: RedisConnection) -> None:
    """A full bucket grants `capacity` tokens at once, then refuses with the wait for the next."""
    bucket = RedisTokenBucket("b", conn, rate=10, capacity=3)
    assert [bucket.try_acquire(1) for _ in range(3)] == [0.0, 0.0, 0.0]
    wait = bucket.try_acquire(1)
    assert 0.05 < wait <= 0.1
    assert bucket.available() < 1


def test_weighted_cost_takes_that_many_tokens(conn: RedisConnection) -> None:
    """A call of cost 4 takes four tokens: a capacity of 10 admits two such calls, not three."""
    bucket = RedisTokenBucket("w", conn, rate=1, capacity=10)
    assert bucket.try_acquire(4) == 0.0
    assert bucket.try_acquire(4) == 0.0
    wait = bucket.try_acquire(4)
    assert 1.9 < wait <= 2.0  # two tokens left, two more at 1/s
    assert 1.99 < bucket.available() <= 2.1


def test_fractional_rates_and_costs_keep_full_precision(conn: RedisConnection) -> None:
    """Rates and costs below one token work, and the stored count loses nothing to rounding."""
    bucket = RedisTokenBucket("f", conn, rate=0.5, capacity=1)
    assert bucket.try_acquire(0.25) == 0.0
    assert bucket.try_acquire(0.125) == 0.0
    assert 0.625 <= bucket.available() < 0.63
    wait = bucket.try_acquire(1)
    assert 0.7 < wait <= 0.75  # 0.375 tokens missing at 0.5 per second


def test_reserve_goes_into_debt_and_queues_callers_in_order(conn: RedisConnection) -> None:
    """Reservations beyond the tokens return growing waits: each caller queues behind the last."""
    bucket = RedisTokenBucket("r", conn, rate=10, capacity=2)
    waits = [bucket.reserve(1, None) for _ in range(5)]
    assert waits[:2] == [0.0, 0.0]
    assert waits[2] is not None
    assert waits[3] is not None
    assert waits[4] is not None
    assert 0.08 < waits[2] < waits[3] < waits[4] <= 0.3
    assert bucket.available() < -2.5


def test_reserve_refuses_without_taking_when_the_wait_exceeds_max_wait(conn: RedisConnection) -> None:
    """A reservation whose wait exceeds max_wait takes nothing and returns None."""
    bucket = RedisTokenBucket("m", conn, rate=1, capacity=1)
    assert bucket.reserve(1, 0.5) == 0.0
    assert bucket.reserve(1, 0.5) is None
    assert bucket.reserve(1, 1.0) is not None  # one second is within a max_wait of one second


def test_refund_gives_tokens_back_up_to_capacity(conn: RedisConnection) -> None:
    """Refunded tokens are usable again, and a refund never lifts the bucket above capacity."""
    bucket = RedisTokenBucket("u", conn, rate=0.1, capacity=2)
    assert bucket.try_acquire(2) == 0.0
    bucket.refund(1)
    assert bucket.try_acquire(1) == 0.0
    bucket.refund(50)
    assert 2.0 - 1e-6 <= RedisTokenBucket("u", conn, rate=0.1, capacity=2).available() <= 2.0


def test_refill_follows_the_redis_clock_not_the_clients(
    conn: RedisConnection, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Tokens come back as Redis' time passes even when the client's clocks stand still."""
    bucket = RedisTokenBucket("c", conn, rate=20, capacity=5)
    assert bucket.try_acquire(5) == 0.0
    time.sleep(0.2)
    frozen = time.time()
    monkeypatch.setattr(time, "time", lambda: frozen)
    monkeypatch.setattr(time, "monotonic", lambda: 0.0)
    assert bucket.try_acquire(3) == 0.0  # ~4 tokens refilled in 0.2 s at 20/s


def test_two_connections_share_one_budget(redis_server: RedisServer) -> None:
    """Buckets of one name on two connections (two processes) draw from the same tokens."""
    first = RedisConnection(redis_server.url)
    second = RedisConnection(redis_server.url)
    a = RedisTokenBucket("shared", first, rate=0.01, capacity=4)
    b = RedisTokenBucket("shared", second, rate=0.01, capacity=4)
    granted = [bucket.try_acquire(1) == 0.0 for bucket in (a, b, a, b, a, b)]
    assert granted == [True, True, True, True, False, False]
    other = RedisTokenBucket("other", second, rate=0.01, capacity=4)
    assert other.try_acquire(4) == 0.0  # another name is another budget
    first.close()
    second.close()


def test_the_key_expires_once_the_bucket_would_be_full(
    conn: RedisConnection, redis_server: RedisServer
) -> None:
    """The bucket's key carries a TTL of the refill time (plus a second), so idle buckets vanish."""
    bucket = RedisTokenBucket("ttl", conn, rate=4, capacity=2)
    assert bucket.try_acquire(2) == 0.0
    ttl = conn.client.pttl(bucket.key)
    assert 1000 < ttl <= 1500  # 0.5 s to refill two tokens at 4/s, plus 1 s
    assert bucket.available() <= 2  # reading writes nothing
    assert conn.client.pttl(bucket.key) <= ttl


def test_async_operations_share_the_budget_with_sync_ones(conn: RedisConnection) -> None:
    """The asyncio variants take from the same bucket as the blocking ones."""
    bucket = RedisTokenBucket("a", conn, rate=10, capacity=2)

    async def main() -> tuple[float, float | None, float]:
        first = await bucket.try_acquire_async(1)
        second = await bucket.reserve_async(1, None)
        third = await bucket.try_acquire_async(1)
        await conn.aclose()
        return first, second, third

    first, second, third = asyncio.run(main())
    assert (first, second) == (0.0, 0.0)
    assert third > 0
    assert bucket.try_acquire(1) > 0


def test_each_event_loop_gets_its_own_async_client(conn: RedisConnection) -> None:
    """A bucket used from two event loops in turn works in both (a client per loop)."""
    bucket = RedisTokenBucket("loops", conn, rate=0.01, capacity=2)

    async def take() -> float:
        wait = await bucket.try_acquire_async(1)
        await conn.aclose()
        return wait

    assert asyncio.run(take()) == 0.0
    assert asyncio.run(take()) == 0.0
    assert asyncio.run(take()) > 0  # both loops drew from the one shared bucket


def test_event_loops_that_end_leave_no_redis_connections_behind(
    conn: RedisConnection, redis_server: RedisServer
) -> None:
    """Twenty asyncio.run() calls, each acquiring from a shared bucket, leave no client socket open."""
    bucket = RedisTokenBucket("many-loops", conn, rate=1000, capacity=1000)
    admin = redis.Redis.from_url(redis_server.url)

    def clients() -> int:
        return len(admin.client_list())

    async def take() -> float:
        return await bucket.try_acquire_async(1)

    before = clients()
    for _ in range(20):
        assert asyncio.run(take()) == 0.0
    assert clients() == before
    admin.close()


def test_threads_running_loops_of_their_own_share_the_connection_safely(
    conn: RedisConnection, redis_server: RedisServer
) -> None:
    """Four threads, each running ten event loops in turn, all acquire and leave no client socket open."""
    bucket = RedisTokenBucket("loop-threads", conn, rate=1000, capacity=1000)
    admin = redis.Redis.from_url(redis_server.url)
    before = len(admin.client_list())
    waits: list[float] = []
    errors: list[BaseException] = []

    def run_loops() -> None:
        try:
            for _ in range(10):
                waits.append(asyncio.run(bucket.try_acquire_async(1)))
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=run_loops) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert waits == [0.0] * 40
    assert len(admin.client_list()) == before
    admin.close()
