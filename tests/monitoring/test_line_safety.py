"""One record, one line: control characters are escaped and huge values are cut."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest

from otelres.config import MonitoringSettings
from otelres.monitoring import Redactor, get_logger, register_secret, setup_logging
from otelres.monitoring._redaction import DEFAULT_MAX_VALUE_CHARS

FORGED = "order placed\n2026-01-31T12:00:00.000Z INFO     auth: admin login ok"


def test_text_message_cannot_forge_a_second_line(stream: io.StringIO) -> None:
    """A newline in a text-format message is written as \\n, so the record stays one line."""
    setup_logging(MonitoringSettings(log_format="text"), service_name="bot", stream=stream)
    get_logger("app").info(FORGED + "\r\nmore")
    (line,) = stream.getvalue().splitlines()
    assert "order placed\\n2026-01-31T12:00:00.000Z INFO     auth: admin login ok\\r\\nmore" in line


def test_text_field_values_and_keys_escape_control_characters(stream: io.StringIO) -> None:
    """CR, LF, ESC, DEL, NUL and U+2028 in field values and keys become escapes on one line."""
    setup_logging(MonitoringSettings(log_format="text"), service_name="bot", stream=stream)
    get_logger("app").info(
        "x", extra={"color": "a\x1b[31mb", "cr": "c\rd", "nul": "e\x00\x7ff", "ls": "g\u2028h", "k\ny": 1}
    )
    text = stream.getvalue()
    (line,) = text.splitlines()
    assert text.count("\n") == 1
    assert '"a\\x1b[31mb"' in line
    assert '"c\\rd"' in line
    assert '"e\\x00\\x7ff"' in line
    assert '"g\\u2028h"' in line
    assert "k\\ny=1" in line
    assert "\x1b" not in line


def test_json_lines_stay_single_lines_for_every_line_breaker(stream: io.StringIO) -> None:
    """JSON output keeps each record on one line, U+2028/U+2029 included, and parses back intact."""
    setup_logging(MonitoringSettings(), service_name="bot", stream=stream)
    message = FORGED + "\r\u2028\u2029\x85\x1b"
    get_logger("app").info(message, extra={"v": "a\nb\u2028"})
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1
    record = json.loads(lines[0])
    assert record["message"] == message
    assert record["v"] == "a\nb\u2028"


@pytest.mark.parametrize("log_format", ["json", "text"])
def test_escaping_keeps_ordinary_lines_unchanged(stream: io.StringIO, log_format: str) -> None:
    """Messages and values without control characters are written exactly as before (é, tabs aside)."""
    setup_logging(MonitoringSettings(log_format=log_format), service_name="bot", stream=stream)  # type: ignore[arg-type]
    get_logger("app").info("prix: 3 € — ok", extra={"who": "zoé"})
    assert "prix: 3 € — ok" in stream.getvalue()
    assert "zoé" in stream.getvalue()


HUGE = 2_000_000


def _one_record(stream: io.StringIO) -> dict[str, Any]:
    (line,) = stream.getvalue().splitlines()
    record: dict[str, Any] = json.loads(line)
    return record


def test_huge_message_and_field_are_cut_with_a_marker(stream: io.StringIO) -> None:
    """A 2 MB message and a 2 MB extra value are each cut to 32 KiB plus a marker saying how much went."""
    setup_logging(MonitoringSettings(), service_name="bot", stream=stream)
    get_logger("a").info("m" * HUGE, extra={"v": "x" * HUGE})
    record = _one_record(stream)
    limit = DEFAULT_MAX_VALUE_CHARS
    assert limit == 32 * 1024
    assert record["message"] == "m" * limit + f"…[truncated {HUGE - limit} chars]"
    assert record["v"] == "x" * limit + f"…[truncated {HUGE - limit} chars]"
    assert len(stream.getvalue()) < 3 * limit


def test_text_format_cuts_huge_values_too(stream: io.StringIO) -> None:
    """Text lines cut a huge message and field value the same way."""
    setup_logging(MonitoringSettings(log_format="text"), service_name="bot", stream=stream)
    get_logger("a").info("m" * HUGE, extra={"v": "x" * HUGE})
    line = stream.getvalue()
    assert f"…[truncated {HUGE - DEFAULT_MAX_VALUE_CHARS} chars]" in line
    assert len(line) < 3 * DEFAULT_MAX_VALUE_CHARS


def test_huge_structured_field_becomes_its_cut_json(stream: io.StringIO) -> None:
    """A list or dict field whose JSON is over the limit becomes that JSON text, cut and marked."""
    setup_logging(MonitoringSettings(), service_name="bot", stream=stream)
    rows = list(range(100_000))
    get_logger("a").info("rows", extra={"rows": rows, "small": {"a": [1, 2]}})
    record = _one_record(stream)
    encoded = json.dumps(rows)
    limit = DEFAULT_MAX_VALUE_CHARS
    assert record["rows"] == encoded[:limit] + f"…[truncated {len(encoded) - limit} chars]"
    assert record["small"] == {"a": [1, 2]}


def test_huge_exception_text_is_cut(stream: io.StringIO) -> None:
    """An exception whose message is megabytes long leaves a cut exc_info, not a megabyte line."""
    setup_logging(MonitoringSettings(), service_name="bot", stream=stream)
    try:
        raise ValueError("e" * HUGE)
    except ValueError:
        get_logger("a").exception("failed")
    record = _one_record(stream)
    assert record["exc_info"].startswith("Traceback")
    assert record["exc_info"].endswith(" chars]")
    assert len(record["exc_info"]) < DEFAULT_MAX_VALUE_CHARS + 40


def test_limit_comes_from_settings(stream: io.StringIO) -> None:
    """[monitoring] log_max_value_chars sets where messages and values are cut."""
    setup_logging(MonitoringSettings(log_max_value_chars=300), service_name="bot", stream=stream)
    get_logger("a").info("m" * 1000, extra={"v": "x" * 300})
    record = _one_record(stream)
    assert record["message"] == "m" * 300 + "…[truncated 700 chars]"
    assert record["v"] == "x" * 300


def test_secret_straddling_the_cut_is_masked_not_halved() -> None:
    """A registered secret or key=value pair at the cut is masked before cutting, so no half of it leaks."""
    register_secret("S3CRET-VALUE-abcdefghijklmnop")
    redactor = Redactor(max_chars=1000)
    text = "a" * 990 + "S3CRET-VALUE-abcdefghijklmnop" + "b" * 5000
    out = redactor.text(text)
    assert "S3CRET" not in out
    assert out.startswith("a" * 990 + "***")
    paired = redactor.text("a" * 995 + "token=abcdefghijklmnop " + "c" * 5000)
    assert "abcdef" not in paired


def test_heavy_masking_in_a_huge_text_leaks_nothing_from_past_the_window() -> None:
    """When masking shrinks a huge text a lot, what slides into the kept part was masked too."""
    secret = "Z" * 3000
    register_secret(secret)
    redactor = Redactor(max_chars=1000)
    out = redactor.text(secret * 10 + "api_key=LEAKME " + "q" * 10_000)
    assert "LEAKME" not in out
    assert "ZZZZ" not in out


def test_redactor_rejects_a_nonsense_limit() -> None:
    """Redactor(max_chars=0) raises ValueError naming the argument."""
    with pytest.raises(ValueError, match="max_chars"):
        Redactor(max_chars=0)


def test_text_traceback_lines_are_indented_so_none_passes_for_a_record(stream: io.StringIO) -> None:
    """In text format every traceback line is indented, so an exception message cannot forge a record."""
    setup_logging(MonitoringSettings(log_format="text"), service_name="bot", stream=stream)
    try:
        raise ValueError(FORGED)
    except ValueError:
        get_logger("app").exception("failed", stack_info=True)
    first, *rest = stream.getvalue().rstrip("\n").split("\n")
    assert first.split(" ", 1)[1].startswith("ERROR    app: failed")
    assert rest
    assert all(line.startswith("    ") for line in rest)
    assert "    2026-01-31T12:00:00.000Z INFO     auth: admin login ok" in rest
    assert "    Traceback (most recent call last):" in rest
