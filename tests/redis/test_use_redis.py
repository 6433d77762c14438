"""use_redis(): breakers and configured limiters of a process keep their state in Redis."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from otelres import config
from otelres.resilience import (
    CircuitBreaker,
    CircuitBreakerOpenError,
    LocalTokenBucket,
    RateLimiter,
    RateLimitExceededError,
    RedisBreakerStorage,
    RedisConnection,
    RedisTokenBucket,
    policy,
    use_local_state,
    use_redis,
)
from otelres.resilience._breaker_storage import LocalBreakerStorage
from tests.conftest import free_port
from tests.redis.conftest import RedisServer

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def _local_state_afterwards() -> Iterator[None]:
    """Whatever a test switches on, the next test starts with in-process state."""
    yield
    use_local_state()


def test_use_redis_puts_new_breakers_and_configured_limiters_in_redis(
    redis_server: RedisServer,
) -> None:
    """After use_redis, new breakers and from_config limiters use Redis; use_local_state undoes it."""
    conn = use_redis(redis_server.url)
    assert isinstance(conn, RedisConnection)
    breaker = CircuitBreaker("kraken", failure_threshold=2)
    assert isinstance(breaker.storage, RedisBreakerStorage)
    limiter = RateLimiter.from_config("kraken", rate=5.0)
    assert isinstance(limiter.backend, RedisTokenBucket)
    assert limiter.backend.key == "otelres:bucket:kraken"
    use_local_state()
    assert isinstance(CircuitBreaker("kraken").storage, LocalBreakerStorage)
    assert isinstance(RateLimiter.from_config("kraken", rate=5.0).backend, LocalTokenBucket)
    conn.close()


def test_use_redis_without_arguments_reads_the_configuration(redis_server: RedisServer) -> None:
    """use_redis() takes url, key prefix, fail mode and timeouts from [resilience.redis]."""
    config.set_current(
        config.config_from_dict(
            {
                "resilience": {
                    "redis": {
                        "enabled": True,
                        "url": redis_server.url,
                        "key_prefix": "bots",
                        "fail_mode": "closed",
                        "socket_timeout_seconds": 0.1,
                        "connect_timeout_seconds": 0.2,
                        "reconnect_interval_seconds": 2.0,
                        "state_cache_seconds": 0.5,
                    },
                    "rate_limits": {"binance": 20},
                }
            }
        )
    )
    conn = use_redis()
    assert (conn.url, conn.key_prefix, conn.fail_mode) == (redis_server.url, "bots", "closed")
    assert (conn.socket_timeout, conn.connect_timeout, conn.reconnect_interval) == (0.1, 0.2, 2.0)
    storage = CircuitBreaker("binance").storage
    assert isinstance(storage, RedisBreakerStorage)
    assert (storage.key, storage.fail_mode) == ("bots:breaker:binance", "closed")
    limiter = policy("binance").limiter
    assert limiter is not None
    assert isinstance(limiter.backend, RedisTokenBucket)
    assert (limiter.rate, limiter.backend.key) == (20.0, "bots:bucket:binance")
    conn.close()


def test_bad_redis_settings_are_named() -> None:
    """An invalid [resilience.redis] value is reported with its dotted key."""
    with pytest.raises(config.ConfigError) as info:
        config.config_from_dict(
            {"resilience": {"redis": {"fail_mode": "ajar", "reconnect_interval_seconds": 0}}}
        )
    text = str(info.value)
    assert "resilience.redis.fail_mode" in text
    assert "resilience.redis.reconnect_interval_seconds" in text
    with pytest.raises(ValueError, match="url must start with redis://"):
        use_redis("http://user:pw@127.0.0.1:6379")


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://user:s3cret@127.0.0.1:6379/0", "must start with redis://"),
        ("redis://:s3cret@127.0.0.1:63790000/0", "no valid port"),
        ("redis://:s3cret@127.0.0.1:port/0", "no valid port"),
        ("redis://:s3cret@127.0.0.1:6379/O", "database number"),
    ],
)
def test_a_bad_url_in_the_configuration_names_the_key_and_hides_the_password(
    url: str, problem: str
) -> None:
    """Loading a config whose Redis URL redis-py would refuse or misread is a ConfigError
    naming resilience.redis.url (so `otelres config check` catches it), without the password."""
    with pytest.raises(config.ConfigError, match=rf"bot\.toml: resilience\.redis\.url: .*{problem}") as info:
        config.config_from_dict({"resilience": {"redis": {"url": url}}}, source="bot.toml", environ={})
    assert "s3cret" not in str(info.value)


def test_use_redis_contacts_nothing_and_an_absent_server_only_triggers_the_fail_mode() -> None:
    """Switching to a Redis nobody runs raises nothing; guarded calls then follow fail-open."""
    conn = use_redis(RedisConnection(f"redis://127.0.0.1:{free_port()}/0", fail_mode="open"))
    breaker = CircuitBreaker("absent", failure_threshold=1, reset_timeout=60)
    assert breaker.call(lambda: 42) == 42
    with pytest.raises(ZeroDivisionError):
        breaker.call(lambda: 1 / 0)
    with pytest.raises(CircuitBreakerOpenError):  # the local fallback tripped on its own
        breaker.call(lambda: 42)
    assert not conn.available


def test_async_callers_share_the_redis_budget_and_breaker(redis_server: RedisServer) -> None:
    """Async limiter and breaker calls use the same Redis state as sync ones, without blocking the loop."""
    conn = RedisConnection(redis_server.url)
    bucket = RedisTokenBucket("async", conn, rate=1, capacity=3)
    limiter = RateLimiter("async", backend=bucket, mode="reject")
    breaker = CircuitBreaker("async", failure_threshold=1, storage=RedisBreakerStorage("async", conn))

    async def boom() -> None:
        raise ConnectionError("down")

    async def main() -> list[str]:
        outcomes = []
        for _ in range(4):
            try:
                await limiter.acquire_async()
                outcomes.append("acquired")
            except RateLimitExceededError:
                outcomes.append("rejected")
        with pytest.raises(ConnectionError):
            await breaker.call_async(boom)
        await conn.aclose()
        return outcomes

    assert asyncio.run(main()) == ["acquired"] * 3 + ["rejected"]
    other = CircuitBreaker("async", storage=RedisBreakerStorage("async", RedisConnection(redis_server.url)))
    with pytest.raises(CircuitBreakerOpenError):
        other.call(lambda: None)
    conn.close()


def test_wait_mode_sleeps_the_wait_redis_returned(redis_server: RedisServer) -> None:
    """In wait mode a limiter on a drained shared bucket sleeps about the time Redis computed."""
    conn = RedisConnection(redis_server.url)
    limiter = RateLimiter("wait", backend=RedisTokenBucket("wait", conn, rate=10, capacity=1))
    limiter.acquire()
    start = time.monotonic()
    waited = limiter.acquire()
    elapsed = time.monotonic() - start
    assert 0.08 < waited <= 0.1
    assert 0.08 < elapsed < 0.3
    conn.close()


@pytest.fixture(name="auth_server")
def _auth_server(redis_binary: str, tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server that requires a password."""
    server = RedisServer(redis_binary, tmp_path / "auth", password="pw-from-env-123")
    server.start()
    yield server
    server.stop()


def test_the_password_can_come_from_the_environment(
    auth_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """password_env names the variable holding the password; a missing variable is named in the error."""
    config.set_current(
        config.config_from_dict(
            {"resilience": {"redis": {"url": auth_server.url, "password_env": "BOT_REDIS_PW"}}}
        )
    )
    monkeypatch.setenv("BOT_REDIS_PW", "pw-from-env-123")
    conn = use_redis()
    bucket = RedisTokenBucket("auth", conn, rate=0.01, capacity=1, fail_mode="closed")
    assert bucket.try_acquire(1) == 0.0
    assert bucket.try_acquire(1) > 0  # answered by Redis: the bucket there is empty
    assert "pw-from-env" not in repr(conn)
    conn.close()
    monkeypatch.delenv("BOT_REDIS_PW")
    with pytest.raises(ValueError, match=r"resilience\.redis\.password_env: .*'BOT_REDIS_PW'"):
        use_redis()


def test_a_wrong_password_is_an_outage_and_stays_secret(
    auth_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    """A refused password makes calls use the fail mode; the password appears in no log line."""
    conn = RedisConnection(auth_server.url, password="wrong-pw-456", fail_mode="open")
    bucket = RedisTokenBucket("auth", conn, rate=1, capacity=1)
    with caplog.at_level(logging.DEBUG, logger="otelres"):
        assert bucket.try_acquire(1) == 0.0  # the local bucket granted it
    assert not conn.available
    assert bucket.unavailable_calls == 1
    assert all("wrong-pw" not in r.getMessage() for r in caplog.records)
    conn.close()
