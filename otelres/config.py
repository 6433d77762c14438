"""Loading and validating ``config.toml``.

Where the file comes from, first match wins:

1. the *path* argument of :func:`load_config`;
2. the ``OTELRES_CONFIG`` environment variable;
3. ``./config.toml``.

No file at all is valid and means the defaults. An explicitly named file that does not
exist is an error.

Every section becomes a typed, frozen settings object. Every invalid value (wrong type,
out of range, unknown choice, unknown key) is reported at once in one
:class:`ConfigError` whose lines name the file and the dotted key, say what was expected
and, for a typo, suggest the closest valid key::

    config.toml: resilience.rate_limits.kraken: expected a number > 0, got -1
    config.toml: resilience.circuit_breaker_treshold: unknown key; did you mean 'circuit_breaker_threshold'?

The standard ``OTEL_*`` environment variables take precedence over ``[telemetry]``, as
users of OpenTelemetry expect: ``OTEL_SERVICE_NAME``, ``OTEL_SDK_DISABLED``,
``OTEL_EXPORTER_OTLP_ENDPOINT``, ``OTEL_EXPORTER_OTLP_PROTOCOL``,
``OTEL_TRACES_EXPORTER``, ``OTEL_METRICS_EXPORTER``, ``OTEL_LOGS_EXPORTER``,
``OTEL_RESOURCE_ATTRIBUTES``, ``OTEL_EXPORTER_PROMETHEUS_HOST`` / ``_PORT`` and
``OTEL_METRIC_EXPORT_INTERVAL`` (milliseconds). ``OTELRES_SPAN_MODE`` overrides
``[telemetry] span_mode``. The signal-specific OTLP variables (``..._TRACES_ENDPOINT``,
``..._TRACES_PROTOCOL``, timeouts, headers, certificates) are applied when the exporters
are built (see :mod:`otelres.telemetry`).

Sections are plain frozen dataclasses; the loader reads their type hints, so a later
section is added by declaring a dataclass and a field on :class:`Config`.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import sys
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar, Union

from otelres._redis_url import check_url as check_redis_url

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

__all__ = [
    "AlertRuleSettings",
    "AlertSettings",
    "BackupSettings",
    "BreakerSettings",
    "BulkheadSettings",
    "Config",
    "ConfigError",
    "HealthSettings",
    "MonitoringSettings",
    "RedisSettings",
    "ResilienceSettings",
    "RetrySettings",
    "TelemetrySettings",
    "config_from_dict",
    "current",
    "load_config",
    "set_current",
]

ENV_CONFIG = "OTELRES_CONFIG"
DEFAULT_PATH = "config.toml"


class ConfigError(ValueError):
    """One or more invalid values in a configuration; ``problems`` lists them all.

    Each problem is a line ``"<file>: <dotted.key>: <what is wrong>"``.
    """

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


def _check(**rules: Any) -> dict[str, Any]:
    """Field metadata: ``gt``, ``ge``, ``le`` bounds checked by the loader."""
    return {"rules": rules}


def _empty_map() -> Mapping[str, Any]:
    return types.MappingProxyType({})


# --------------------------------------------------------------------------- sections
ExporterName = Literal["none", "console", "otlp", "prometheus"]


@dataclass(frozen=True)
class TelemetrySettings:
    """``[telemetry]``: where traces, metrics and logs go and how much otelres traces."""

    service_name: str = "otelres-service"
    """``service.name`` of the resource (``OTEL_SERVICE_NAME`` wins)."""
    service_version: str = ""
    """``service.version`` of the resource; empty means not set."""
    environment: str = ""
    """``deployment.environment`` of the resource; empty means not set."""
    sdk_disabled: bool = False
    """Set nothing up at all (``OTEL_SDK_DISABLED=true`` wins)."""
    traces_exporter: tuple[ExporterName, ...] = ("none",)
    """Span exporters: ``none``, ``console``, ``otlp`` (a list or one name)."""
    metrics_exporter: tuple[ExporterName, ...] = ("none",)
    """Metric exporters: ``none``, ``console``, ``otlp``, ``prometheus``."""
    logs_exporter: tuple[ExporterName, ...] = ("none",)
    """Log record exporters: ``none``, ``console``, ``otlp``."""
    otlp_endpoint: str = ""
    """OTLP endpoint; empty means the protocol's default (localhost:4317 / :4318)."""
    otlp_protocol: Literal["grpc", "http/protobuf"] = "grpc"
    """OTLP transport (``OTEL_EXPORTER_OTLP_PROTOCOL`` wins; ``..._TRACES_PROTOCOL`` per signal)."""
    otlp_timeout_seconds: float = field(default=10.0, metadata=_check(gt=0))
    """Time budget of one OTLP export, retries included (``OTEL_EXPORTER_OTLP_TIMEOUT`` wins)."""
    shutdown_timeout_seconds: float = field(default=3.0, metadata=_check(gt=0))
    """At most this long flushing at shutdown and interpreter exit; what is unsent then is dropped."""
    prometheus_host: str = "127.0.0.1"
    """Address the ``/metrics`` endpoint binds."""
    prometheus_port: int = field(default=9464, metadata=_check(ge=0, le=65535))
    """Port of the ``/metrics`` endpoint; 0 picks a free port."""
    metric_export_interval_seconds: float = field(default=10.0, metadata=_check(gt=0))
    """How often the console and OTLP metric exporters send (Prometheus is scraped instead)."""
    span_mode: Literal["off", "events", "always"] = "events"
    """``off``: metrics only; ``events``: policy events on the active span; ``always``: a span per call."""
    resource_attributes: Mapping[str, str] = field(default_factory=_empty_map)
    """Extra resource attributes (``OTEL_RESOURCE_ATTRIBUTES`` wins key by key)."""


@dataclass(frozen=True)
class BreakerSettings:
    """``[resilience.circuit_breaker.<name>]``: one breaker's settings."""

    threshold: int = field(default=5, metadata=_check(ge=1))
    """Consecutive failures that open the breaker (the seed's ``failure_threshold``)."""
    timeout_seconds: float = field(default=60.0, metadata=_check(gt=0))
    """How long the breaker stays open before it admits probe calls."""
    half_open_max_calls: int = field(default=1, metadata=_check(ge=1))
    success_threshold: int = field(default=1, metadata=_check(ge=1))
    """Successful probes that close a half-open breaker."""
    failure_rate_threshold: float | None = field(default=None, metadata=_check(gt=0, le=1))
    """Open when the failure ratio over the window reaches this (0 < x <= 1); off when unset."""
    window_type: Literal["count", "time"] = "count"
    window_size: int = field(default=100, metadata=_check(ge=1))
    """Calls (count window) or seconds (time window) of the sliding window."""
    minimum_calls: int = field(default=10, metadata=_check(ge=1))
    slow_call_duration_seconds: float | None = field(default=None, metadata=_check(gt=0))
    slow_call_rate_threshold: float | None = field(default=None, metadata=_check(gt=0, le=1))
    timeout_multiplier: float = field(default=1.0, metadata=_check(ge=1))
    """Growth of the open duration on repeated trips (1 = constant)."""
    max_timeout_seconds: float = field(default=600.0, metadata=_check(gt=0))


@dataclass(frozen=True)
class RetrySettings:
    """``[resilience.retry]`` defaults and ``[resilience.retry.<name>]`` overrides."""

    max_attempts: int = field(default=3, metadata=_check(ge=1))
    initial_delay_seconds: float = field(default=0.1, metadata=_check(ge=0))
    max_delay_seconds: float = field(default=10.0, metadata=_check(ge=0))
    multiplier: float = field(default=2.0, metadata=_check(ge=1))
    jitter: Literal["full", "decorrelated", "none"] = "full"
    deadline_seconds: float | None = field(default=None, metadata=_check(gt=0))


@dataclass(frozen=True)
class BulkheadSettings:
    """``[resilience.bulkheads.<name>]``."""

    max_concurrent: int = field(default=10, metadata=_check(ge=1))
    max_queue: int = field(default=0, metadata=_check(ge=0))
    queue_timeout_seconds: float | None = field(default=None, metadata=_check(gt=0))


@dataclass(frozen=True)
class RedisSettings:
    """``[resilience.redis]``: shared breaker and limiter state across processes."""

    enabled: bool = False
    url: str = "redis://127.0.0.1:6379/0"
    password_env: str = ""
    """Name of the environment variable holding the Redis password (keeps it out of the file)."""
    key_prefix: str = "otelres"
    fail_mode: Literal["open", "closed"] = "open"
    """When Redis is unreachable: ``open`` falls back to local state, ``closed`` rejects."""
    socket_timeout_seconds: float = field(default=0.25, metadata=_check(gt=0))
    connect_timeout_seconds: float = field(default=0.25, metadata=_check(gt=0))
    reconnect_interval_seconds: float = field(default=1.0, metadata=_check(gt=0))
    """After Redis failed, calls use the fail mode without trying it for this long."""
    state_cache_seconds: float = field(default=0.0, metadata=_check(ge=0))
    """How stale a locally cached breaker state may be; 0 asks Redis on every call."""


@dataclass(frozen=True)
class ResilienceSettings:
    """``[resilience]``: the seed's defaults plus per-name tables."""

    circuit_breaker_enabled: bool = True
    circuit_breaker_threshold: int = field(default=5, metadata=_check(ge=1))
    circuit_breaker_timeout: float = field(default=60.0, metadata=_check(gt=0))
    half_open_max_calls: int = field(default=1, metadata=_check(ge=1))
    rate_limit_mode: Literal["wait", "reject"] = "wait"
    rate_limit_max_wait_seconds: float | None = field(default=30.0, metadata=_check(ge=0))
    rate_limit_burst_seconds: float = field(default=1.0, metadata=_check(gt=0))
    """Bucket capacity as seconds of rate (capacity = rate x this)."""
    rate_limits: Mapping[str, float] = field(default_factory=_empty_map, metadata=_check(gt=0))
    """Requests per second per name; ``default`` applies to names not listed."""
    circuit_breaker: Mapping[str, BreakerSettings] = field(default_factory=_empty_map)
    retry: RetrySettings = field(default_factory=RetrySettings)
    retry_overrides: Mapping[str, RetrySettings] = field(default_factory=_empty_map)
    """Filled from ``[resilience.retry.<name>]`` sub-tables."""
    timeouts: Mapping[str, float] = field(default_factory=_empty_map, metadata=_check(gt=0))
    """Per-name call timeouts in seconds; ``default`` applies to names not listed."""
    bulkheads: Mapping[str, BulkheadSettings] = field(default_factory=_empty_map)
    redis: RedisSettings = field(default_factory=RedisSettings)

    def breaker(self, name: str) -> BreakerSettings:
        """The settings of breaker *name*: its own table, else the ``[resilience]`` defaults."""
        own = self.circuit_breaker.get(name)
        if own is not None:
            return own
        return BreakerSettings(
            threshold=self.circuit_breaker_threshold,
            timeout_seconds=self.circuit_breaker_timeout,
            half_open_max_calls=self.half_open_max_calls,
        )

    def rate_limit(self, name: str) -> float | None:
        """Requests per second for *name* (or ``default``); None when neither is set."""
        return self.rate_limits.get(name, self.rate_limits.get("default"))

    def retry_for(self, name: str) -> RetrySettings:
        """Retry settings for *name*: its own table, else the ``[resilience.retry]`` defaults."""
        return self.retry_overrides.get(name, self.retry)

    def timeout(self, name: str) -> float | None:
        """Call timeout in seconds for *name* (or ``default``); None when neither is set."""
        return self.timeouts.get(name, self.timeouts.get("default"))


@dataclass(frozen=True)
class AlertRuleSettings:
    """``[[monitoring.alerts.rules]]``: one threshold rule (``otelres.monitoring.AlertRule``)."""

    name: str = ""
    instrument: str = ""
    comparison: Literal[">", ">=", "<", "<=", "==", "!="] = ">"
    threshold: float = 0.0
    attributes: Mapping[str, tuple[str, ...]] = field(default_factory=_empty_map)
    """Attribute filter: ``{exchange = "kraken"}`` or ``{exchange = ["kraken", "binance"]}``."""
    exclude: Mapping[str, tuple[str, ...]] = field(default_factory=_empty_map)
    """Series whose attribute has one of these values never alert."""
    for_seconds: float = field(default=0.0, metadata=_check(ge=0))
    window_seconds: float | None = field(default=None, metadata=_check(gt=0))
    statistic: Literal["value", "count", "sum", "mean", "min", "max"] = "value"
    severity: str = "warning"
    summary: str = ""
    resolved_summary: str = ""
    """Summary template of the resolved notification (empty: ``no longer true: <summary>``)."""


@dataclass(frozen=True)
class AlertSettings:
    """``[monitoring.alerts]``: rules and notification targets for ``AlertManager.from_config``."""

    enabled: bool = False
    interval_seconds: float = field(default=15.0, metadata=_check(gt=0))
    renotify_seconds: float | None = field(default=3600.0, metadata=_check(gt=0))
    send_resolved: bool = True
    breaker_open: bool = False
    """Alert while any circuit breaker is open."""
    health_red_seconds: float | None = field(default=None, metadata=_check(ge=0))
    """Alert when a health check stays RED this long; unset: no such rule."""
    log: bool = True
    """Log every notification (logger ``otelres.alerts``)."""
    webhook_url_env: str = ""
    """Name of the environment variable holding the webhook URL (such URLs are credentials)."""
    webhook_signing_secret_env: str = ""
    email_to: tuple[str, ...] = ()
    email_from: str = ""
    smtp_host: str = ""
    smtp_port: int = field(default=25, metadata=_check(ge=1, le=65535))
    smtp_security: Literal["none", "starttls", "ssl"] = "none"
    smtp_username: str = ""
    smtp_password_env: str = ""
    """Name of the environment variable holding the SMTP password."""
    rules: tuple[AlertRuleSettings, ...] = ()


@dataclass(frozen=True)
class MonitoringSettings:
    """``[monitoring]``: logs and the metrics facade."""

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    structured_logging: bool = True
    log_format: Literal["json", "text"] = "json"
    metrics_enabled: bool = True
    redact_keys: tuple[str, ...] = ()
    """Extra key names whose values are masked in logs (added to the built-in list)."""
    log_max_value_chars: int = field(default=32768, metadata=_check(ge=256))
    """Characters kept of a log message, field value or exception text; the rest is cut."""
    alerts: AlertSettings = field(default_factory=AlertSettings)
    """``[monitoring.alerts]``: see ``otelres.monitoring.AlertManager.from_config``."""


@dataclass(frozen=True)
class HealthSettings:
    """``[health_checks]``."""

    enabled: bool = True
    interval_seconds: float = field(default=60.0, metadata=_check(gt=0))
    alert_on_failure: bool = True
    checks: tuple[str, ...] = ()
    """Check names to run; each is a built-in check or a key of ``[health_checks.custom]``."""
    timeout_seconds: float = field(default=5.0, metadata=_check(gt=0))
    cache_ttl_seconds: float = field(default=0.0, metadata=_check(ge=0))
    cache_ttl_failing_seconds: float = field(default=0.0, metadata=_check(ge=0))
    failures_before_red: int = field(default=1, metadata=_check(ge=1))
    successes_before_green: int = field(default=1, metadata=_check(ge=1))
    history_size: int = field(default=20, metadata=_check(ge=1))
    host: str = "127.0.0.1"
    port: int = field(default=8080, metadata=_check(ge=0, le=65535))
    custom: Mapping[str, str] = field(default_factory=_empty_map)
    """``name = "package.module:attribute"``: user checks by import path."""
    breakers: tuple[str, ...] = ()
    """Breakers the ``circuit_breakers`` check watches; empty: every breaker."""
    limiter_max_wait_ratio: float = field(default=0.5, metadata=_check(ge=0, le=1))
    """``rate_limiters`` is YELLOW when more than this share of calls waited since its last run."""
    limiter_max_rejections: int = field(default=0, metadata=_check(ge=0))
    """``rate_limiters`` is YELLOW when more calls than this were rejected since its last run."""
    exchanges: tuple[str, ...] = ()
    """ccxt exchange ids the ``exchange`` check probes (``fetch_status`` / ``fetch_time``)."""
    exchange_latency_warning_seconds: float = field(default=1.0, metadata=_check(gt=0))
    """``exchange`` is YELLOW when a round trip takes longer than this."""


@dataclass(frozen=True)
class BackupSettings:
    """``[backup]``."""

    enabled: bool = True
    interval_hours: float = field(default=24.0, metadata=_check(gt=0))
    retention_days: int = field(default=30, metadata=_check(ge=0))
    """Keep backups younger than this many days (0: the rule is off)."""
    backup_path: str = "./backups"
    compress: bool = True
    compression: Literal["gzip", "zstd"] = "gzip"
    compression_level: int = field(default=6, metadata=_check(ge=1, le=22))
    keep_last: int = field(default=0, metadata=_check(ge=0))
    keep_daily: int = field(default=0, metadata=_check(ge=0))
    keep_weekly: int = field(default=0, metadata=_check(ge=0))
    keep_monthly: int = field(default=0, metadata=_check(ge=0))
    hmac_key_env: str = ""
    """Name of the environment variable holding the HMAC signing key; empty: no signing."""
    max_restore_bytes: int = field(default=1 << 30, metadata=_check(gt=0))
    min_free_disk_bytes: int = field(default=1 << 30, metadata=_check(ge=0))
    files: tuple[str, ...] = ()
    """Files `otelres backup create` copies when given no input (copied as they are)."""
    sqlite: tuple[str, ...] = ()
    """SQLite databases `otelres backup create` copies when given no input (online backup API)."""


@dataclass(frozen=True)
class Config:
    """The whole configuration; every section has defaults."""

    telemetry: TelemetrySettings = field(default_factory=TelemetrySettings)
    resilience: ResilienceSettings = field(default_factory=ResilienceSettings)
    monitoring: MonitoringSettings = field(default_factory=MonitoringSettings)
    health_checks: HealthSettings = field(default_factory=HealthSettings)
    backup: BackupSettings = field(default_factory=BackupSettings)
    source: str | None = field(default=None, compare=False)
    """The file this configuration was read from; None for defaults."""

    def to_dict(self) -> dict[str, Any]:
        """The effective configuration as plain data (what ``otelres config check`` prints)."""
        data: dict[str, Any] = _plain(self)
        data.pop("source", None)
        redis = data["resilience"]["redis"]
        redis["url"] = _without_password(redis["url"])
        return data


def _without_password(url: str) -> str:
    """*url* with the password of its userinfo masked, so printed settings leak no secret."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


# --------------------------------------------------------------------------- loading
def load_config(
    path: str | os.PathLike[str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
) -> Config:
    """Read, validate and return the configuration (see the module docs for the search order).

    Raises :class:`ConfigError` naming the file and key of every invalid value, and when an
    explicitly named file (argument or ``OTELRES_CONFIG``) does not exist or is not TOML.
    """
    env = os.environ if environ is None else environ
    explicit = path is not None or bool(env.get(ENV_CONFIG))
    chosen = Path(path if path is not None else env.get(ENV_CONFIG) or DEFAULT_PATH)
    if not chosen.exists():
        if explicit:
            raise ConfigError([f"{chosen}: no such configuration file"])
        data: dict[str, Any] = {}
        source = None
    else:
        try:
            with chosen.open("rb") as fh:
                data = tomllib.load(fh)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError([f"{chosen}: not valid TOML: {exc}"]) from None
        except UnicodeDecodeError as exc:
            raise ConfigError(
                [f"{chosen}: not valid TOML: not UTF-8 text (byte {exc.start}: {exc.reason})"]
            ) from None
        except OSError as exc:
            raise ConfigError([f"{chosen}: cannot read: {exc.strerror}"]) from None
        source = str(chosen)
    return config_from_dict(data, source=source, environ=env)


def config_from_dict(
    data: Mapping[str, Any],
    *,
    source: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> Config:
    """Validate already-parsed TOML *data* (as :func:`load_config` does for a file)."""
    env = os.environ if environ is None else environ
    where = source or "<config>"
    problems: list[str] = []
    prepared = dict(data)
    resilience = prepared.get("resilience")
    if isinstance(resilience, Mapping):
        prepared["resilience"] = _split_retry(resilience)
    telemetry = prepared.get("telemetry")
    from_env: dict[str, str] = {}
    prepared["telemetry"] = _apply_otel_env(
        dict(telemetry) if isinstance(telemetry, Mapping) else telemetry, env, from_env, problems
    )
    config = _build(Config, prepared, "", where, problems, skip={"source"})
    if config is not None:
        endpoint = config.telemetry.otlp_endpoint
        if endpoint and not endpoint.startswith(("http://", "https://")):
            # Without a scheme the gRPC exporter silently picks TLS and the HTTP one fails.
            problems.append(
                f"{where}: telemetry.otlp_endpoint: expected a URL starting with http:// "
                f"(plain text) or https:// (TLS), got {endpoint!r}"
            )
        try:
            check_redis_url(config.resilience.redis.url)
        except ValueError as exc:
            problems.append(f"{where}: resilience.redis.url: {str(exc).removeprefix('url ')}")
        for key in ("traces_exporter", "logs_exporter"):
            if "prometheus" in getattr(config.telemetry, key):
                problems.append(
                    f"{where}: telemetry.{key}: 'prometheus' exports metrics only; "
                    "list it in metrics_exporter"
                )
    if problems:
        raise ConfigError([_blame(problem, where, from_env) for problem in problems])
    assert config is not None
    return dataclasses.replace(config, source=source)


def _blame(problem: str, where: str, from_env: Mapping[str, str]) -> str:
    """*problem* rewritten to name the environment variable when the bad value came from one.

    ``OTEL_TRACES_EXPORTER=jaeger`` is not a mistake in the file, so its line reads
    ``environment: OTEL_TRACES_EXPORTER: telemetry.traces_exporter[0]: expected ...``.
    Problems of ``[resilience.retry.<name>]`` tables name the key as it is written in the file.
    """
    problem = problem.replace(f"{where}: resilience.retry_overrides.", f"{where}: resilience.retry.", 1)
    for key, var in from_env.items():
        head = f"{where}: telemetry.{key}"
        if problem.startswith((f"{head}:", f"{head}[", f"{head}.")):
            return f"environment: {var}: {problem[len(where) + 2:]}"
    return problem


def _split_retry(resilience: Mapping[str, Any]) -> dict[str, Any]:
    """Move ``[resilience.retry.<name>]`` sub-tables beside the retry defaults."""
    out = dict(resilience)
    retry = out.get("retry")
    if isinstance(retry, Mapping):
        named = {k: v for k, v in retry.items() if isinstance(v, Mapping)}
        defaults = {k: v for k, v in retry.items() if not isinstance(v, Mapping)}
        out["retry"] = defaults
        if named:
            out["retry_overrides"] = {name: {**defaults, **table} for name, table in named.items()}
    return out


_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off", ""}


def _apply_otel_env(
    telemetry: Any, env: Mapping[str, str], from_env: dict[str, str], problems: list[str]
) -> Any:
    """Overlay the standard OTEL_* variables (and OTELRES_SPAN_MODE) on ``[telemetry]``.

    Records in *from_env* which key each variable replaced, so a bad value is blamed on
    the variable rather than on the file.
    """
    if telemetry is not None and not isinstance(telemetry, dict):
        return telemetry  # reported as a type error by _build
    table: dict[str, Any] = dict(telemetry or {})
    simple = {
        "OTEL_SERVICE_NAME": "service_name",
        "OTEL_EXPORTER_OTLP_ENDPOINT": "otlp_endpoint",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "otlp_protocol",
        "OTEL_EXPORTER_PROMETHEUS_HOST": "prometheus_host",
        "OTELRES_SPAN_MODE": "span_mode",
    }
    for var, key in simple.items():
        if env.get(var):
            table[key] = env[var].strip()
            from_env[key] = var
    for var, key in (
        ("OTEL_TRACES_EXPORTER", "traces_exporter"),
        ("OTEL_METRICS_EXPORTER", "metrics_exporter"),
        ("OTEL_LOGS_EXPORTER", "logs_exporter"),
    ):
        if env.get(var):
            table[key] = [part.strip() for part in env[var].split(",") if part.strip()]
            from_env[key] = var
    for var, key, scale in (
        ("OTEL_EXPORTER_PROMETHEUS_PORT", "prometheus_port", None),
        ("OTEL_METRIC_EXPORT_INTERVAL", "metric_export_interval_seconds", 1000.0),  # milliseconds
    ):
        text = env.get(var, "").strip()
        if text:
            from_env[key] = var
            try:
                table[key] = int(text) if scale is None else float(text) / scale
            except ValueError:
                table[key] = text  # reported as a type error naming the variable
    disabled = env.get("OTEL_SDK_DISABLED")
    if disabled is not None:
        value = disabled.strip().lower()
        if value in _TRUE:
            table["sdk_disabled"] = True
        elif value in _FALSE:
            table["sdk_disabled"] = False
        else:
            problems.append(f"environment: OTEL_SDK_DISABLED: expected true or false, got {disabled!r}")
    resource = env.get("OTEL_RESOURCE_ATTRIBUTES")
    if resource:
        merged = dict(table.get("resource_attributes") or {})
        for item in filter(str.strip, resource.split(",")):  # "a=1," is common; skip empties
            key, sep, value = item.partition("=")
            if not sep or not key.strip():
                problems.append(
                    f"environment: OTEL_RESOURCE_ATTRIBUTES: expected key=value pairs, got {item!r}"
                )
                continue
            merged[key.strip()] = _unquote(value.strip())
            from_env[f"resource_attributes.{key.strip()}"] = "OTEL_RESOURCE_ATTRIBUTES"
        table["resource_attributes"] = merged
    return table


def _unquote(value: str) -> str:
    from urllib.parse import unquote

    return unquote(value)


_D = TypeVar("_D")


def _build(
    cls: type[_D],
    table: Any,
    prefix: str,
    where: str,
    problems: list[str],
    skip: frozenset[str] | set[str] = frozenset(),
) -> _D | None:
    """Turn a TOML *table* into dataclass *cls*, appending every problem found."""
    section = prefix.rstrip(".") or "<top level>"
    if not isinstance(table, Mapping):
        problems.append(f"{where}: {section}: expected a table, got {_describe(table)}")
        return None
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.name not in skip}  # type: ignore[arg-type]
    values: dict[str, Any] = {}
    for key, raw in table.items():
        dotted = f"{prefix}{key}"
        spec = fields.get(key)
        if spec is None:
            what = "key" if prefix else "section"
            problems.append(f"{where}: {dotted}: unknown {what}{_suggest(key, fields, what)}")
            continue
        ok, value = _coerce(hints[key], raw, dotted, where, problems, spec.metadata.get("rules", {}))
        if ok:
            values[key] = value
    try:
        return cls(**values)
    except TypeError as exc:  # pragma: no cover - a schema bug, not user input
        problems.append(f"{where}: {section}: {exc}")
        return None


def _coerce(
    hint: Any, raw: Any, dotted: str, where: str, problems: list[str], rules: Mapping[str, Any]
) -> tuple[bool, Any]:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    start = len(problems)

    def bad(expected: str) -> tuple[bool, Any]:
        problems.append(f"{where}: {dotted}: expected {expected}, got {_describe(raw)}")
        return False, None

    if origin in (Union, types.UnionType):
        non_none = [a for a in args if a is not type(None)]
        if raw is None or (isinstance(raw, str) and raw.lower() == "none" and str not in non_none):
            return True, None
        return _coerce(non_none[0], raw, dotted, where, problems, rules)
    if dataclasses.is_dataclass(hint):
        built = _build(hint, raw, f"{dotted}.", where, problems)  # type: ignore[arg-type]
        return built is not None and len(problems) == start, built
    if origin is Literal:
        if raw not in args:
            close = difflib.get_close_matches(str(raw), [str(a) for a in args], n=1)
            hint_text = f" (did you mean {close[0]!r}?)" if close else ""
            return bad(f"one of {', '.join(repr(a) for a in args)}{hint_text}")
        return True, raw
    if origin is tuple:
        item = args[0]
        items = [raw] if isinstance(raw, str) else raw
        if not isinstance(items, list):
            return bad("a list")
        out = []
        for index, element in enumerate(items):
            ok, value = _coerce(item, element, f"{dotted}[{index}]", where, problems, rules)
            if ok:
                out.append(value)
        return len(problems) == start, tuple(out)
    if origin in (Mapping, dict):
        if not isinstance(raw, Mapping):
            return bad("a table")
        value_hint = args[1]
        out_map: dict[str, Any] = {}
        for key, element in raw.items():
            ok, value = _coerce(value_hint, element, f"{dotted}.{key}", where, problems, rules)
            if ok:
                out_map[key] = value
        return len(problems) == start, types.MappingProxyType(out_map)
    if hint is bool:
        return (True, raw) if isinstance(raw, bool) else bad("true or false")
    if hint is int:
        if isinstance(raw, bool) or not isinstance(raw, int):
            return bad(f"an integer{_range_text(rules)}")
        return _in_range(raw, rules, dotted, where, problems, "an integer")
    if hint is float:
        if isinstance(raw, bool) or not isinstance(raw, (int, float)):
            return bad(f"a number{_range_text(rules)}")
        return _in_range(float(raw), rules, dotted, where, problems, "a number")
    if hint is str:
        return (True, raw) if isinstance(raw, str) else bad("a string")
    raise TypeError(f"unsupported config type {hint!r}")  # pragma: no cover


def _in_range(
    value: float, rules: Mapping[str, Any], dotted: str, where: str, problems: list[str], noun: str
) -> tuple[bool, Any]:
    ok = (
        ("gt" not in rules or value > rules["gt"])
        and ("ge" not in rules or value >= rules["ge"])
        and ("le" not in rules or value <= rules["le"])
    )
    if not ok:
        problems.append(f"{where}: {dotted}: expected {noun}{_range_text(rules)}, got {value!r}")
    return ok, value


def _range_text(rules: Mapping[str, Any]) -> str:
    parts = []
    if "gt" in rules:
        parts.append(f"> {rules['gt']}")
    if "ge" in rules:
        parts.append(f">= {rules['ge']}")
    if "le" in rules:
        parts.append(f"<= {rules['le']}")
    return (" " + " and ".join(parts)) if parts else ""


def _suggest(key: str, fields: Mapping[str, Any], what: str = "key") -> str:
    close = difflib.get_close_matches(key, list(fields), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else f"; valid {what}s: {', '.join(sorted(fields))}"


def _describe(raw: Any) -> str:
    if isinstance(raw, Mapping):
        return "a table"
    if isinstance(raw, list):
        return "a list"
    if isinstance(raw, bool):
        return "true" if raw else "false"
    return f"{type(raw).__name__} {raw!r}"


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value


# --------------------------------------------------------------------------- current
_current: Config | None = None


def current() -> Config:
    """The configuration components read their per-name settings from.

    Loaded from the default location on first use; :func:`otelres.configure` and
    :func:`set_current` replace it.
    """
    global _current
    if _current is None:
        _current = load_config()
    return _current


def set_current(config: Config | None) -> None:
    """Make *config* the current configuration (None: load it again on next use)."""
    global _current
    _current = config
