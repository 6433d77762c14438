"""JSON and text formatters that add the service name and the active trace context.

Both formatters read the trace context of the span that is current *while the record is
formatted*, which for the usual synchronous handlers is the caller's span. Trace fields are
added to the output only, never set on the shared ``LogRecord``, so other handlers (an
OTLP handler in particular) never see them as attributes.
"""

from __future__ import annotations

import json
import logging
import re
import time
from typing import Any

from opentelemetry.trace import get_current_span
from pythonjsonlogger.json import JsonFormatter

from otelres.monitoring._redaction import Redactor, safe_str

__all__ = ["RESERVED_RECORD_KEYS", "JsonLogFormatter", "TextLogFormatter", "extra_fields"]

RESERVED_RECORD_KEYS = frozenset(
    {
        *logging.LogRecord("", 0, "", 0, "", (), None).__dict__,
        "message",
        "asctime",
        "taskName",
        # Set by opentelemetry-instrumentation-logging when an application turns on its
        # log correlation; otelres writes its own trace fields instead.
        "otelTraceID",
        "otelSpanID",
        "otelTraceSampled",
        "otelServiceName",
    }
)
"""``LogRecord`` attributes that are not the caller's ``extra`` fields."""


def extra_fields(record: logging.LogRecord, redactor: Redactor) -> dict[str, Any]:
    """The caller's ``extra`` fields of *record* (and a dict message's items), redacted."""
    fields: dict[str, Any] = {}
    for key, value in record.__dict__.items():
        if key not in RESERVED_RECORD_KEYS and key[:1] != "_":
            fields[key] = redactor.field(key, value)
    msg = record.msg
    if isinstance(msg, dict):
        for key, value in msg.items():
            skey = safe_str(key)
            fields[skey] = redactor.field(skey, value)
    return fields


def message_of(record: logging.LogRecord, redactor: Redactor) -> str:
    """The record's formatted message, redacted ('' for a dict message).

    A message whose ``%`` arguments do not fit is shown as the template followed by the
    arguments instead of failing.
    """
    msg = record.msg
    if isinstance(msg, dict):
        return ""
    try:
        text = record.getMessage()
    except Exception:
        text = f"{safe_str(msg)} (arguments {safe_str(record.args)} did not fit)"
    return redactor.text(text)


class _UtcClock:
    """``2026-01-31T12:00:00.123Z`` timestamps, with the per-second part computed once."""

    __slots__ = ("_cache",)

    def __init__(self) -> None:
        self._cache: tuple[int, str] = (-1, "")

    def __call__(self, created: float, msecs: float) -> str:
        """The timestamp of a record created at *created* (Unix seconds) with *msecs*."""
        second = int(created)
        cached = self._cache
        if cached[0] != second:
            cached = (second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)))
            self._cache = cached
        return f"{cached[1]}.{int(msecs):03d}Z"


class _TraceFields:
    """Adds the active span's IDs; the hex strings of the last span seen are reused."""

    __slots__ = ("_last",)

    def __init__(self) -> None:
        self._last: tuple[object, tuple[str, str, str]] | None = None

    def __call__(self, out: dict[str, Any]) -> None:
        """Set ``trace_id``, ``span_id`` and ``trace_flags`` in *out* when a span is active."""
        context = get_current_span().get_span_context()
        if not context.is_valid:
            return
        last = self._last
        if last is not None and last[0] is context:
            ids = last[1]
        else:
            ids = (  # bytes.hex() is about twice as fast as format(..., "032x")
                context.trace_id.to_bytes(16, "big").hex(),
                context.span_id.to_bytes(8, "big").hex(),
                f"{context.trace_flags:02x}",
            )
            self._last = (context, ids)
        out["trace_id"], out["span_id"], out["trace_flags"] = ids


# python-json-logger may return exception text as a list of lines; we want the text.
_plain = logging.Formatter


class JsonLogFormatter(JsonFormatter):
    """One JSON object per record, through python-json-logger.

    Fields, in order: ``timestamp`` (UTC, ISO 8601, milliseconds, ``Z``), ``level``,
    ``logger``, ``message``, ``service.name`` (when known), ``trace_id`` / ``span_id`` /
    ``trace_flags`` (W3C lowercase hex, only while a span is active), the caller's ``extra``
    fields, then ``exc_info`` and ``stack_info`` when present. Everything is redacted by
    *redactor*.

    Formatting never raises: a record that cannot be formatted becomes a line saying so.
    """

    def __init__(
        self,
        *,
        service_name: str | None = None,
        redactor: Redactor | None = None,
        json_ensure_ascii: bool = False,
    ) -> None:
        super().__init__(json_ensure_ascii=json_ensure_ascii)
        self.service_name = service_name or None
        self.redactor = redactor or Redactor()
        self._clock = _UtcClock()
        self._trace_fields = _TraceFields()
        # Values are JSON-safe once redacted, so one plain encoder, made once, suffices;
        # json.dumps(cls=...) would build a new encoder object for every line.
        self._encode = json.JSONEncoder(ensure_ascii=json_ensure_ascii, default=safe_str).encode

    def jsonify_log_record(self, log_data: dict[str, Any]) -> str:
        """Serialize *log_data* (already JSON-safe) with the formatter's encoder.

        The encoder escapes every character below U+0020 (so a message can never break the
        line); NEL (U+0085), U+2028 and U+2029, which it leaves as they are, are escaped
        too, since ``str.splitlines()`` and many editors end a line there.
        """
        line = self._encode(log_data)
        if "\u2028" in line or "\u2029" in line or "\x85" in line:
            for char in "\x85\u2028\u2029":
                line = line.replace(char, f"\\u{ord(char):04x}")
        return line

    def format(self, record: logging.LogRecord) -> str:
        """The JSON line for *record* (see the class docs for its fields)."""
        try:
            redactor = self.redactor
            out: dict[str, Any] = {
                "timestamp": self._clock(record.created, record.msecs),
                "level": record.levelname,
                "logger": record.name,
                "message": message_of(record, redactor),
            }
            if self.service_name is not None:
                out["service.name"] = self.service_name
            self._trace_fields(out)
            for key, value in extra_fields(record, redactor).items():
                # A caller's field never hides a core field such as the message or trace_id.
                out["extra." + key if key in out else key] = value
            if record.exc_info:
                out["exc_info"] = redactor.text(_plain.formatException(self, record.exc_info))
            elif record.exc_text:
                out["exc_info"] = redactor.text(record.exc_text)
            if record.stack_info:
                out["stack_info"] = redactor.text(_plain.formatStack(self, record.stack_info))
        except Exception as exc:
            return self.serialize_log_record(_failure_line(record, exc))
        try:
            return self.serialize_log_record(out)
        except Exception:
            return self.serialize_log_record(self._encodable(out))

    def _encodable(self, out: dict[str, Any]) -> dict[str, Any]:
        """*out* with each field the encoder refuses (an int of 5,000 digits) named instead.

        Only a line that failed to serialize comes here, so the field-by-field retry costs
        nothing on the usual path and the rest of the line is kept.
        """
        kept: dict[str, Any] = {}
        for key, value in out.items():
            try:
                self._encode(value)
            except Exception:
                value = f"<unserializable {type(value).__name__}>"
            kept[key] = value
        return kept


class TextLogFormatter(logging.Formatter):
    """Readable lines that still carry the trace context and the ``extra`` fields::

        2026-01-31T12:00:00.123Z INFO     app.orders: order placed side=buy service.name=bot
            trace_id=4bf9... span_id=00f0... trace_flags=01     (on one line)

    A record is one line, control characters escaped; a traceback or stack follows on
    lines indented by four spaces. Redacted like :class:`JsonLogFormatter`; formatting
    never raises.
    """

    def __init__(self, *, service_name: str | None = None, redactor: Redactor | None = None) -> None:
        super().__init__()
        self.service_name = service_name or None
        self.redactor = redactor or Redactor()
        self._clock = _UtcClock()
        self._trace_fields = _TraceFields()

    def format(self, record: logging.LogRecord) -> str:
        """The text line for *record*, followed by the exception text if any."""
        try:
            redactor = self.redactor
            parts = [
                self._clock(record.created, record.msecs),
                f"{record.levelname:<8}",
                f"{_one_line(record.name)}:",
                _one_line(message_of(record, redactor)),
            ]
            context: dict[str, Any] = {}
            if self.service_name is not None:
                context["service.name"] = self.service_name
            self._trace_fields(context)
            for key, value in (*extra_fields(record, redactor).items(), *context.items()):
                parts.append(f"{_one_line(key)}={_text_value(value)}")
            line = " ".join(parts)
            if record.exc_info:
                line += _continued(redactor.text(self.formatException(record.exc_info)))
            elif record.exc_text:
                line += _continued(redactor.text(record.exc_text))
            if record.stack_info:
                line += _continued(redactor.text(self.formatStack(record.stack_info)))
            return line
        except Exception as exc:
            failure = _failure_line(record, exc)
            return f"{failure['level']} {failure['logger']}: {failure['message']}"


_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
"""Characters that could end a text line or drive a terminal: C0/C1 controls, DEL, and the
Unicode line and paragraph separators (``str.splitlines`` and editors break lines there)."""
_SHORT_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape_control(match: re.Match[str]) -> str:
    char = match.group()
    short = _SHORT_ESCAPES.get(char)
    if short is not None:
        return short
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def _one_line(text: str) -> str:
    """*text* with control characters written as escapes (``\\n``, ``\\r``, ``\\x1b``, ...).

    A message or field value can then never start a line of its own (a forged record that
    a log shipper would take for real) nor send escape sequences to a terminal.
    """
    return _CONTROL.sub(_escape_control, text) if _CONTROL.search(text) is not None else text


def _continued(text: str) -> str:
    """*text* (a traceback) as continuation lines: each indented, control characters escaped.

    Every line of a record after its first starts with whitespace, so neither an exception
    message holding a newline can pass for a record of its own, and log shippers (promtail's
    ``multiline`` stage, Vector, Fluent Bit) can join a record's lines by that rule.
    """
    return "".join("\n    " + _one_line(part) for part in text.split("\n"))


def _text_value(value: Any) -> str:
    """A field value for a text line: quoted, with escapes, when it holds spaces, quotes
    or control characters; never more than one line."""
    text = value if isinstance(value, str) else safe_str(value)
    if not text or any(c.isspace() for c in text) or '"' in text or _CONTROL.search(text) is not None:
        return '"' + _one_line(text.replace("\\", "\\\\").replace('"', '\\"')) + '"'
    return text


def _failure_line(record: logging.LogRecord, exc: BaseException) -> dict[str, Any]:
    """What is written instead of a record that could not be formatted: level, logger, why."""
    return {
        "level": safe_str(getattr(record, "levelname", "ERROR")),
        "logger": safe_str(getattr(record, "name", "?")),
        "message": f"<log record could not be formatted: {type(exc).__name__}>",
    }
