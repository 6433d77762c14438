"""Health checks that say GREEN, YELLOW or RED, published as OpenTelemetry gauges,
with a command line (``otelres health``) and Kubernetes-style HTTP probes (``serve()``).

The seed system's usage works unchanged::

    from otelres.health import HealthChecker

    checker = HealthChecker()
    results = await checker.run_all_checks()
    overall = checker.get_overall_status(results)

Write a check as a function or a class::

    from otelres.health import HealthResult, health_check

    @health_check("database", tags=["readiness"])
    async def database() -> HealthResult:
        await db.execute("SELECT 1")
        return HealthResult.green()

See docs/HEALTH_CHECKS.md. Names are resolved on first access, so ``import
otelres.health`` loads nothing beyond the standard library and ``opentelemetry-api``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from otelres._lazy import lazy_exports

if TYPE_CHECKING:
    from otelres.health._check import (
        CheckRegistry,
        FunctionCheck,
        HealthCheck,
        default_registry,
        health_check,
    )
    from otelres.health._checker import HealthChecker, StatusChange
    from otelres.health._model import HealthResult, HealthStatus
    from otelres.health._report import SCHEMA_VERSION, HealthReport
    from otelres.health._runner import HealthRunner
    from otelres.health._server import HealthServer, HTTPRequest, HTTPResponse, serve
    from otelres.health.checks import (
        BackupFreshnessCheck,
        BackupSource,
        CircuitBreakerCheck,
        DiskSpaceCheck,
        ExchangeCheck,
        RateLimiterCheck,
        TelemetryExportCheck,
    )

__all__ = [
    "SCHEMA_VERSION",
    "BackupFreshnessCheck",
    "BackupSource",
    "CheckRegistry",
    "CircuitBreakerCheck",
    "DiskSpaceCheck",
    "ExchangeCheck",
    "FunctionCheck",
    "HTTPRequest",
    "HTTPResponse",
    "HealthCheck",
    "HealthChecker",
    "HealthReport",
    "HealthResult",
    "HealthRunner",
    "HealthServer",
    "HealthStatus",
    "RateLimiterCheck",
    "StatusChange",
    "TelemetryExportCheck",
    "default_registry",
    "health_check",
    "serve",
]

_LAZY: dict[str, str] = {
    "CheckRegistry": "_check",
    "FunctionCheck": "_check",
    "HealthCheck": "_check",
    "default_registry": "_check",
    "health_check": "_check",
    "HealthChecker": "_checker",
    "StatusChange": "_checker",
    "HealthResult": "_model",
    "HealthStatus": "_model",
    "SCHEMA_VERSION": "_report",
    "HealthReport": "_report",
    "HealthRunner": "_runner",
    "HTTPRequest": "_server",
    "HTTPResponse": "_server",
    "HealthServer": "_server",
    "serve": "_server",
    **dict.fromkeys(
        (
            "BackupFreshnessCheck",
            "BackupSource",
            "CircuitBreakerCheck",
            "DiskSpaceCheck",
            "ExchangeCheck",
            "RateLimiterCheck",
            "TelemetryExportCheck",
        ),
        "checks",
    ),
}


__getattr__, __dir__ = lazy_exports(__name__, _LAZY, globals())
