"""Logs: JSON and text lines with service name and trace context, set up idempotently."""

from __future__ import annotations

import io
import logging
import re
from typing import Any

import pytest

from otelres import config
from otelres.config import MonitoringSettings
from otelres.monitoring import (
    JsonLogFormatter,
    TextLogFormatter,
    get_logger,
    get_metrics_collector,
    setup_logging,
    teardown_logging,
)

from .conftest import json_lines

TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def test_seed_usage_writes_a_json_line_with_extra_fields(stream: io.StringIO) -> None:
    """The seed system's logger and metrics usage produces one JSON line with its extra field."""
    setup_logging(MonitoringSettings(), service_name="bot", stream=stream)
    logger = get_logger("seed")
    metrics = get_metrics_collector()
    with metrics.timer("operation_duration"):
        logger.info("Starting operation", extra={"strategy": "ma_crossover"})
        metrics.increment("operations_completed")
    (line,) = json_lines(stream)
    assert TIMESTAMP.match(line.pop("timestamp"))
    assert line == {
        "level": "INFO",
        "logger": "seed",
        "message": "Starting operation",
        "service.name": "bot",
        "strategy": "ma_crossover",
    }


def test_json_line_carries_the_active_spans_ids(stream: io.StringIO, tracer: Any) -> None:
    """Inside a span the line has its trace_id, span_id and trace flags as W3C lowercase hex."""
    setup_logging(MonitoringSettings(), service_name="bot", stream=stream)
    with tracer.start_as_current_span("order") as span:
        get_logger("t").warning("placing %s", "order")
    context = span.get_span_context()
    (line,) = json_lines(stream)
    assert line["message"] == "placing order"
    assert line["trace_id"] == f"{context.trace_id:032x}"
    assert line["span_id"] == f"{context.span_id:016x}"
    assert line["trace_flags"] == f"{context.trace_flags:02x}"
    assert re.fullmatch(r"[0-9a-f]{32}", line["trace_id"])


def test_no_trace_fields_without_an_active_span(stream: io.StringIO) -> None:
    """Outside any span the line has no trace fields at all (not empty or zero ones)."""
    setup_logging(MonitoringSettings(), stream=stream)
    get_logger("t").info("idle")
    (line,) = json_lines(stream)
    assert not {"trace_id", "span_id", "trace_flags"} & set(line)


def test_trace_fields_never_land_on_the_shared_record(
    stream: io.StringIO, tracer: Any, seen: list[logging.LogRecord]
) -> None:
    """Other handlers see the record without trace fields: they are added by the formatter only."""
    setup_logging(MonitoringSettings(), stream=stream)
    with tracer.start_as_current_span("s"):
        get_logger("t").info("x")
    assert "trace_id" in json_lines(stream)[0]
    assert not any(hasattr(r, "trace_id") or hasattr(r, "span_id") for r in seen)


def test_text_format_is_readable_and_keeps_the_ids(stream: io.StringIO, tracer: Any) -> None:
    """structured_logging = false gives a text line with message, fields and trace IDs."""
    setup_logging(MonitoringSettings(structured_logging=False), service_name="bot", stream=stream)
    with tracer.start_as_current_span("s") as span:
        get_logger("app.orders").info("order placed", extra={"side": "buy", "note": "two words"})
    text = stream.getvalue().strip()
    context = span.get_span_context()
    assert re.match(r"^\S+Z INFO +app\.orders: order placed ", text)
    assert "side=buy" in text
    assert 'note="two words"' in text
    assert "service.name=bot" in text
    assert f"trace_id={context.trace_id:032x}" in text
    assert f"span_id={context.span_id:016x}" in text
    assert not text.startswith("{")


def test_log_format_text_also_selects_text(stream: io.StringIO) -> None:
    """log_format = "text" gives text lines even with structured_logging left on."""
    setup_logging(MonitoringSettings(log_format="text"), stream=stream)
    get_logger("t").info("hello")
    assert "INFO" in stream.getvalue()
    assert not stream.getvalue().startswith("{")


def test_level_comes_from_settings(stream: io.StringIO) -> None:
    """log_level filters records below it and lets those at or above it through."""
    setup_logging(MonitoringSettings(log_level="WARNING"), stream=stream)
    logger = get_logger("t")
    logger.info("dropped")
    logger.warning("kept")
    assert [line["message"] for line in json_lines(stream)] == ["kept"]


def test_setup_twice_never_duplicates_lines(stream: io.StringIO) -> None:
    """Calling setup_logging again reconfigures its handler instead of adding another."""
    setup_logging(MonitoringSettings(), stream=stream)
    setup_logging(MonitoringSettings(), stream=stream)
    setup_logging(MonitoringSettings(log_level="DEBUG"), stream=stream)
    get_logger("t").debug("once")
    assert [line["message"] for line in json_lines(stream)] == ["once"]


def test_setup_again_switches_format_and_stream(stream: io.StringIO) -> None:
    """A second call can move the output to another stream and to text format."""
    setup_logging(MonitoringSettings(), stream=stream)
    other = io.StringIO()
    setup_logging(MonitoringSettings(log_format="text"), stream=other)
    get_logger("t").info("moved")
    assert stream.getvalue() == ""
    assert "moved" in other.getvalue()
    assert not other.getvalue().startswith("{")


def test_application_handlers_are_kept(stream: io.StringIO) -> None:
    """Handlers the application installed keep receiving records and survive teardown."""
    app_stream = io.StringIO()
    app_handler = logging.StreamHandler(app_stream)
    app_handler.setFormatter(logging.Formatter("APP %(message)s"))
    root = logging.getLogger()
    root.addHandler(app_handler)
    try:
        setup_logging(MonitoringSettings(), stream=stream)
        get_logger("t").info("both")
        teardown_logging()
        assert app_handler in root.handlers
    finally:
        root.removeHandler(app_handler)
    assert app_stream.getvalue() == "APP both\n"
    assert json_lines(stream)[0]["message"] == "both"


def test_get_logger_sets_logging_up_from_configuration(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without setup_logging, the first get_logger writes JSON to stderr per [monitoring]."""
    monkeypatch.setattr(logging.getLogger(), "handlers", [])
    config.set_current(
        config.config_from_dict(
            {"monitoring": {"log_level": "DEBUG"}, "telemetry": {"service_name": "lazy"}}, environ={}
        )
    )
    get_logger("lazy.module").debug("configured lazily")
    line = capsys.readouterr().err.strip()
    assert '"message": "configured lazily"' in line
    assert '"service.name": "lazy"' in line


def test_get_logger_leaves_an_application_logging_setup_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    """When the application configured logging itself, get_logger adds no handler of its own."""
    app_handler = logging.NullHandler()
    monkeypatch.setattr(logging.getLogger(), "handlers", [app_handler])
    get_logger("t").info("x")
    assert logging.getLogger().handlers == [app_handler]


def test_extra_with_reserved_keys_never_raises(stream: io.StringIO) -> None:
    """Keys the standard library refuses in extra are kept as extra.<key> instead of raising."""
    setup_logging(MonitoringSettings(), stream=stream)
    get_logger("t").info("m", extra={"message": "mine", "name": "BTC/USD", "args": [1]})
    (line,) = json_lines(stream)
    assert line["message"] == "m"
    assert line["extra.message"] == "mine"
    assert line["extra.name"] == "BTC/USD"
    assert line["extra.args"] == [1]


class _Unprintable:
    def __str__(self) -> str:
        raise RuntimeError("no")

    __repr__ = __str__


def test_underscore_keys_in_extra_are_kept_not_dropped(stream: io.StringIO) -> None:
    """A caller's _id (a Mongo-style key) is written as extra._id rather than skipped as private."""
    setup_logging(MonitoringSettings(), stream=stream)
    get_logger("t").bind(_session="s-1").info("saved", extra={"_id": "65f0c1", "qty": 2})
    (line,) = json_lines(stream)
    assert (line["extra._id"], line["extra._session"], line["qty"]) == ("65f0c1", "s-1", 2)


def test_any_extra_value_is_logged_without_raising(stream: io.StringIO) -> None:
    """Unprintable objects, cycles, bytes, odd keys and a non-mapping extra all produce a line."""
    setup_logging(MonitoringSettings(), stream=stream)
    cycle: list[Any] = []
    cycle.append(cycle)
    logger = get_logger("t")
    logger.info("a", extra={"obj": _Unprintable(), "cycle": cycle, "raw": b"\xff\x00", 3: "int key"})
    logger.info("b", extra="not a mapping")  # type: ignore[arg-type]
    first, second = json_lines(stream)
    assert first["obj"] == "<unprintable _Unprintable>"
    assert first["3"] == "int key"
    assert isinstance(first["cycle"], list)
    assert second["extra"] == "not a mapping"


@pytest.mark.parametrize("formatter", [JsonLogFormatter(), TextLogFormatter()], ids=["json", "text"])
def test_formatters_never_raise_on_a_broken_message(formatter: logging.Formatter) -> None:
    """A message whose arguments do not fit, or whose str() raises, still gives a line."""
    bad_args = logging.LogRecord("t", logging.INFO, __file__, 1, "c %d", ("x",), None)
    bad_msg = logging.LogRecord("t", logging.INFO, __file__, 1, _Unprintable(), (), None)
    assert "c %d" in formatter.format(bad_args)
    assert "unprintable" in formatter.format(bad_msg) or "could not be formatted" in formatter.format(bad_msg)


def test_exception_text_is_included(stream: io.StringIO) -> None:
    """logger.exception writes the traceback into exc_info."""
    setup_logging(MonitoringSettings(), stream=stream)
    try:
        raise ValueError("boom")
    except ValueError:
        get_logger("t").exception("failed")
    (line,) = json_lines(stream)
    assert line["level"] == "ERROR"
    assert "ValueError: boom" in line["exc_info"]


def test_caller_information_points_at_the_caller(
    stream: io.StringIO, seen: list[logging.LogRecord]
) -> None:
    """Records made through get_logger name the calling function, not a logging wrapper."""
    setup_logging(MonitoringSettings(structured_logging=False), stream=stream)
    get_logger("t").info("where")
    assert seen[0].funcName == "test_caller_information_points_at_the_caller"


def test_bound_fields_are_added_to_every_record(stream: io.StringIO) -> None:
    """bind() adds fields to each record; a field given at the call wins."""
    setup_logging(MonitoringSettings(), stream=stream)
    logger = get_logger("t").bind(exchange="kraken", symbol="BTC/USD")
    logger.info("one")
    logger.info("two", extra={"symbol": "ETH/USD"})
    one, two = json_lines(stream)
    assert (one["exchange"], one["symbol"]) == ("kraken", "BTC/USD")
    assert (two["exchange"], two["symbol"]) == ("kraken", "ETH/USD")


def test_get_logger_returns_the_same_logger_per_name() -> None:
    """get_logger(name) wraps the standard logger of that name, once."""
    assert get_logger("same") is get_logger("same")
    assert get_logger("same").logger is logging.getLogger("same")


def test_unreadable_configuration_still_gives_working_logs(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """A broken config.toml makes the lazy set-up fall back to defaults and say why, not raise."""
    broken = tmp_path / "config.toml"
    broken.write_text("[monitoring\nlog_level = 'INFO'\n")
    monkeypatch.setenv("OTELRES_CONFIG", str(broken))
    monkeypatch.setattr(logging.getLogger(), "handlers", [])
    config.set_current(None)
    get_logger("t").warning("still works")
    err = capsys.readouterr().err
    assert "configuration could not be read" in err
    assert '"message": "still works"' in err


def test_text_lines_carry_redacted_exception_and_stack(stream: io.StringIO) -> None:
    """In text format the traceback and stack follow the line, redacted."""
    setup_logging(MonitoringSettings(log_format="text"), stream=stream)
    try:
        raise ValueError("password=hunter2")
    except ValueError:
        get_logger("t").error("failed", exc_info=True, stack_info=True)
    text = stream.getvalue()
    assert "ValueError: password=***" in text
    assert "Stack (most recent call last)" in text
    assert "hunter2" not in text


def test_concurrent_threads_each_log_their_own_trace_ids(stream: io.StringIO, tracer: Any) -> None:
    """Lines logged at once from many threads, each in its own span, carry that span's IDs."""
    import threading

    setup_logging(MonitoringSettings(), stream=stream)
    logger = get_logger("threads")
    expected: dict[str, str] = {}
    barrier = threading.Barrier(8)

    def work(n: int) -> None:
        with tracer.start_as_current_span(f"worker {n}") as span:
            expected[str(n)] = f"{span.get_span_context().span_id:016x}"
            barrier.wait()
            for _ in range(50):
                logger.info("tick", extra={"worker": str(n)})

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    lines = json_lines(stream)
    assert len(lines) == 400
    assert all(line["span_id"] == expected[line["worker"]] for line in lines)


async def test_interleaved_tasks_and_to_thread_log_their_own_span(stream: io.StringIO, tracer: Any) -> None:
    """Interleaved asyncio tasks log their own span's IDs, and work sent with asyncio.to_thread keeps the caller's."""
    import asyncio

    setup_logging(MonitoringSettings(), stream=stream)
    logger = get_logger("tasks")
    expected: dict[str, str] = {}

    async def fetch(name: str) -> None:
        with tracer.start_as_current_span(name) as span:
            expected[name] = f"{span.get_span_context().span_id:016x}"
            for _ in range(3):
                await asyncio.sleep(0)  # let the other task run in between
                logger.info("tick", extra={"task": name})
            await asyncio.to_thread(logger.info, "from a thread", extra={"task": name})

    with tracer.start_as_current_span("parent") as parent:
        await asyncio.gather(fetch("kraken"), fetch("binance"))
        logger.info("back in the parent", extra={"task": "parent"})
    expected["parent"] = f"{parent.get_span_context().span_id:016x}"
    lines = json_lines(stream)
    assert len(lines) == 9
    assert all(line["span_id"] == expected[line["task"]] for line in lines)
    assert len({line["trace_id"] for line in lines}) == 1


def test_basicconfig_on_the_same_stream_is_formatted_not_doubled(stream: io.StringIO) -> None:
    """After logging.basicConfig on the same stream, setup_logging formats that handler's lines instead of adding a second writer, and teardown gives its formatter back."""
    root = logging.getLogger()
    app_handler = logging.StreamHandler(stream)
    app_format = logging.Formatter("APP %(message)s")
    app_handler.setFormatter(app_format)
    root.addHandler(app_handler)
    try:
        setup_logging(MonitoringSettings(), stream=stream)
        setup_logging(MonitoringSettings(), stream=stream)
        get_logger("t").info("once")
        assert [h for h in root.handlers if h.__class__ is logging.StreamHandler] == [app_handler]
        teardown_logging()
        assert app_handler in root.handlers
        assert app_handler.formatter is app_format
        get_logger("t").info("plain again")
    finally:
        root.removeHandler(app_handler)
    (line,) = json_lines(io.StringIO(stream.getvalue().splitlines()[0]))
    assert line["message"] == "once"
    assert stream.getvalue().splitlines()[1:] == ["APP plain again"]


def test_adopted_handler_is_released_when_another_stream_is_asked_for(stream: io.StringIO) -> None:
    """Setting up again with another stream hands the adopted handler back and writes to the new stream."""
    root = logging.getLogger()
    app_stream = io.StringIO()
    app_handler = logging.StreamHandler(app_stream)
    root.addHandler(app_handler)
    try:
        setup_logging(MonitoringSettings(), stream=app_stream)
        setup_logging(MonitoringSettings(), stream=stream)
        get_logger("t").info("moved")
    finally:
        root.removeHandler(app_handler)
    assert app_stream.getvalue() == "moved\n"
    assert json_lines(stream)[0]["message"] == "moved"


def test_a_failing_container_costs_only_its_own_field(stream: io.StringIO) -> None:
    """A mapping that raises while read becomes one <unprintable> field; message and other fields stay."""

    class Broken(dict):  # type: ignore[type-arg]
        def items(self) -> Any:
            raise RuntimeError("half-closed cursor")

    setup_logging(MonitoringSettings(), stream=stream)
    get_logger("t").info("kept", extra={"rows": Broken(a=1), "symbol": "BTC/USD"})
    (line,) = json_lines(stream)
    assert (line["message"], line["rows"], line["symbol"]) == ("kept", "<unprintable Broken>", "BTC/USD")


def test_lines_stay_strict_json_whatever_the_numbers(stream: io.StringIO) -> None:
    """NaN and infinities become strings and an int too long to encode is named, so every line parses as strict JSON."""
    import json

    setup_logging(MonitoringSettings(), stream=stream)
    get_logger("t").info(
        "numbers", extra={"pnl": float("nan"), "cap": float("-inf"), "huge": 10**5000, "qty": 2}
    )
    text = stream.getvalue()
    line = json.loads(text, parse_constant=lambda name: pytest.fail(f"non-standard JSON {name}"))
    assert (line["pnl"], line["cap"], line["qty"]) == ("NaN", "-Infinity", 2)
    assert line["huge"] == "<unserializable int>"
    assert line["message"] == "numbers"
