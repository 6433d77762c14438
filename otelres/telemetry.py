"""Setting up the OpenTelemetry SDK: :func:`configure`.

otelres' library code only uses ``opentelemetry-api``; nothing is exported until an SDK is
set up, either by the application itself or by :func:`configure`, which reads
``[telemetry]`` of ``config.toml`` with the standard ``OTEL_*`` variables taking
precedence (see :mod:`otelres.config`)::

    import otelres

    telemetry = otelres.configure()        # ./config.toml or $OTELRES_CONFIG, plus OTEL_*
    ...
    telemetry.shutdown()                   # also happens at interpreter exit

What it sets up:

* a resource with ``service.name``, ``service.version`` and ``deployment.environment``
  (where given) plus ``[telemetry] resource_attributes`` / ``OTEL_RESOURCE_ATTRIBUTES``;
* a tracer provider exporting to ``console`` and/or ``otlp``;
* a meter provider exporting to ``console``, ``otlp`` and/or a ``prometheus`` scrape
  endpoint on ``prometheus_host:prometheus_port``;
* a logger provider exporting log records to ``console``/``otlp``, fed by the logging set
  up through :func:`otelres.monitoring.setup_logging`;
* the span mode of otelres' guards (``[telemetry] span_mode``), and, with
  ``[resilience.redis] enabled = true``, breaker and limiter state shared through Redis;
* logging per ``[monitoring]`` (JSON lines with trace IDs), and, with
  ``[monitoring.alerts] enabled = true``, an :class:`~otelres.monitoring.AlertManager`
  that evaluates its rules on this metric pipeline (``Telemetry.alerts``).

It is idempotent (a second call returns the same :class:`Telemetry`), never replaces a
provider the application already set (it warns and leaves that signal alone), and with
``OTEL_SDK_DISABLED=true`` sets up nothing while everything else keeps working.
Exports that fail are remembered: :func:`export_status` tells, and the built-in health
check turns YELLOW. Shutting down, explicitly or at interpreter exit, flushes for at most
``[telemetry] shutdown_timeout_seconds``, so a collector that is down cannot hold up the exit.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from otelres import _otel
from otelres.config import Config, ConfigError, TelemetrySettings, load_config, set_current

if TYPE_CHECKING:
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import MetricReader
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import SpanProcessor, TracerProvider

    from otelres.monitoring import AlertManager

__all__ = ["ExportStatus", "Telemetry", "configure", "export_status"]

_log = logging.getLogger("otelres.telemetry")


# --------------------------------------------------------------------------- export status
@dataclass(frozen=True)
class ExportStatus:
    """The outcome of the most recent export attempt of any signal.

    ``ok`` is None before anything was exported, else whether the last export succeeded;
    ``signal`` is ``"traces"``, ``"metrics"`` or ``"logs"``; ``at`` is a Unix time;
    ``last_error`` describes the last failure (kept after later successes, for context).
    """

    ok: bool | None = None
    signal: str | None = None
    at: float | None = None
    last_error: str | None = None
    last_error_at: float | None = None
    failures: int = 0


_status = ExportStatus()
_status_lock = threading.Lock()


def export_status() -> ExportStatus:
    """How the last export went (see :class:`ExportStatus`)."""
    return _status


def _record_export(signal: str, ok: bool, error: str | None = None) -> None:
    global _status
    now = time.time()
    with _status_lock:
        previous = _status
        _status = ExportStatus(
            ok=ok,
            signal=signal,
            at=now,
            last_error=error if not ok else previous.last_error,
            last_error_at=now if not ok else previous.last_error_at,
            failures=previous.failures + (0 if ok else 1),
        )


def _tracked(signal: str, exporter: Any, base: type) -> Any:
    """Wrap *exporter* so every export's outcome lands in :func:`export_status`.

    A subclass of the exporter's base class that delegates, so the SDK's processors and
    readers see the same preferences (temporality, aggregation) as the wrapped exporter.
    """

    class Tracked(base):  # type: ignore[misc]
        def __init__(self) -> None:
            if signal == "metrics":
                super().__init__(
                    preferred_temporality=exporter._preferred_temporality,
                    preferred_aggregation=exporter._preferred_aggregation,
                )
            self._inner = exporter

        def export(self, batch: Any, *args: Any, **kwargs: Any) -> Any:
            try:
                result = self._inner.export(batch, *args, **kwargs)
            except Exception as exc:
                _record_export(signal, False, f"{type(exc).__name__}: {exc}")
                raise
            ok = getattr(result, "name", str(result)) == "SUCCESS"
            _record_export(
                signal, ok, None if ok else f"{type(exporter).__name__} export failed"
            )
            return result

        def force_flush(self, timeout_millis: float = 30_000) -> bool:
            return bool(self._inner.force_flush(timeout_millis))

        def shutdown(self, *args: Any, **kwargs: Any) -> None:
            self._inner.shutdown(*args, **kwargs)

    Tracked.__name__ = Tracked.__qualname__ = f"Tracked{type(exporter).__name__}"
    return Tracked()


# --------------------------------------------------------------------------- handle
@dataclass
class Telemetry:
    """What :func:`configure` set up; ``force_flush()`` and ``shutdown()`` act on all of it.

    Providers are None for a signal that is off, disabled, or owned by the application
    (``owned`` lists the signals otelres set up itself). ``prometheus_address`` is the
    ``(host, port)`` of the ``/metrics`` endpoint when the Prometheus exporter is on.
    """

    config: Config
    tracer_provider: TracerProvider | None = None
    meter_provider: MeterProvider | None = None
    logger_provider: LoggerProvider | None = None
    prometheus_address: tuple[str, int] | None = None
    alerts: AlertManager | None = None
    """The alert manager ``[monitoring.alerts] enabled = true`` started, evaluating this pipeline."""
    disabled: bool = False
    owned: tuple[str, ...] = ()
    _servers: list[Any] = field(default_factory=list, repr=False)
    _shut: bool = field(default=False, repr=False)

    @property
    def prometheus_url(self) -> str | None:
        """``http://host:port/metrics`` when the Prometheus exporter is on."""
        if self.prometheus_address is None:
            return None
        host, port = self.prometheus_address
        return f"http://{host}:{port}/metrics"

    def force_flush(self, timeout_seconds: float = 10.0) -> bool:
        """Export everything buffered now; True when every provider flushed in time.

        The providers flush side by side, so a collector that is down costs at most
        *timeout_seconds* in all, not that much per signal.
        """
        millis = int(timeout_seconds * 1000)
        calls = {
            signal: (lambda p=provider: p.force_flush(millis))
            for signal, provider in self._owned_providers()
        }
        return not _within(calls, timeout_seconds, "force_flush")

    def shutdown(self, timeout_seconds: float | None = None) -> bool:
        """Flush and stop every provider and server otelres set up (safe to call twice).

        It takes at most *timeout_seconds* (default: ``[telemetry] shutdown_timeout_seconds``):
        when the collector does not answer by then, what is still unsent is dropped and a
        warning says so, rather than holding up the application or its exit. Returns True
        when everything was flushed and stopped in time. Runs by itself at interpreter exit.
        """
        global _active
        if self._shut:
            return True
        self._shut = True
        atexit.unregister(self._shutdown_at_exit)
        budget = (
            self.config.telemetry.shutdown_timeout_seconds if timeout_seconds is None else timeout_seconds
        )
        if self.alerts is not None:
            self.alerts.stop()
        if self.logger_provider is not None and "logs" in self.owned:
            # Detach otelres' OTLP log handler before its provider goes away, so log calls
            # made during interpreter shutdown do not reach a closed pipeline.
            from otelres.monitoring import setup_logging

            setup_logging(self.config.monitoring, logger_provider=None)
        calls = {signal: provider.shutdown for signal, provider in self._owned_providers()}
        late = _within(calls, budget, "shutdown")
        for server in self._servers:
            try:
                server.shutdown()
                server.server_close()
            except Exception:
                _log.exception("otelres: stopping the Prometheus endpoint failed")
        with _configure_lock:
            if _active is self:
                _active = None
        return not late

    def _shutdown_at_exit(self) -> None:
        self.shutdown()

    def _owned_providers(self) -> list[tuple[str, Any]]:
        """``(signal, provider)`` for every provider otelres set up itself."""
        pairs = (
            ("traces", self.tracer_provider),
            ("metrics", self.meter_provider),
            ("logs", self.logger_provider),
        )
        return [(signal, p) for signal, p in pairs if p is not None and signal in self.owned]


def _within(calls: Mapping[str, Callable[[], object]], timeout: float, what: str) -> list[str]:
    """Run *calls* side by side in daemon threads, waiting at most *timeout* seconds in all.

    Returns the names of the calls that failed, returned false, or had not finished in
    time. Those still running are left to finish on their own (their exporters give up
    after ``otlp_timeout_seconds``); being daemon threads they never hold up the exit.
    """
    results: dict[str, bool] = {}

    def run(name: str, call: Callable[[], object]) -> None:
        try:
            outcome = call()
            results[name] = outcome is None or bool(outcome)
        except Exception:
            _log.exception("otelres: %s of the %s failed", what, name)
            results[name] = False

    deadline = time.monotonic() + timeout
    started = []
    for item in calls.items():
        thread = threading.Thread(target=run, args=item, name=f"otelres-{what}", daemon=True)
        try:
            thread.start()
            started.append(thread)
        except RuntimeError:  # no new threads this late in interpreter shutdown: run inline
            run(*item)
    for thread in started:
        thread.join(max(0.0, deadline - time.monotonic()))
    late = [name for name in calls if name not in results]
    if late:
        _log.warning(
            "otelres: telemetry %s (%s) did not finish within %.1f s (is the collector "
            "reachable?); what was not exported by then is dropped",
            what, ", ".join(late), timeout,
        )
    return late + [name for name, ok in results.items() if not ok]


_active: Telemetry | None = None
_configure_lock = threading.RLock()  # shutdown() of a half-built handle runs inside configure()
_installed: list[Any] = []
"""The providers otelres made global, which OpenTelemetry will not let anyone replace."""


# --------------------------------------------------------------------------- configure
def configure(
    config: Config | str | os.PathLike[str] | None = None,
    *,
    set_global: bool = True,
    metric_readers: Sequence[MetricReader] = (),
    span_processors: Sequence[SpanProcessor] = (),
) -> Telemetry:
    """Set up tracing, metrics and logs from *config* and return a :class:`Telemetry` handle.

    *config* is a :class:`~otelres.config.Config`, a path to a ``config.toml``, or None to
    load it the usual way (``OTELRES_CONFIG``, else ``./config.toml``, else defaults). It
    becomes :func:`otelres.config.current`, which guards built from config read, and sets
    the span mode and (``[resilience.redis] enabled``) the shared state of the guards.

    ``set_global=False`` builds the providers without installing them as the global ones
    (inject them into components instead) and changes no process-wide setting;
    ``metric_readers`` and ``span_processors`` are
    added to the providers, for example an alert manager's reader or an in-memory exporter.

    Calling it again returns the handle of the first call, with a ``RuntimeWarning`` when
    the configuration differs. OpenTelemetry lets a process set its global providers only
    once: after ``shutdown()`` a new call warns and leaves those signals off (use
    ``set_global=False`` for throw-away pipelines, as tests do).

    Raises :class:`~otelres.config.ConfigError` for an invalid configuration and when the
    Prometheus port is taken (naming ``telemetry.prometheus_port``); nothing is installed then.
    """
    global _active
    with _configure_lock:
        cfg = config if isinstance(config, Config) else load_config(config)
        if _active is not None and set_global:
            if cfg != _active.config:
                warnings.warn(
                    "otelres.configure(): telemetry is already configured "
                    f"(from {_active.config.source or 'defaults'}); this call's configuration "
                    f"(from {cfg.source or 'defaults'}) is ignored. Call shutdown() on the "
                    "handle first to configure anew.",
                    RuntimeWarning,
                    stacklevel=2,
                )
            return _active
        if set_global:
            # Process-wide settings follow only the pipeline that becomes the global one;
            # a throw-away pipeline (set_global=False) must not change how guards behave.
            set_current(cfg)
            _otel.set_span_mode(cfg.telemetry.span_mode)
            if cfg.resilience.redis.enabled:
                from otelres.resilience import use_redis

                use_redis()
        settings = cfg.telemetry
        if settings.sdk_disabled:
            handle = Telemetry(config=cfg, disabled=True)
        else:
            handle = _build(cfg, settings, set_global, metric_readers, span_processors)
        if set_global:
            _active = handle
        return handle


def _build(
    cfg: Config,
    settings: TelemetrySettings,
    set_global: bool,
    metric_readers: Sequence[MetricReader],
    span_processors: Sequence[SpanProcessor],
) -> Telemetry:
    """Build every provider first and install them only when all were built.

    A failure half way (the Prometheus port is taken, an exporter is missing) stops what
    was built and leaves the global providers untouched, so a corrected call can still
    install them.
    """
    from opentelemetry import metrics, trace
    from opentelemetry._logs import get_logger_provider, set_logger_provider

    resource = _resource(settings)
    handle = Telemetry(config=cfg)
    logs_on = [e for e in settings.logs_exporter if e != "none"]
    free = {
        "traces": not set_global or _free(trace.get_tracer_provider(), "tracer"),
        "metrics": not set_global or _free(metrics.get_meter_provider(), "meter"),
        "logs": bool(logs_on) and (not set_global or _free(get_logger_provider(), "logger")),
    }
    try:
        if free["traces"]:
            handle.tracer_provider = _tracer_provider(settings, resource, span_processors)
            handle.owned += ("traces",)
        if free["metrics"]:
            readers = [*_metric_readers(settings, handle), *metric_readers]
            if set_global and cfg.monitoring.alerts.enabled:
                from otelres.monitoring import AlertManager

                handle.alerts = AlertManager.from_config(cfg)
                readers.append(handle.alerts.reader)
            handle.meter_provider = _meter_provider(resource, readers)
            handle.owned += ("metrics",)
        if free["logs"]:
            handle.logger_provider = _logger_provider(settings, resource, logs_on)
            handle.owned += ("logs",)
    except BaseException:
        handle.shutdown(timeout_seconds=1.0)
        raise
    atexit.register(handle._shutdown_at_exit)
    if not set_global:
        return handle

    if handle.tracer_provider is not None:
        trace.set_tracer_provider(handle.tracer_provider)
    if handle.meter_provider is not None:
        metrics.set_meter_provider(handle.meter_provider)
    if handle.logger_provider is not None:
        set_logger_provider(handle.logger_provider)
    _installed.extend(provider for _, provider in handle._owned_providers())
    if handle.alerts is not None:
        handle.alerts.start()
    from otelres.monitoring import setup_logging

    setup_logging(
        cfg.monitoring,
        service_name=str(resource.attributes.get("service.name", settings.service_name)),
        logger_provider=handle.logger_provider,
    )
    return handle


_PLACEHOLDERS = ("ProxyTracerProvider", "_ProxyMeterProvider", "ProxyMeterProvider", "ProxyLoggerProvider")


def _free(provider: Any, kind: str) -> bool:
    """Whether the global *kind* provider is still the API's placeholder; warns when not."""
    # Only the API's placeholders are free: a NoOp provider the application set on purpose
    # (to switch a signal off) is the application's choice like any other.
    if type(provider).__name__ in _PLACEHOLDERS:
        return True
    if any(provider is ours for ours in _installed):
        reason = (
            f"an earlier otelres.configure() installed the global {kind} provider, and "
            "OpenTelemetry lets a process set it only once; after shutdown() it cannot be "
            "replaced, so this signal stays off"
        )
    else:
        reason = (
            f"the application already set a global {kind} provider; otelres leaves it in "
            "place and does not add its exporters to it"
        )
    warnings.warn(f"otelres.configure(): {reason}", RuntimeWarning, stacklevel=4)
    return False


def _resource(settings: TelemetrySettings) -> Resource:
    from opentelemetry.sdk.resources import Resource

    from otelres._version import __version__

    attributes: dict[str, str] = {
        "service.name": settings.service_name,
        "telemetry.distro.name": "otelres",
        "telemetry.distro.version": __version__,
    }
    if settings.service_version:
        attributes["service.version"] = settings.service_version
    if settings.environment:
        attributes["deployment.environment"] = settings.environment
    # resource_attributes already carries OTEL_RESOURCE_ATTRIBUTES (it wins key by key),
    # and service.name already carries OTEL_SERVICE_NAME.
    attributes.update(settings.resource_attributes)
    attributes["service.name"] = settings.service_name
    return Resource.create(attributes)


def _tracer_provider(
    settings: TelemetrySettings, resource: Resource, extra: Sequence[SpanProcessor]
) -> TracerProvider:
    from opentelemetry.sdk.trace import TracerProvider, export

    provider = TracerProvider(resource=resource, shutdown_on_exit=False)
    for processor in _processors("trace", settings.traces_exporter, settings, export):
        provider.add_span_processor(processor)
    for processor in extra:
        provider.add_span_processor(processor)
    return provider


def _processors(
    signal: str, names: Sequence[str], settings: TelemetrySettings, export: Any
) -> list[Any]:
    """Span or log record processors for the exporter *names* of *signal* (``trace``, ``log``).

    *export* is the SDK's export module of that signal; both name their classes alike
    (``SimpleSpanProcessor`` / ``SimpleLogRecordProcessor``, ...). Console output is
    written as it happens, OTLP exports are batched on a background thread.
    """
    kind = {"trace": "Span", "log": "LogRecord"}[signal]
    label = {"trace": "traces", "log": "logs"}[signal]
    base = getattr(export, f"{kind}Exporter")
    processors = []
    for name in names:
        if name == "console":
            exporter = _tracked(label, getattr(export, f"Console{kind}Exporter")(), base)
            processors.append(getattr(export, f"Simple{kind}Processor")(exporter))
        elif name == "otlp":
            exporter = _tracked(label, _otlp_exporter(signal, settings), base)
            processors.append(getattr(export, f"Batch{kind}Processor")(exporter))
    return processors


def _metric_readers(settings: TelemetrySettings, handle: Telemetry) -> list[MetricReader]:
    from opentelemetry.sdk.metrics.export import MetricExporter, PeriodicExportingMetricReader

    interval = int(settings.metric_export_interval_seconds * 1000)
    readers: list[MetricReader] = []
    for name in settings.metrics_exporter:
        if name == "console":
            from opentelemetry.sdk.metrics.export import ConsoleMetricExporter

            exporter = _tracked("metrics", ConsoleMetricExporter(), MetricExporter)
            readers.append(PeriodicExportingMetricReader(exporter, interval))
        elif name == "otlp":
            exporter = _tracked("metrics", _otlp_exporter("metric", settings), MetricExporter)
            readers.append(PeriodicExportingMetricReader(exporter, interval))
        elif name == "prometheus":
            readers.append(_prometheus_reader(settings, handle))
    return readers


def _prometheus_reader(settings: TelemetrySettings, handle: Telemetry) -> MetricReader:
    where = handle.config.source or "<config>"
    try:
        from opentelemetry.exporter.prometheus import PrometheusMetricReader
        from prometheus_client import start_http_server
    except ImportError as exc:
        raise ConfigError(
            [
                f"{where}: telemetry.metrics_exporter: 'prometheus' needs the prometheus extra "
                f"({exc.name} is not installed): pip install 'otelres[prometheus]'"
            ]
        ) from exc
    try:
        server, _thread = start_http_server(settings.prometheus_port, addr=settings.prometheus_host)
    except OSError as exc:
        raise ConfigError(
            [
                f"{where}: telemetry.prometheus_port: cannot serve /metrics on "
                f"{settings.prometheus_host}:{settings.prometheus_port}: {exc.strerror or exc}; "
                "choose a free port (0 picks one)"
            ]
        ) from exc
    reader = PrometheusMetricReader()
    handle._servers.append(server)
    host, port = server.server_address[:2]
    handle.prometheus_address = (str(host), int(port))
    return reader


def _meter_provider(resource: Resource, readers: Sequence[MetricReader]) -> MeterProvider:
    from opentelemetry.sdk.metrics import MeterProvider

    return MeterProvider(resource=resource, metric_readers=list(readers), shutdown_on_exit=False)


def _logger_provider(
    settings: TelemetrySettings, resource: Resource, exporters: Sequence[str]
) -> LoggerProvider:
    from opentelemetry.sdk._logs import LoggerProvider, export

    provider = LoggerProvider(resource=resource, shutdown_on_exit=False)
    for processor in _processors("log", exporters, settings, export):
        provider.add_log_record_processor(processor)
    return provider


_SIGNAL_ENV = {"trace": "TRACES", "metric": "METRICS", "log": "LOGS"}
_SIGNAL_PATH = {"trace": "v1/traces", "metric": "v1/metrics", "log": "v1/logs"}


def _otlp_options(
    signal: str, settings: TelemetrySettings, environ: Mapping[str, str]
) -> tuple[str, str | None, float | None]:
    """``(protocol, endpoint, timeout)`` of the OTLP exporter for *signal*.

    The standard precedence: a signal-specific variable (``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``,
    ``..._PROTOCOL``, ``..._TIMEOUT``) beats the generic one, which beats ``[telemetry]``.
    None leaves a value to the exporter, which reads those variables itself (and the
    headers, certificates and compression, which otelres never overrides). A generic
    ``otlp_endpoint`` gets the signal's path appended for OTLP/HTTP, as the specification
    says; a signal-specific endpoint is used as it is.
    """
    upper = _SIGNAL_ENV[signal]
    protocol = environ.get(f"OTEL_EXPORTER_OTLP_{upper}_PROTOCOL", "").strip() or settings.otlp_protocol
    if protocol not in ("grpc", "http/protobuf"):
        raise ConfigError(
            [
                f"environment: OTEL_EXPORTER_OTLP_{upper}_PROTOCOL: expected one of 'grpc', "
                f"'http/protobuf', got {protocol!r}"
            ]
        )
    endpoint: str | None = None
    base = settings.otlp_endpoint.rstrip("/")
    if base and not environ.get(f"OTEL_EXPORTER_OTLP_{upper}_ENDPOINT"):
        endpoint = f"{base}/{_SIGNAL_PATH[signal]}" if protocol == "http/protobuf" else base
    timeout_env = ("OTEL_EXPORTER_OTLP_TIMEOUT", f"OTEL_EXPORTER_OTLP_{upper}_TIMEOUT")
    timeout = None if any(environ.get(v) for v in timeout_env) else settings.otlp_timeout_seconds
    return protocol, endpoint, timeout


_OTLP_EXPORTERS = {
    "http/protobuf": {
        "trace": ("opentelemetry.exporter.otlp.proto.http.trace_exporter", "OTLPSpanExporter"),
        "metric": ("opentelemetry.exporter.otlp.proto.http.metric_exporter", "OTLPMetricExporter"),
        "log": ("opentelemetry.exporter.otlp.proto.http._log_exporter", "OTLPLogExporter"),
    },
    "grpc": {
        "trace": ("opentelemetry.exporter.otlp.proto.grpc.trace_exporter", "OTLPSpanExporter"),
        "metric": ("opentelemetry.exporter.otlp.proto.grpc.metric_exporter", "OTLPMetricExporter"),
        "log": ("opentelemetry.exporter.otlp.proto.grpc._log_exporter", "OTLPLogExporter"),
    },
}


def _otlp_exporter(signal: str, settings: TelemetrySettings) -> Any:
    """An OTLP exporter for *signal* (``trace``, ``metric``, ``log``); see :func:`_otlp_options`."""
    import importlib

    protocol, endpoint, timeout = _otlp_options(signal, settings, os.environ)
    module, name = _OTLP_EXPORTERS[protocol][signal]
    options: dict[str, Any] = {"endpoint": endpoint, "timeout": timeout}
    if protocol == "grpc" and endpoint and endpoint.startswith("http://"):
        options["insecure"] = True  # plain-text gRPC, as the http:// scheme says
    return getattr(importlib.import_module(module), name)(**options)
