"""A ``logging.Handler`` that sends records to an OpenTelemetry logger provider.

otelres ships its own small handler instead of the SDK's ``LoggingHandler`` (deprecated
since SDK 1.40) or the one in ``opentelemetry-instrumentation-logging`` because log
records must leave redacted: the body is the plain message with secrets masked, and the
attributes are the caller's ``extra`` fields, masked the same way as in the JSON output.
The SDK derives exception attributes from the exception object itself, unmasked, so this
handler writes ``exception.type`` / ``exception.message`` / ``exception.stacktrace``
itself.

The trace context is the context current while the record is handled: the caller's span.
"""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from opentelemetry._logs import SeverityNumber
from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY, get_current, get_value

from otelres.monitoring._formatters import extra_fields, message_of
from otelres.monitoring._redaction import Redactor, safe_str

if TYPE_CHECKING:
    from opentelemetry._logs import Logger, LoggerProvider

__all__ = ["OTelLogHandler"]

_SEVERITY = {
    logging.DEBUG: (SeverityNumber.DEBUG, "DEBUG"),
    logging.INFO: (SeverityNumber.INFO, "INFO"),
    logging.WARNING: (SeverityNumber.WARN, "WARN"),
    logging.ERROR: (SeverityNumber.ERROR, "ERROR"),
    logging.CRITICAL: (SeverityNumber.FATAL, "FATAL"),
}


def _severity(record: logging.LogRecord) -> tuple[SeverityNumber, str]:
    """OTel severity number and text for *record*'s level (WARN and FATAL as OTel spells them)."""
    known = _SEVERITY.get(record.levelno)
    if known is not None:
        return known
    # Custom levels: the OTel range whose base level is the highest not above this one.
    base = max((lvl for lvl in _SEVERITY if lvl <= record.levelno), default=None)
    if base is None:
        return SeverityNumber.TRACE, record.levelname
    number, _ = _SEVERITY[base]
    offset = min(3, record.levelno - base)  # as the SDK does: 21 is INFO2, 23 and up INFO4
    return SeverityNumber(number.value + offset), record.levelname


_INT64 = range(-(2**63), 2**63)


def _attribute_value(value: Any) -> Any:
    """An OTel-valid attribute value: a scalar, a homogeneous list of scalars, or a string.

    Integers outside int64 become their decimal text: the SDK would drop them silently.
    """
    if isinstance(value, (str, bool, float)):
        return value
    if isinstance(value, int):
        return value if value in _INT64 else safe_str(value)
    if isinstance(value, Sequence) and value and not isinstance(value, (str, bytes)):
        first = type(value[0])
        if (
            first in (str, bool, int, float)
            and all(type(v) is first for v in value)
            and (first is not int or all(v in _INT64 for v in value))
        ):
            return list(value)
    import json

    try:
        return json.dumps(value, ensure_ascii=False, default=safe_str)
    except Exception:
        return safe_str(value)


class OTelLogHandler(logging.Handler):
    """Emit log records to *logger_provider* (an SDK ``LoggerProvider``, or the API global).

    One OTel logger per Python logger name, so the instrumentation scope is the logger
    name. Records from the ``opentelemetry`` loggers themselves, and any record logged
    while the SDK exports (instrumentation suppressed: the HTTP client's own debug lines),
    are not sent, so an export cannot feed its own records back into the pipeline forever.

    ``flush()`` does nothing: exporting what the provider buffers is the provider's
    ``force_flush()`` / ``shutdown()`` (``otelres.configure()``'s shutdown calls them), and
    calling it from ``logging.shutdown()`` while the handler lock is held could deadlock
    with an exporter thread that logs.
    """

    def __init__(
        self,
        logger_provider: LoggerProvider,
        *,
        redactor: Redactor | None = None,
        level: int = logging.NOTSET,
    ) -> None:
        super().__init__(level)
        self.logger_provider = logger_provider
        self.redactor = redactor or Redactor()
        self._loggers: dict[str, Logger] = {}

    def _logger(self, name: str) -> Logger:
        """The OTel logger (instrumentation scope) for Python logger *name*, made once."""
        logger = self._loggers.get(name)
        if logger is None:
            logger = self.logger_provider.get_logger(name)
            self._loggers[name] = logger
        return logger

    def emit(self, record: logging.LogRecord) -> None:
        """Translate *record* into an OTel log record and emit it (never raises)."""
        name = record.name
        if name == "opentelemetry" or name.startswith("opentelemetry."):
            return
        if get_value(_SUPPRESS_INSTRUMENTATION_KEY):
            # Logged while the SDK exports (urllib3's "POST /v1/logs" at DEBUG): sending it
            # would cause the next export, which logs again, forever.
            return
        try:
            redactor = self.redactor
            attributes = {k: _attribute_value(v) for k, v in extra_fields(record, redactor).items()}
            attributes["code.file.path"] = record.pathname
            attributes["code.function.name"] = record.funcName
            attributes["code.line.number"] = record.lineno
            if record.exc_info and record.exc_info[0] is not None:
                exc_type, exc, _ = record.exc_info
                attributes["exception.type"] = exc_type.__name__
                if exc is not None:
                    attributes["exception.message"] = redactor.text(safe_str(exc))
                attributes["exception.stacktrace"] = redactor.text(
                    "".join(traceback.format_exception(*record.exc_info))
                )
            severity, severity_text = _severity(record)
            self._logger(name).emit(
                timestamp=int(record.created * 1e9),
                observed_timestamp=time.time_ns(),
                context=get_current(),
                severity_number=severity,
                severity_text=severity_text,
                body=message_of(record, redactor),
                attributes=attributes,
            )
        except Exception:
            self.handleError(record)
