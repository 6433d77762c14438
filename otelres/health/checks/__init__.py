"""Built-in checks, and the names ``[health_checks] checks = [...]`` knows them by.

========================  ==========================================================
name                      check
========================  ==========================================================
``circuit_breakers``      :class:`CircuitBreakerCheck` over ``[health_checks] breakers`` (all when empty)
``rate_limiters``         :class:`RateLimiterCheck` (``limiter_max_wait_ratio``, ``limiter_max_rejections``)
``exchange``              :class:`ExchangeCheck` over ``[health_checks] exchanges`` (ccxt ids)
``backup``                :class:`BackupFreshnessCheck` against ``[backup] interval_hours``
``disk_space``            :class:`DiskSpaceCheck` at ``[backup] backup_path``
``telemetry``             :class:`TelemetryExportCheck`
========================  ==========================================================
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from otelres.health._check import HealthCheck
from otelres.health.checks._backup import BackupFreshnessCheck, BackupSource, DiskSpaceCheck
from otelres.health.checks._breakers import CircuitBreakerCheck
from otelres.health.checks._exchange import ExchangeCheck
from otelres.health.checks._limiters import RateLimiterCheck
from otelres.health.checks._telemetry import TelemetryExportCheck

if TYPE_CHECKING:
    from otelres.config import Config

__all__ = [
    "BUILTIN_CHECKS",
    "DEFAULT_CHECKS",
    "BackupFreshnessCheck",
    "BackupSource",
    "CircuitBreakerCheck",
    "DiskSpaceCheck",
    "ExchangeCheck",
    "RateLimiterCheck",
    "TelemetryExportCheck",
]


def _exchange(config: Config) -> HealthCheck:
    settings = config.health_checks
    if not settings.exchanges:
        raise ValueError(
            "the 'exchange' check needs health_checks.exchanges (ccxt exchange ids, "
            'e.g. ["kraken"]), or map it to your own check in [health_checks.custom]'
        )
    return ExchangeCheck(
        list(settings.exchanges), latency_warning=settings.exchange_latency_warning_seconds
    )


#: Built-in check names -> a factory building the check from the configuration.
BUILTIN_CHECKS: Mapping[str, Callable[[Config], HealthCheck]] = {
    "circuit_breakers": lambda config: CircuitBreakerCheck(config.health_checks.breakers),
    "rate_limiters": lambda config: RateLimiterCheck(
        max_wait_ratio=config.health_checks.limiter_max_wait_ratio,
        max_rejections=config.health_checks.limiter_max_rejections,
    ),
    "exchange": _exchange,
    "backup": lambda config: BackupFreshnessCheck(interval_hours=config.backup.interval_hours),
    "disk_space": lambda config: DiskSpaceCheck(
        config.backup.backup_path, min_free_bytes=config.backup.min_free_disk_bytes
    ),
    "telemetry": lambda config: TelemetryExportCheck(),
}

#: What runs when ``[health_checks] checks`` is empty (plus every ``@health_check``).
DEFAULT_CHECKS: tuple[str, ...] = ("circuit_breakers", "rate_limiters", "telemetry")
