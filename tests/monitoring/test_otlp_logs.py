"""OTLP logs: the same records leave through a LoggerProvider with their trace context."""

from __future__ import annotations

import io
import logging
from typing import Any

import pytest
from opentelemetry._logs import SeverityNumber
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import (
    BatchLogRecordProcessor,
    InMemoryLogRecordExporter,
    SimpleLogRecordProcessor,
)

from otelres._testing.otlp_receiver import OtlpHttpReceiver, attributes_of
from otelres.config import MonitoringSettings
from otelres.monitoring import OTelLogHandler, get_logger, setup_logging
from otelres.monitoring._redaction import DEFAULT_MAX_VALUE_CHARS

from .conftest import json_lines


@pytest.fixture(name="exporter")
def _exporter() -> InMemoryLogRecordExporter:
    return InMemoryLogRecordExporter()


@pytest.fixture(name="provider")
def _provider(exporter: InMemoryLogRecordExporter) -> LoggerProvider:
    provider = LoggerProvider()
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    return provider


def test_record_leaves_with_trace_context_and_plain_body(
    stream: io.StringIO, provider: LoggerProvider, exporter: InMemoryLogRecordExporter, tracer: Any
) -> None:
    """The OTLP record has the span's IDs, the plain message as body, and the extra fields."""
    setup_logging(MonitoringSettings(), stream=stream, logger_provider=provider)
    with tracer.start_as_current_span("order") as span:
        get_logger("app.orders").warning("placed %s", "buy", extra={"symbol": "BTC/USD"})
    (finished,) = exporter.get_finished_logs()
    record = finished.log_record
    context = span.get_span_context()
    assert record.trace_id == context.trace_id
    assert record.span_id == context.span_id
    assert record.trace_flags == context.trace_flags
    assert record.body == "placed buy"
    assert record.severity_number == SeverityNumber.WARN
    assert record.severity_text == "WARN"
    assert finished.instrumentation_scope.name == "app.orders"
    attributes = dict(record.attributes or {})
    assert attributes["symbol"] == "BTC/USD"
    assert attributes["code.function.name"] == "test_record_leaves_with_trace_context_and_plain_body"
    assert not {"trace_id", "span_id", "otelTraceID", "message", "msg"} & set(attributes)
    assert json_lines(stream)[0]["trace_id"] == f"{context.trace_id:032x}"


def test_opentelemetry_own_records_are_not_fed_back(
    stream: io.StringIO, provider: LoggerProvider, exporter: InMemoryLogRecordExporter
) -> None:
    """Records of the opentelemetry loggers (exporter failures) are not sent to the provider."""
    setup_logging(MonitoringSettings(), stream=stream, logger_provider=provider)
    logging.getLogger("opentelemetry.exporter.otlp").warning("export failed")
    get_logger("app").info("kept")
    assert [f.log_record.body for f in exporter.get_finished_logs()] == ["kept"]


def test_setup_without_provider_removes_the_otlp_handler(
    stream: io.StringIO, provider: LoggerProvider, exporter: InMemoryLogRecordExporter
) -> None:
    """Re-running setup_logging with logger_provider=None stops OTLP output, keeping the console."""
    setup_logging(MonitoringSettings(), stream=stream, logger_provider=provider)
    setup_logging(MonitoringSettings(), stream=stream, logger_provider=provider)
    assert sum(isinstance(h, OTelLogHandler) for h in logging.getLogger().handlers) == 1
    setup_logging(MonitoringSettings(), stream=stream)
    get_logger("app").info("console only")
    assert exporter.get_finished_logs() == ()
    assert json_lines(stream)[0]["message"] == "console only"
    assert not any(isinstance(h, OTelLogHandler) for h in logging.getLogger().handlers)


def test_a_failing_provider_never_reaches_the_caller(stream: io.StringIO) -> None:
    """A logger provider that raises leaves the logging call and the console line intact."""

    class Broken(LoggerProvider):
        def get_logger(self, *args: Any, **kwargs: Any) -> Any:
            raise RuntimeError("provider broken")

    setup_logging(MonitoringSettings(), stream=stream, logger_provider=Broken())
    previous, logging.raiseExceptions = logging.raiseExceptions, False
    try:
        get_logger("app").info("still logged")
    finally:
        logging.raiseExceptions = previous
    assert json_lines(stream)[0]["message"] == "still logged"


@pytest.mark.integration
def test_otlp_http_wire_format_carries_body_ids_and_attributes(stream: io.StringIO, tracer: Any) -> None:
    """Over OTLP/HTTP a real receiver decodes the redacted body, the trace IDs and the attributes."""
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter

    with OtlpHttpReceiver() as receiver:
        provider = LoggerProvider()
        provider.add_log_record_processor(
            BatchLogRecordProcessor(OTLPLogExporter(endpoint=f"{receiver.endpoint}/v1/logs"))
        )
        setup_logging(MonitoringSettings(), stream=stream, logger_provider=provider)
        with tracer.start_as_current_span("fetch") as span:
            get_logger("app.feed").info("ticker api_key=k-1", extra={"exchange": "kraken"})
        provider.force_flush(10_000)
        receiver.wait_for(lambda r: bool(r.log_records()))
        provider.shutdown()
    (record,) = receiver.log_records()
    context = span.get_span_context()
    assert record.body.string_value == "ticker api_key=***"
    assert record.trace_id == context.trace_id.to_bytes(16, "big")
    assert record.span_id == context.span_id.to_bytes(8, "big")
    assert attributes_of(record)["exchange"] == "kraken"


def test_an_application_otel_handler_is_not_doubled(
    stream: io.StringIO, provider: LoggerProvider, exporter: InMemoryLogRecordExporter,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """When the app already installed an OpenTelemetry logging handler, otelres adds none and says so."""
    import warnings

    from opentelemetry.sdk._logs import LoggingHandler

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        app_handler = LoggingHandler(logger_provider=provider)
    root = logging.getLogger()
    root.addHandler(app_handler)
    try:
        setup_logging(MonitoringSettings(), stream=stream, logger_provider=provider)
        get_logger("app").info("exported once")
    finally:
        root.removeHandler(app_handler)
    assert not any(isinstance(h, OTelLogHandler) for h in root.handlers)
    assert [f.log_record.body for f in exporter.get_finished_logs()].count("exported once") == 1
    assert "already has an OpenTelemetry handler (LoggingHandler)" in caplog.text


def test_attribute_values_become_valid_otel_types(
    stream: io.StringIO, provider: LoggerProvider, exporter: InMemoryLogRecordExporter
) -> None:
    """Homogeneous lists stay lists; mixed lists, dicts and objects become JSON or text."""
    setup_logging(MonitoringSettings(), stream=stream, logger_provider=provider)
    get_logger("app").info(
        "types", extra={"sizes": [1, 2], "mixed": [1, "a"], "cfg": {"n": 1}, "none": None}
    )
    attributes = dict(exporter.get_finished_logs()[0].log_record.attributes or {})
    assert list(attributes["sizes"]) == [1, 2]
    assert attributes["mixed"] == '[1, "a"]'
    assert attributes["cfg"] == '{"n": 1}'
    assert attributes["none"] == "null"


@pytest.mark.parametrize(
    ("level", "number"),
    [
        (logging.DEBUG, SeverityNumber.DEBUG),
        (logging.CRITICAL, SeverityNumber.FATAL),
        (25, SeverityNumber.INFO4),
        (5, SeverityNumber.TRACE),
    ],
)
def test_severity_follows_the_level(
    level: int, number: SeverityNumber, provider: LoggerProvider, exporter: InMemoryLogRecordExporter
) -> None:
    """Standard and custom levels map onto the OTel severity ranges."""
    handler = OTelLogHandler(provider)
    handler.handle(logging.LogRecord("app", level, __file__, 1, "m", (), None))
    assert exporter.get_finished_logs()[0].log_record.severity_number == number


def test_integers_beyond_int64_are_kept_as_text(
    provider: LoggerProvider, exporter: InMemoryLogRecordExporter, stream: io.StringIO
) -> None:
    """An int the OTLP wire cannot carry (the SDK would drop it) leaves as its decimal text."""
    setup_logging(MonitoringSettings(), stream=stream, logger_provider=provider)
    get_logger("app").info("wei", extra={"balance": 2**70, "ids": [1, 2**64], "qty": 3})
    attributes = dict(exporter.get_finished_logs()[0].log_record.attributes or {})
    assert attributes["balance"] == str(2**70)
    assert attributes["ids"] == f"[1, {2**64}]"
    assert attributes["qty"] == 3


@pytest.mark.integration
def test_debug_records_of_the_export_itself_are_not_fed_back(stream: io.StringIO) -> None:
    """At DEBUG, urllib3's lines about each OTLP/HTTP export are not exported, so one record stays one."""
    import time

    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter

    with OtlpHttpReceiver() as receiver:
        provider = LoggerProvider()
        provider.add_log_record_processor(
            BatchLogRecordProcessor(
                OTLPLogExporter(endpoint=f"{receiver.endpoint}/v1/logs"), schedule_delay_millis=50
            )
        )
        setup_logging(MonitoringSettings(log_level="DEBUG"), stream=stream, logger_provider=provider)
        get_logger("app").info("one line")
        receiver.wait_for(lambda r: bool(r.log_records()))
        time.sleep(0.5)  # ten more export cycles, had the export's own records been queued
        provider.shutdown()
    assert [r.body.string_value for r in receiver.log_records()] == ["one line"]
    assert "POST /v1/logs" in stream.getvalue()  # still on the console, as DEBUG asks


def test_huge_body_attributes_and_stacktrace_are_cut(
    stream: io.StringIO, provider: LoggerProvider, exporter: InMemoryLogRecordExporter
) -> None:
    """Over OTLP a megabyte body, attribute and exception are cut to the limit, so a batch stays small."""
    setup_logging(MonitoringSettings(), stream=stream, logger_provider=provider)
    try:
        raise ValueError("e" * 1_000_000)
    except ValueError:
        get_logger("app").exception("m" * 1_000_000, extra={"v": "x" * 1_000_000, "rows": list(range(50_000))})
    (finished,) = exporter.get_finished_logs()
    record = finished.log_record
    attributes = dict(record.attributes or {})
    limit = DEFAULT_MAX_VALUE_CHARS
    assert record.body == "m" * limit + f"…[truncated {1_000_000 - limit} chars]"
    assert attributes["v"] == "x" * limit + f"…[truncated {1_000_000 - limit} chars]"
    for key in ("rows", "exception.message", "exception.stacktrace"):
        value = attributes[key]
        assert isinstance(value, str), key
        assert len(value) < limit + 40, key
        assert value.endswith(" chars]"), key
