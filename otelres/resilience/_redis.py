"""Switching breakers and rate limiters to state shared through Redis.

One exchange API key is one rate budget and one health fate, however many bot processes
use it. :func:`use_redis` makes every circuit breaker created afterwards keep its state in
Redis (:class:`~otelres.resilience.RedisBreakerStorage`) and every rate limiter built from
configuration (``RateLimiter.from_config``, ``policy(name)``) draw from a Redis token bucket
(:class:`~otelres.resilience.RedisTokenBucket`)::

    from otelres.resilience import use_redis, circuit_breaker

    use_redis("redis://redis.internal:6379/0")   # or use_redis() for [resilience.redis]

    @circuit_breaker(name="kraken_api", failure_threshold=5)
    async def fetch_kraken_data(): ...

Breakers and limiters created before the call keep the state they have. A limiter built by
hand chooses its bucket itself: ``RateLimiter(name, backend=RedisTokenBucket(...))``.
:func:`use_local_state` switches back to in-process state for what is created next.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from otelres.resilience._redis_breaker import RedisBreakerStorage, redis_storage_factory
from otelres.resilience._redis_bucket import RedisTokenBucket, redis_bucket_factory
from otelres.resilience._redis_client import RedisConnection, RedisUnavailableError

if TYPE_CHECKING:
    from opentelemetry.metrics import MeterProvider

__all__ = [
    "RedisBreakerStorage",
    "RedisConnection",
    "RedisTokenBucket",
    "RedisUnavailableError",
    "use_local_state",
    "use_redis",
]


def use_redis(
    connection: RedisConnection | str | None = None,
    *,
    meter_provider: MeterProvider | None = None,
) -> RedisConnection:
    """Keep the state of breakers and configured limiters created from now on in Redis.

    *connection* is a :class:`RedisConnection`, a ``redis://`` URL (with the defaults of
    ``[resilience.redis]`` for everything else), or None for the connection that
    ``[resilience.redis]`` of the current configuration describes. Returns the connection
    in use. redis-py is imported here, but nothing is contacted yet: the first guarded call
    connects, and an unreachable Redis is handled by the fail mode, never by an exception here.
    """
    from otelres import config
    from otelres.resilience._breaker_storage import set_default_storage_factory
    from otelres.resilience._rate_limiter import set_backend_factory

    if not isinstance(connection, RedisConnection):
        settings = config.current().resilience.redis
        if connection is not None:
            import dataclasses

            settings = dataclasses.replace(settings, url=connection)
        connection = RedisConnection.from_settings(settings, meter_provider=meter_provider)
    # Import redis-py and build the client now, at start-up, rather than in the first
    # guarded call (the import alone takes a good fraction of a second). No network yet.
    _ = connection.client
    set_default_storage_factory(redis_storage_factory(connection, meter_provider=meter_provider))
    set_backend_factory(redis_bucket_factory(connection, meter_provider=meter_provider))
    return connection


def use_local_state() -> None:
    """Undo :func:`use_redis`: breakers and configured limiters created next keep state in-process."""
    from otelres.resilience._breaker_storage import set_default_storage_factory
    from otelres.resilience._rate_limiter import set_backend_factory

    set_default_storage_factory(None)
    set_backend_factory(None)
