"""Guards for calls to flaky services: circuit breaker, retry, rate limiter, fallback,
timeout, bulkhead, and policies that compose them.

Every primitive and :class:`Policy` works as a decorator on sync and async functions,
and through ``.call(fn, *args, **kwargs)`` / ``await .call_async(fn, *args, **kwargs)``::

    from otelres.resilience import circuit_breaker

    @circuit_breaker(name="kraken_api", failure_threshold=5)
    async def fetch_kraken_data(): ...

Names are resolved on first access from the private modules that implement them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from otelres._lazy import lazy_exports

if TYPE_CHECKING:
    from otelres.resilience._breaker import (
        BreakerState,
        BreakerTransition,
        CircuitBreaker,
        all_breakers,
        circuit_breaker,
        get_breaker,
    )
    from otelres.resilience._breaker_storage import (
        BreakerStorage,
        LocalBreakerStorage,
        StoredState,
    )
    from otelres.resilience._bulkhead import Bulkhead
    from otelres.resilience._errors import (
        BulkheadFullError,
        CallTimeoutError,
        CircuitBreakerOpenError,
        GuardMisuseError,
        RateLimitExceededError,
        ResilienceError,
    )
    from otelres.resilience._fallback import Fallback
    from otelres.resilience._policy import Policy, policy
    from otelres.resilience._pybreaker import PybreakerListener, instrument_pybreaker
    from otelres.resilience._rate_limiter import LimiterStats, RateLimiter, all_limiters
    from otelres.resilience._rate_limiter_backend import LocalTokenBucket, TokenBucketBackend
    from otelres.resilience._redis import (
        RedisBreakerStorage,
        RedisConnection,
        RedisTokenBucket,
        RedisUnavailableError,
        use_local_state,
        use_redis,
    )
    from otelres.resilience._retry import Retry, RetryDetails, no_backoff
    from otelres.resilience._timeout import Timeout

__all__ = [
    "BreakerState",
    "BreakerStorage",
    "BreakerTransition",
    "Bulkhead",
    "BulkheadFullError",
    "CallTimeoutError",
    "CircuitBreaker",
    "CircuitBreakerOpenError",
    "Fallback",
    "GuardMisuseError",
    "LimiterStats",
    "LocalBreakerStorage",
    "LocalTokenBucket",
    "Policy",
    "PybreakerListener",
    "RateLimitExceededError",
    "RateLimiter",
    "RedisBreakerStorage",
    "RedisConnection",
    "RedisTokenBucket",
    "RedisUnavailableError",
    "ResilienceError",
    "Retry",
    "RetryDetails",
    "StoredState",
    "Timeout",
    "TokenBucketBackend",
    "all_breakers",
    "all_limiters",
    "circuit_breaker",
    "get_breaker",
    "instrument_pybreaker",
    "no_backoff",
    "policy",
    "use_local_state",
    "use_redis",
]

_LAZY: dict[str, str] = {
    "BreakerState": "_breaker",
    "CircuitBreaker": "_breaker",
    "all_breakers": "_breaker",
    "circuit_breaker": "_breaker",
    "get_breaker": "_breaker",
    "BreakerTransition": "_breaker",
    "BreakerStorage": "_breaker_storage",
    "LocalBreakerStorage": "_breaker_storage",
    "StoredState": "_breaker_storage",
    "PybreakerListener": "_pybreaker",
    "instrument_pybreaker": "_pybreaker",
    "Bulkhead": "_bulkhead",
    "BulkheadFullError": "_errors",
    "CallTimeoutError": "_errors",
    "CircuitBreakerOpenError": "_errors",
    "GuardMisuseError": "_errors",
    "RateLimitExceededError": "_errors",
    "ResilienceError": "_errors",
    "Fallback": "_fallback",
    "Policy": "_policy",
    "policy": "_policy",
    "RateLimiter": "_rate_limiter",
    "all_limiters": "_rate_limiter",
    "LimiterStats": "_rate_limiter",
    "LocalTokenBucket": "_rate_limiter_backend",
    "TokenBucketBackend": "_rate_limiter_backend",
    "Retry": "_retry",
    "RetryDetails": "_retry",
    "no_backoff": "_retry",
    "Timeout": "_timeout",
    "RedisBreakerStorage": "_redis",
    "RedisConnection": "_redis",
    "RedisTokenBucket": "_redis",
    "RedisUnavailableError": "_redis",
    "use_local_state": "_redis",
    "use_redis": "_redis",
}


__getattr__, __dir__ = lazy_exports(__name__, _LAZY, globals())
