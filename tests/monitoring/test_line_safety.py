"""One record, one line: control characters are escaped and huge values are cut."""

from __future__ import annotations

import io
import json

import pytest

from otelres.config import MonitoringSettings
from otelres.monitoring import get_logger, setup_logging

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
