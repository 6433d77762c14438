"""Building an :class:`AlertManager` from ``[monitoring.alerts]`` in ``config.toml``.

::

    [monitoring.alerts]
    breaker_open = true                  # alert while any breaker is open
    health_red_seconds = 60              # ... or a health check is RED for a minute
    webhook_url_env = "ALERT_WEBHOOK_URL"
    email_to = ["oncall@example.com"]
    email_from = "bot@example.com"
    smtp_host = "smtp.example.com"
    smtp_port = 587
    smtp_security = "starttls"
    smtp_username = "bot"
    smtp_password_env = "SMTP_PASSWORD"

    [[monitoring.alerts.rules]]
    name = "order_rejects"
    instrument = "bot.orders.rejected"
    comparison = ">="
    threshold = 3
    window_seconds = 300
    attributes = { exchange = "kraken" }

Credentials (the webhook URL, its signing secret, the SMTP password) are read from the
environment variables the file names, never from the file itself. Every problem (a rule
:class:`AlertRule` refuses, a variable that is not set, an e-mail target without a server)
is reported at once in one :class:`~otelres.config.ConfigError` naming the key.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from otelres.monitoring._alert_rules import AlertRule, breaker_open, health_red

if TYPE_CHECKING:
    from otelres.config import AlertSettings, Config
    from otelres.monitoring._alerts import AlertHandler, AlertManager

__all__ = ["alert_manager_from_config"]

_KEY = "monitoring.alerts"


def alert_manager_from_config(
    config: Config | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    **manager_options: Any,
) -> AlertManager:
    """An :class:`AlertManager` with the rules and handlers ``[monitoring.alerts]`` describes.

    *config* defaults to ``otelres.config.current()``, *environ* to ``os.environ``;
    *manager_options* go to :class:`AlertManager` (``meter_provider``, ``clock``, ...).
    Register its ``reader`` on the ``MeterProvider`` and :meth:`~AlertManager.start` it.
    """
    from otelres import config as config_module
    from otelres.monitoring._alerts import AlertManager

    cfg = config if config is not None else config_module.current()
    env = os.environ if environ is None else environ
    where = cfg.source or "<config>"
    settings = cfg.monitoring.alerts
    problems: list[str] = []
    rules = _rules(settings, where, problems)
    handlers = _handlers(settings, env, where, problems)
    if problems:
        raise config_module.ConfigError(problems)
    manager_options.setdefault("service_name", cfg.telemetry.service_name)
    manager = AlertManager(
        handlers=handlers,
        renotify_seconds=settings.renotify_seconds,
        send_resolved=settings.send_resolved,
        interval_seconds=settings.interval_seconds,
        **manager_options,
    )
    for rule in rules:
        manager.add_rule(rule)
    return manager


def _rules(settings: AlertSettings, where: str, problems: list[str]) -> list[AlertRule]:
    """The configured rules; each one :class:`AlertRule` refuses becomes a problem line."""
    rules: list[AlertRule] = []
    if settings.breaker_open:
        rules.append(breaker_open())
    if settings.health_red_seconds is not None:
        rules.append(health_red(for_seconds=settings.health_red_seconds))
    names = {rule.name for rule in rules}
    for index, spec in enumerate(settings.rules):
        key = f"{where}: {_KEY}.rules[{index}]"
        try:
            rule = AlertRule(
                spec.name,
                spec.instrument,
                spec.comparison,
                spec.threshold,
                attributes=_filter(spec.attributes),
                exclude=_filter(spec.exclude),
                for_seconds=spec.for_seconds,
                window_seconds=spec.window_seconds,
                statistic=spec.statistic,
                severity=spec.severity,
                summary=spec.summary,
                resolved_summary=spec.resolved_summary,
            )
        except ValueError as exc:
            problems.append(f"{key}: {exc}")
            continue
        if rule.name in names:
            problems.append(f"{key}.name: a rule named {rule.name!r} is defined twice")
            continue
        names.add(rule.name)
        rules.append(rule)
    return rules


def _secret(env: Mapping[str, str], variable: str, key: str, problems: list[str]) -> str | None:
    """The value of environment *variable* named by config *key*; a problem when unset."""
    value = env.get(variable, "")
    if not value:
        problems.append(f"{key}: environment variable {variable} is not set")
        return None
    return value


def _handlers(
    settings: AlertSettings, env: Mapping[str, str], where: str, problems: list[str]
) -> list[AlertHandler]:
    """The configured notification targets, credentials taken from the environment."""
    from otelres.monitoring._alert_handlers import (
        EmailAlertHandler,
        LogAlertHandler,
        WebhookAlertHandler,
    )

    handlers: list[AlertHandler] = []
    if settings.log:
        handlers.append(LogAlertHandler())
    if settings.webhook_url_env:
        url = _secret(env, settings.webhook_url_env, f"{where}: {_KEY}.webhook_url_env", problems)
        signing = None
        if settings.webhook_signing_secret_env:
            signing = _secret(
                env,
                settings.webhook_signing_secret_env,
                f"{where}: {_KEY}.webhook_signing_secret_env",
                problems,
            )
        if url is not None:
            try:
                handlers.append(WebhookAlertHandler(url, signing_secret=signing))
            except ValueError as exc:
                problems.append(f"{where}: {_KEY}.webhook_url_env: {exc}")
    if settings.email_to:
        missing = [k for k in ("smtp_host", "email_from") if not getattr(settings, k)]
        for key in missing:
            problems.append(f"{where}: {_KEY}.{key}: required when email_to is set")
        password = None
        if settings.smtp_password_env:
            password = _secret(
                env, settings.smtp_password_env, f"{where}: {_KEY}.smtp_password_env", problems
            )
        if bool(settings.smtp_username) != bool(settings.smtp_password_env):
            problems.append(
                f"{where}: {_KEY}.smtp_username: smtp_username and smtp_password_env go together"
            )
        elif not missing and (password is not None or not settings.smtp_username):
            handlers.append(
                EmailAlertHandler(
                    settings.smtp_host,
                    settings.smtp_port,
                    sender=settings.email_from,
                    recipients=list(settings.email_to),
                    username=settings.smtp_username or None,
                    password=password,
                    security=settings.smtp_security,
                )
            )
    return handlers


def _filter(values: Mapping[str, tuple[str, ...]]) -> dict[str, str | tuple[str, ...]]:
    """A config filter as AlertRule takes it: one value as itself, several as a tuple."""
    return {key: options[0] if len(options) == 1 else options for key, options in values.items()}
