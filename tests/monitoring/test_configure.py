"""otelres.configure() wires logging: JSON lines on stderr and the same records over OTLP."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from otelres._testing.otlp_receiver import OtlpHttpReceiver, attributes_of


@pytest.mark.integration
def test_configure_sends_logs_to_stderr_and_otlp_with_the_same_trace_id(tmp_path: Path) -> None:
    """In a fresh process, configure() makes get_logger lines carry the span's IDs on stderr and over OTLP."""
    with OtlpHttpReceiver() as receiver:
        (tmp_path / "config.toml").write_text(
            textwrap.dedent(
                f"""
                [telemetry]
                service_name = "configured-bot"
                traces_exporter = "otlp"
                logs_exporter = "otlp"
                otlp_protocol = "http/protobuf"
                otlp_endpoint = "{receiver.endpoint}"

                [monitoring]
                log_level = "INFO"
                redact_keys = ["account_id"]
                """
            )
        )
        code = textwrap.dedent(
            """
            import otelres
            from otelres import _otel
            from otelres.monitoring import get_logger
            handle = otelres.configure("config.toml")
            otelres.configure("config.toml")  # idempotent: still one line per record
            logger = get_logger("bot.orders")
            with _otel.get_tracer().start_as_current_span("order"):
                logger.info("order placed account_id=ACC-1", extra={"symbol": "BTC/USD"})
            handle.shutdown()
            """
        )
        clean = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "OTELRES_"))}
        result = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
            cwd=tmp_path, env=clean, check=False,
        )
        assert result.returncode == 0, result.stderr
        receiver.wait_for(lambda r: bool(r.log_records()) and bool(r.spans()))
    lines = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    (line,) = [entry for entry in lines if entry["logger"] == "bot.orders"]
    assert line["service.name"] == "configured-bot"
    assert line["message"] == "order placed account_id=***"
    (span,) = receiver.spans()
    assert line["trace_id"] == span.trace_id.hex()
    (record,) = [r for r in receiver.log_records() if r.body.string_value.startswith("order placed")]
    assert record.body.string_value == "order placed account_id=***"
    assert record.trace_id == span.trace_id
    assert attributes_of(record)["symbol"] == "BTC/USD"
