"""When Redis is down or hangs: fail modes, bounded waits, reconnecting, and their telemetry."""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from otelres.resilience import RateLimitExceededError
from otelres.resilience._breaker_state import BreakerState
from otelres.resilience._redis_breaker import RedisBreakerStorage
from otelres.resilience._redis_bucket import RedisTokenBucket
from otelres.resilience._redis_client import RedisConnection, RedisUnavailableError
from otelres.resilience._redis_scripts import BUCKET_SCRIPT
from otelres.testing import TelemetryCapture, capture_telemetry
from tests.redis.conftest import RedisServer

pytestmark = pytest.mark.integration

CLOSED = BreakerState.CLOSED
OPEN = BreakerState.OPEN


@pytest.fixture(name="private_telemetry")
def _private_telemetry() -> TelemetryCapture:
    return capture_telemetry(install_global=False)


@pytest.fixture(name="black_hole")
def _black_hole() -> Iterator[str]:
    """The URL of a TCP port that accepts connections and never answers (a hung Redis)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    yield f"redis://127.0.0.1:{sock.getsockname()[1]}/0"
    sock.close()


def connect(
    server: RedisServer, telemetry: TelemetryCapture | None = None, **kwargs: object
) -> RedisConnection:
    options: dict[str, object] = {"socket_timeout": 0.2, "connect_timeout": 0.2, "reconnect_interval": 0.3}
    options.update(kwargs)
    return RedisConnection(
        server.url,
        meter_provider=None if telemetry is None else telemetry.meter_provider,
        **options,  # type: ignore[arg-type]
    )


def test_a_hung_redis_costs_at_most_the_socket_timeout(black_hole: str) -> None:
    """Against a server that never answers, a call gives up after the socket timeout."""
    conn = RedisConnection(black_hole, socket_timeout=0.2, connect_timeout=0.2)
    bucket = RedisTokenBucket("hang", conn, rate=1, capacity=1, fail_mode="open")
    start = time.monotonic()
    assert bucket.try_acquire(1) == 0.0  # fail-open: the local bucket granted it
    assert time.monotonic() - start < 0.2 + 0.3
    start = time.monotonic()
    assert bucket.try_acquire(1) > 0  # while down: no network at all
    assert time.monotonic() - start < 0.05
    assert bucket.unavailable_calls == 2
    conn.close()


def test_a_hung_redis_never_blocks_the_event_loop_longer_than_the_timeout(black_hole: str) -> None:
    """The asyncio path also gives up after the socket timeout and applies the fail mode."""
    conn = RedisConnection(black_hole, socket_timeout=0.2, connect_timeout=0.2)
    bucket = RedisTokenBucket("hang", conn, rate=1, capacity=1, fail_mode="closed")

    async def main() -> float:
        start = time.monotonic()
        with pytest.raises(RateLimitExceededError, match="Redis is unavailable"):
            await bucket.reserve_async(1, None)
        elapsed = time.monotonic() - start
        await conn.aclose()
        return elapsed

    assert asyncio.run(main()) < 0.2 + 0.3


def test_connection_fails_fast_while_down_and_reconnects_by_itself(
    own_redis_server: RedisServer, caplog: pytest.LogCaptureFixture, private_telemetry: TelemetryCapture
) -> None:
    """After Redis dies calls fail at once; once it is back, the next try after the interval succeeds."""
    conn = connect(own_redis_server, private_telemetry)
    conn.run(BUCKET_SCRIPT, "k", 1, 1, 0, 0)
    assert conn.available
    assert private_telemetry.value("otelres.redis.available") == 1
    own_redis_server.kill()
    with caplog.at_level(logging.WARNING, logger="otelres"):
        for _ in range(20):
            with pytest.raises(RedisUnavailableError, match=r"redis://127\.0\.0\.1:\d+/0"):
                conn.run(BUCKET_SCRIPT, "k", 1, 1, 0, 0)
        assert not conn.available
        assert private_telemetry.value("otelres.redis.available") == 0
        own_redis_server.start()
        with pytest.raises(RedisUnavailableError):  # still inside the reconnect interval
            conn.run(BUCKET_SCRIPT, "k", 1, 1, 0, 0)
        time.sleep(0.35)
        assert conn.run(BUCKET_SCRIPT, "k", 1, 1, 0, 0)[0] == 1
    assert conn.available
    messages = [r.getMessage() for r in caplog.records]
    assert sum("is unavailable" in m for m in messages) == 1  # once per outage, not per call
    assert sum("answers again after" in m for m in messages) == 1
    conn.close()


def test_credentials_in_the_url_never_reach_errors_or_logs(
    own_redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    """A password in the Redis URL appears in no error message, log line or repr."""
    url = f"redis://bot:s3cr3t-pass@127.0.0.1:{own_redis_server.port}/0"
    conn = RedisConnection(url, socket_timeout=0.2, connect_timeout=0.2)
    own_redis_server.kill()
    with caplog.at_level(logging.DEBUG, logger="otelres"), pytest.raises(RedisUnavailableError) as info:
        conn.run(BUCKET_SCRIPT, "k", 1, 1, 0, 0)
    assert "s3cr3t" not in str(info.value)
    assert "s3cr3t" not in repr(conn)
    assert all("s3cr3t" not in r.getMessage() for r in caplog.records)


def test_breaker_fail_open_uses_local_state_and_returns_to_shared_state(
    own_redis_server: RedisServer, private_telemetry: TelemetryCapture
) -> None:
    """Fail-open: during an outage this process's breaker works alone; afterwards Redis decides again."""
    conn = connect(own_redis_server, private_telemetry)
    storage = RedisBreakerStorage(
        "k", conn, fail_mode="open", meter_provider=private_telemetry.meter_provider
    )
    shared = storage.transition(CLOSED, OPEN, generation=0, open_for=60)
    assert shared is not None
    own_redis_server.kill()
    assert storage.state is CLOSED  # the local fallback knows nothing of the shared trip
    assert storage.add_failure() == 1
    local = storage.snapshot()
    assert local.failures == 1
    opened = storage.transition(CLOSED, OPEN, generation=local.generation, open_for=60)
    assert opened is not None
    assert storage.state is OPEN
    assert storage.unavailable_calls == 2
    points = private_telemetry.points("otelres.redis.unavailable")
    assert [(p.attributes, p.value) for p in points] == [
        ({"guard.kind": "breaker", "guard.name": "k", "redis.fail_mode": "open"}, 2)
    ]
    own_redis_server.start()  # empty: the shared trip is gone with the old server
    time.sleep(0.35)
    assert storage.state is CLOSED
    RedisBreakerStorage("k", conn).transition(CLOSED, OPEN, generation=0, open_for=60)
    assert storage.state is OPEN
    # A reading from the outage can no longer change anything.
    assert storage.transition(OPEN, BreakerState.HALF_OPEN, generation=opened.generation) is None
    conn.close()


def test_breaker_fail_closed_rejects_until_redis_is_back(own_redis_server: RedisServer) -> None:
    """Fail-closed: during an outage the breaker reads open with a retry_after, and nothing moves it."""
    conn = connect(own_redis_server)
    storage = RedisBreakerStorage("k", conn, fail_mode="closed")
    assert storage.state is CLOSED
    own_redis_server.kill()
    assert storage.state is OPEN
    snap = storage.snapshot()
    assert snap.state is OPEN
    assert 0 < snap.retry_after <= 0.3
    assert storage.transition(OPEN, BreakerState.HALF_OPEN, generation=snap.generation) is None
    assert storage.try_acquire_probe(snap.generation, 10) is False
    assert storage.add_failure() == 0
    assert storage.unavailable_calls == 1
    own_redis_server.start()
    time.sleep(0.35)
    assert storage.state is CLOSED
    conn.close()


def test_bucket_fail_open_meters_locally_at_the_fail_open_rate(own_redis_server: RedisServer) -> None:
    """Fail-open: with Redis down the bucket grants from a local bucket of fail_open_rate."""
    conn = connect(own_redis_server)
    bucket = RedisTokenBucket("k", conn, rate=100, capacity=100, fail_mode="open", fail_open_rate=10)
    own_redis_server.kill()
    granted = sum(bucket.try_acquire(1) == 0.0 for _ in range(50))
    assert granted == 10  # the local burst shrinks with the rate: 100 x 10/100
    assert bucket.reserve(1, None) == pytest.approx(0.1, abs=0.02)
    assert bucket.unavailable_calls == 51
    conn.close()


def test_bucket_fail_closed_rejects_every_call(own_redis_server: RedisServer) -> None:
    """Fail-closed: with Redis down every acquisition raises RateLimitExceededError."""
    conn = connect(own_redis_server)
    bucket = RedisTokenBucket("k", conn, rate=100, capacity=100, fail_mode="closed")
    own_redis_server.kill()
    with pytest.raises(RateLimitExceededError, match="fail_mode is 'closed'") as info:
        bucket.try_acquire(1)
    assert info.value.name == "k"
    with pytest.raises(RateLimitExceededError) as info:
        bucket.reserve(1, 5)
    assert bucket.available() == 0.0  # nothing can be had while Redis is away
    assert info.value.retry_after is not None
    assert 0 < info.value.retry_after <= 0.3
    conn.close()


def _wrong_type_at_the_key(client: Any) -> None:
    client.set("t:bucket:refused", "not a hash")


def _out_of_memory(client: Any) -> None:
    client.config_set("maxmemory-policy", "noeviction")
    client.config_set("maxmemory", 1)


@pytest.mark.parametrize(
    ("refuse", "reason"), [(_wrong_type_at_the_key, "WRONGTYPE"), (_out_of_memory, "maxmemory")]
)
def test_a_command_redis_refuses_gets_the_fail_mode_and_one_log_line_not_an_outage(
    own_redis_server: RedisServer,
    caplog: pytest.LogCaptureFixture,
    refuse: Callable[[Any], None],
    reason: str,
) -> None:
    """Redis refusing every call: 50 fail-open calls are granted locally and counted, one error is logged, Redis stays up."""
    conn = RedisConnection(own_redis_server.url, key_prefix="t")
    refuse(conn.client)
    bucket = RedisTokenBucket("refused", conn, rate=1000, capacity=1000, fail_mode="open")
    with caplog.at_level(logging.ERROR, logger="otelres"):
        for _ in range(50):
            assert bucket.try_acquire(1) == 0.0
    refusals = [r.getMessage() for r in caplog.records if "refused a command" in r.getMessage()]
    assert len(refusals) == 1
    assert reason in refusals[0]
    assert bucket.unavailable_calls == 50
    assert conn.available  # the server answers; it is not an outage to wait out
    conn.close()


def test_forcing_during_an_outage_holds_in_this_process_until_redis_is_back(
    own_redis_server: RedisServer,
) -> None:
    """force_open() while Redis is down applies locally; once Redis answers, its state rules."""
    conn = connect(own_redis_server)
    storage = RedisBreakerStorage("k", conn, fail_mode="open")
    own_redis_server.kill()
    assert storage.force(BreakerState.FORCED_OPEN).state is BreakerState.FORCED_OPEN
    assert storage.state is BreakerState.FORCED_OPEN
    own_redis_server.start()
    time.sleep(0.35)
    assert storage.state is CLOSED
    conn.close()


def test_ping_reports_whether_redis_answers_now(own_redis_server: RedisServer) -> None:
    """ping() is True while Redis answers, False once it is gone, True again right after a restart."""
    conn = connect(own_redis_server, reconnect_interval=30.0)
    assert conn.ping() is True
    own_redis_server.kill()
    assert conn.ping() is False
    assert not conn.available
    own_redis_server.start()
    assert conn.ping() is True  # no waiting out the 30 s reconnect interval
    assert conn.available
    conn.close()
