"""otelres: OpenTelemetry-native resilience and observability for flaky APIs.

Guard calls with :mod:`otelres.resilience` (circuit breaker, retry, rate limiter,
fallback, timeout, bulkhead, policies), see them through OpenTelemetry, ask
:mod:`otelres.health` whether the system is GREEN, YELLOW or RED, log with trace IDs
through :mod:`otelres.monitoring`, and keep trustworthy backups with :mod:`otelres.backup`.

``import otelres`` is cheap: it loads only ``opentelemetry-api``. The SDK, exporters and
optional packages are imported when a function that needs them is called; the names
below are resolved on first access.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

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


def __getattr__(name: str) -> Any:
    if name == "__version__":
        from otelres._version import __version__

        return __version__
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'otelres' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
