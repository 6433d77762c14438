"""Fixtures for the monitoring tests: a clean root logger, no registered secrets, fresh providers."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider

from otelres.monitoring import _logging, _metrics, _redaction


@pytest.fixture(autouse=True)
def _clean_logging() -> Iterator[None]:
    """Every test starts with none of otelres' handlers, no secrets, and the root level restored."""
    root = logging.getLogger()
    level = root.level
    _logging.teardown_logging()
    _redaction._forget_secrets()
    _metrics._reset_collector()
    yield
    _logging.teardown_logging()
    _redaction._forget_secrets()
    _metrics._reset_collector()
    root.setLevel(level)


@pytest.fixture(name="stream")
def _stream() -> io.StringIO:
    """Where the console handler writes in a test."""
    return io.StringIO()


@pytest.fixture(name="tracer")
def _tracer() -> Any:
    """A tracer of a private SDK TracerProvider (spans are real, nothing is exported)."""
    return TracerProvider().get_tracer("tests")


@pytest.fixture(name="seen")
def _seen() -> Iterator[list[logging.LogRecord]]:
    """The records a plain application handler on the root logger receives during the test."""
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    keep = Keep()
    logging.getLogger().addHandler(keep)
    yield records
    logging.getLogger().removeHandler(keep)


def json_lines(stream: io.StringIO) -> list[dict[str, Any]]:
    """The JSON objects written to *stream*, one per line."""
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]
