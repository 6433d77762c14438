"""otelres: OpenTelemetry-native resilience and observability for flaky APIs.

Guard calls with :mod:`otelres.resilience` (circuit breaker, retry, rate limiter,
fallback, timeout, bulkhead, policies), see them through OpenTelemetry, ask
:mod:`otelres.health` whether the system is GREEN, YELLOW or RED, log with trace IDs
through :mod:`otelres.monitoring`, and keep trustworthy backups with :mod:`otelres.backup`.

``import otelres`` is cheap: the names below are resolved on first access, so it loads
no OpenTelemetry at all until one is used, and then only ``opentelemetry-api``. The SDK,
exporters and optional packages are imported when a function that needs them is called.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from otelres._lazy import lazy_exports

if TYPE_CHECKING:
    from otelres.config import Config, ConfigError, load_config
    from otelres.resilience import (
        Bulkhead,
        CircuitBreaker,
        CircuitBreakerOpenError,
        Fallback,
        Policy,
        RateLimiter,
        RateLimitExceededError,
        Retry,
        Timeout,
        circuit_breaker,
        get_breaker,
        policy,
    )
    from otelres.telemetry import Telemetry, configure

__all__ = [
    "Bulkhead",
    "CircuitBreaker",
    "CircuitBreakerOpenError",
    "Config",
    "ConfigError",
    "Fallback",
    "Policy",
    "RateLimitExceededError",
    "RateLimiter",
    "Retry",
    "Telemetry",
    "Timeout",
    "__version__",
    "circuit_breaker",
    "configure",
    "get_breaker",
    "load_config",
    "policy",
]

_LAZY = {
    "__version__": "otelres._version",
    "Config": "otelres.config",
    "ConfigError": "otelres.config",
    "load_config": "otelres.config",
    "Telemetry": "otelres.telemetry",
    "configure": "otelres.telemetry",
    **dict.fromkeys(
        (
            "Bulkhead",
            "CircuitBreaker",
            "CircuitBreakerOpenError",
            "Fallback",
            "Policy",
            "RateLimitExceededError",
            "RateLimiter",
            "Retry",
            "Timeout",
            "circuit_breaker",
            "get_breaker",
            "policy",
        ),
        "otelres.resilience",
    ),
}


__getattr__, __dir__ = lazy_exports(__name__, _LAZY, globals())
