"""Logs with trace IDs, a metrics facade, and alerts evaluated from the OTel metric pipeline.

The seed system's usage works as it did::

    from otelres.monitoring import get_logger, get_metrics_collector

    logger = get_logger(__name__)
    metrics = get_metrics_collector()
    with metrics.timer("operation_duration"):
        logger.info("Starting operation", extra={"strategy": "ma_crossover"})
        metrics.increment("operations_completed")

* logs: :func:`setup_logging` (``otelres.configure()`` calls it), :func:`get_logger`,
  :func:`register_secret`; JSON or text lines with ``trace_id`` / ``span_id``, optional
  OTLP export, secrets masked everywhere;
* metrics: :class:`MetricsCollector`, :func:`get_metrics_collector`;
* alerts: :class:`AlertManager` with :class:`AlertRule` (and :func:`health_red`,
  :func:`breaker_open`), notifying :class:`LogAlertHandler`, any callable,
  :class:`WebhookAlertHandler` and :class:`EmailAlertHandler`.

Names are resolved on first access, so ``import otelres.monitoring`` loads nothing else.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from otelres._lazy import lazy_exports

if TYPE_CHECKING:
    from otelres.monitoring._alert_handlers import (
        AlertDeliveryError,
        EmailAlertHandler,
        LogAlertHandler,
        WebhookAlertHandler,
        alert_payload,
    )
    from otelres.monitoring._alert_rules import Alert, AlertRule, breaker_open, health_red
    from otelres.monitoring._alerts import AlertManager
    from otelres.monitoring._formatters import JsonLogFormatter, TextLogFormatter
    from otelres.monitoring._logging import (
        StructuredLogger,
        get_logger,
        setup_logging,
        teardown_logging,
    )
    from otelres.monitoring._metrics import MetricsCollector, Timer, get_metrics_collector
    from otelres.monitoring._otlp_handler import OTelLogHandler
    from otelres.monitoring._redaction import Redactor, register_secret

__all__ = [
    "Alert",
    "AlertDeliveryError",
    "AlertManager",
    "AlertRule",
    "EmailAlertHandler",
    "JsonLogFormatter",
    "LogAlertHandler",
    "MetricsCollector",
    "OTelLogHandler",
    "Redactor",
    "StructuredLogger",
    "TextLogFormatter",
    "Timer",
    "WebhookAlertHandler",
    "alert_payload",
    "breaker_open",
    "get_logger",
    "get_metrics_collector",
    "health_red",
    "register_secret",
    "setup_logging",
    "teardown_logging",
]

_LAZY: dict[str, str] = {
    "AlertDeliveryError": "_alert_handlers",
    "EmailAlertHandler": "_alert_handlers",
    "LogAlertHandler": "_alert_handlers",
    "WebhookAlertHandler": "_alert_handlers",
    "alert_payload": "_alert_handlers",
    "Alert": "_alert_rules",
    "AlertRule": "_alert_rules",
    "breaker_open": "_alert_rules",
    "health_red": "_alert_rules",
    "AlertManager": "_alerts",
    "JsonLogFormatter": "_formatters",
    "TextLogFormatter": "_formatters",
    "StructuredLogger": "_logging",
    "get_logger": "_logging",
    "setup_logging": "_logging",
    "teardown_logging": "_logging",
    "MetricsCollector": "_metrics",
    "Timer": "_metrics",
    "get_metrics_collector": "_metrics",
    "OTelLogHandler": "_otlp_handler",
    "Redactor": "_redaction",
    "register_secret": "_redaction",
}


__getattr__, __dir__ = lazy_exports(__name__, _LAZY, globals())
