"""Setting up logging: JSON or text lines with trace IDs, optional OTLP export, redaction.

:func:`setup_logging` installs otelres' handlers on the root logger, so the records of
every library and of the application leave the same way; :func:`get_logger` hands out
loggers whose ``extra`` can never make a logging call raise, and sets logging up from
``[monitoring]`` on first use when nobody did.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Mapping, MutableMapping
from typing import IO, TYPE_CHECKING, Any

from otelres.monitoring._formatters import JsonLogFormatter, TextLogFormatter
from otelres.monitoring._redaction import Redactor, safe_str

if TYPE_CHECKING:
    from opentelemetry._logs import LoggerProvider

    from otelres.config import MonitoringSettings

__all__ = ["StructuredLogger", "get_logger", "setup_logging", "teardown_logging"]

_MANAGED = "_otelres_managed"
_ADOPTED = "_otelres_adopted_formatter"
_lock = threading.RLock()
_configured = False
_loggers: dict[str, StructuredLogger] = {}

# Keys that logging.Logger.makeRecord refuses in ``extra`` (it raises KeyError).
_CLASHING = frozenset(
    {*logging.LogRecord("", 0, "", 0, "", (), None).__dict__, "message", "asctime", "taskName"}
)


def setup_logging(
    settings: MonitoringSettings | None = None,
    *,
    service_name: str | None = None,
    logger_provider: LoggerProvider | None = None,
    stream: IO[str] | None = None,
) -> None:
    """Send every log record to *stream* as JSON (or text) lines, and to OTLP when asked.

    * *settings*: the ``[monitoring]`` section (default: ``otelres.config.current()``'s):
      ``log_level``, ``structured_logging`` / ``log_format`` (JSON unless either says
      otherwise), ``redact_keys`` and ``log_max_value_chars`` (messages, field values and
      exception texts longer than that, 32 KiB by default, are cut and marked).
    * *service_name*: the ``service.name`` field of every line (default: ``[telemetry]
      service_name``, which ``OTEL_SERVICE_NAME`` overrides).
    * *logger_provider*: an OpenTelemetry ``LoggerProvider``; when given, the same records
      are also emitted to it, redacted, with their trace context. ``None`` removes an OTLP
      handler an earlier call installed.
    * *stream*: where lines go (default: ``sys.stderr``).

    Idempotent: calling it again reconfigures the handlers it installed before instead of
    adding more, so no line is ever written twice. Handlers the application installed
    itself keep receiving records; a plain ``StreamHandler`` of the application's that
    already writes to *stream* (what ``logging.basicConfig()`` installs on stderr) gets
    otelres' formatter instead of a second handler writing the same record again, and its
    own formatter back from :func:`teardown_logging`. When one of them already exports to
    OpenTelemetry (the SDK's ``LoggingHandler``, ``LoggingInstrumentor``), no second OTLP
    handler is added and a warning says so. The root logger's level becomes ``log_level``.
    """
    global _configured
    if settings is None or service_name is None:
        from otelres import config

        current = config.current()
        settings = settings if settings is not None else current.monitoring
        service_name = service_name if service_name is not None else current.telemetry.service_name
    name = service_name
    redactor = Redactor(settings.redact_keys, max_chars=settings.log_max_value_chars)
    level = logging.getLevelName(settings.log_level)
    formatter: logging.Formatter
    if settings.structured_logging and settings.log_format == "json":
        formatter = JsonLogFormatter(service_name=name, redactor=redactor)
    else:
        formatter = TextLogFormatter(service_name=name, redactor=redactor)

    with _lock:
        root = logging.getLogger()
        console, otlp = _managed_handlers(root)
        moved = console is not None and stream is not None and console.stream is not stream
        if moved and console is not None and _release(console):
            console = None  # the adopted handler keeps writing where the application wants
        if console is None:
            target = stream if stream is not None else sys.stderr
            console = _application_writer(root, target)
            if console is not None:
                # The application already writes every record to this stream: formatting its
                # lines instead of adding a second writer is what keeps them from doubling.
                setattr(console, _ADOPTED, console.formatter)
                setattr(console, _MANAGED, True)
            else:
                console = logging.StreamHandler(target)
                setattr(console, _MANAGED, True)
                console.setLevel(level)
                root.addHandler(console)
        elif not hasattr(console, _ADOPTED):
            console.setLevel(level)
            if stream is not None and console.stream is not stream:
                console.setStream(stream)
        console.setFormatter(formatter)
        if otlp is not None and (logger_provider is None or otlp.logger_provider is not logger_provider):
            root.removeHandler(otlp)
            otlp = None
        foreign = _foreign_otel_handler(root) if logger_provider is not None else None
        if foreign is not None:
            if otlp is not None:
                root.removeHandler(otlp)
            logging.getLogger("otelres").warning(
                "otelres: the root logger already has an OpenTelemetry handler (%s); otelres "
                "does not add a second one, so records are not exported twice (nor redacted by "
                "otelres on that path)",
                type(foreign).__name__,
            )
        elif logger_provider is not None:
            if otlp is None:
                from otelres.monitoring._otlp_handler import OTelLogHandler

                otlp = OTelLogHandler(logger_provider, redactor=redactor, level=level)
                setattr(otlp, _MANAGED, True)
                root.addHandler(otlp)
            else:
                otlp.redactor = redactor
                otlp.setLevel(level)
        root.setLevel(level)
        _configured = True


def teardown_logging() -> None:
    """Remove the handlers :func:`setup_logging` installed (the application's own stay,
    with their own formatters back).

    The next :func:`get_logger` sets logging up again from the configuration.
    """
    global _configured
    with _lock:
        root = logging.getLogger()
        for handler in list(root.handlers):
            if getattr(handler, _MANAGED, False) and not _release(handler):
                root.removeHandler(handler)
                handler.close()
        _configured = False


def _application_writer(root: logging.Logger, stream: IO[str]) -> logging.StreamHandler[Any] | None:
    """A plain ``StreamHandler`` of the application's that already writes to *stream*.

    ``logging.basicConfig()`` and most ``dictConfig`` setups (uvicorn's, Django's) install
    exactly that on stderr; only the plain class qualifies, so a subclass with behaviour of
    its own (pytest's capture, a colouring handler) is never taken over.
    """
    for handler in root.handlers:
        if (
            type(handler) is logging.StreamHandler
            and not getattr(handler, _MANAGED, False)
            and handler.stream is stream
        ):
            return handler
    return None


def _release(handler: logging.Handler) -> bool:
    """Give an adopted application handler its own formatter back; False if it is otelres' own."""
    if not hasattr(handler, _ADOPTED):
        return False
    handler.setFormatter(getattr(handler, _ADOPTED))
    delattr(handler, _ADOPTED)
    delattr(handler, _MANAGED)
    return True


def _managed_handlers(root: logging.Logger) -> tuple[logging.StreamHandler[Any] | None, Any]:
    from otelres.monitoring._otlp_handler import OTelLogHandler

    console = otlp = None
    for handler in root.handlers:
        if not getattr(handler, _MANAGED, False):
            continue
        if isinstance(handler, OTelLogHandler):
            otlp = handler
        elif isinstance(handler, logging.StreamHandler):
            console = handler
    return console, otlp


def _foreign_otel_handler(root: logging.Logger) -> logging.Handler | None:
    """A handler exporting to OpenTelemetry that the application (not otelres) installed.

    The SDK's ``LoggingHandler`` and the one of ``opentelemetry-instrumentation-logging``
    (``LoggingInstrumentor().instrument()`` adds it to the root logger) both qualify.
    """
    for handler in root.handlers:
        if getattr(handler, _MANAGED, False):
            continue
        if type(handler).__module__.startswith("opentelemetry.") and "Handler" in type(handler).__name__:
            return handler
    return None


def _ensure_setup() -> None:
    """Set logging up from the configuration unless someone already did.

    An application that configured logging itself (the root logger has handlers) keeps
    its own output: otelres then adds nothing until :func:`setup_logging` is called.
    """
    global _configured
    with _lock:
        if _configured:
            return
        if logging.getLogger().handlers:
            _configured = True
            return
        try:
            setup_logging()
        except Exception as exc:  # an unreadable config.toml must not break a logging call
            from otelres.config import MonitoringSettings

            setup_logging(MonitoringSettings(), service_name="")
            logging.getLogger("otelres").warning(
                "otelres: logging set up with defaults; the configuration could not be read: %s", exc
            )


class StructuredLogger(logging.LoggerAdapter):  # type: ignore[type-arg]
    """A standard logger whose ``extra`` can never make a logging call raise.

    ``extra`` keys that the standard library refuses (``message``, ``name``, ``args``, ...)
    are kept as ``extra.<key>`` instead of raising ``KeyError``, and so are keys starting
    with ``_`` (``_id``), which formatters would skip as private; a non-mapping ``extra``
    becomes the field ``extra``. :meth:`bind` returns a logger that adds fields to every
    record. Anything else (``setLevel``, ``handlers``, ...) is the underlying
    :class:`logging.Logger`'s, available as ``.logger``.
    """

    def __init__(self, logger: logging.Logger, fields: Mapping[str, Any] | None = None) -> None:
        super().__init__(logger, dict(fields or {}))

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, MutableMapping[str, Any]]:
        """Merge the bound fields with the call's ``extra``, renaming keys that would clash."""
        extra = kwargs.get("extra")
        bound = self.extra
        if extra is None and not bound:
            return msg, kwargs
        merged: dict[str, Any] = {}
        if bound:
            _merge(merged, bound)
        if extra is not None:
            if isinstance(extra, Mapping):
                _merge(merged, extra)
            else:
                merged["extra"] = extra
        kwargs["extra"] = merged
        return msg, kwargs

    def bind(self, **fields: Any) -> StructuredLogger:
        """A logger for the same name that adds *fields* to every record (call-site wins)."""
        return StructuredLogger(self.logger, {**(self.extra or {}), **fields})

    def __getattr__(self, name: str) -> Any:
        if name == "logger":  # not set yet (copy, unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.logger, name)


def _merge(into: dict[str, Any], extra: Mapping[Any, Any]) -> None:
    try:
        items = list(extra.items())
    except Exception:
        into["extra"] = safe_str(extra)
        return
    for key, value in items:
        skey = key if type(key) is str else safe_str(key)
        # Formatters skip record attributes starting with "_" (other libraries' private
        # state), so a caller's "_id" is renamed like a clashing key instead of vanishing.
        into["extra." + skey if skey in _CLASHING or skey[:1] == "_" else skey] = value


def get_logger(name: str | None = None) -> StructuredLogger:
    """The logger for *name* (usually ``__name__``), with logging set up on first use.

    Without a prior :func:`setup_logging` call (or ``otelres.configure()``), the first call
    sets logging up from ``otelres.config.current().monitoring``, so the seed system's
    ``get_logger(__name__).info("...", extra={...})`` writes JSON lines with trace IDs out
    of the box, unless the application already configured logging itself.
    """
    if not _configured:
        _ensure_setup()
    key = name or ""
    logger = _loggers.get(key)
    if logger is None:
        logger = StructuredLogger(logging.getLogger(name))
        _loggers[key] = logger
    return logger
