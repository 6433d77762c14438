"""JSON log lines: otelres' formatter (with trace IDs, service name, redaction) vs python-json-logger.

Target (issue 5): a JSON line with trace IDs costs at most 1.25x a plain python-json-logger
``JsonFormatter`` line for the same record. Both format the same ``LogRecord`` while a span is
active; the plain formatter is configured for the same core fields (timestamp, level, logger,
message). Two records: a short one (a message with one argument and one ``extra`` field) and
a typical bot line whose message and fields hold ``:`` and ``=`` (so otelres' redaction has to
look at them) with three ``extra`` fields, while three secrets are registered as a bot
registers its API key, API secret and webhook URL. A last pair measures the whole
``logger.info(...)`` call through a handler writing to an in-memory stream.

Rounds are interleaved with a rotating order and the collector off (``bench/_ratios.py``).

Run: .venv/bin/python bench/bench_logging.py
"""

from __future__ import annotations

import io
import logging

from _ratios import compare, sync_timer, verdict
from opentelemetry.sdk.trace import TracerProvider
from pythonjsonlogger.json import JsonFormatter

from otelres.monitoring import JsonLogFormatter, Redactor, register_secret

ROUNDS = 15
CALLS = 5_000
TARGET = 1.25
BASELINE = "python-json-logger JsonFormatter"


def _logger_for(formatter: logging.Formatter, name: str) -> logging.Logger:
    """A logger writing through *formatter* to an in-memory stream, isolated from the root."""
    handler = logging.StreamHandler(io.StringIO())
    handler.setFormatter(formatter)
    logger = logging.getLogger(name)
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    return logger


def main() -> int:
    tracer = TracerProvider().get_tracer("bench")
    record = logging.LogRecord("app.orders", logging.INFO, __file__, 10, "placed %s", ("buy",), None)
    record.strategy = "ma_crossover"
    typical = logging.LogRecord(
        "app.orders", logging.INFO, __file__, 10, "order placed: side=%s qty=%s symbol=%s",
        ("buy", 2, "BTC/USD"), None,
    )
    typical.strategy, typical.order_id, typical.fill = "ma_crossover", "O-1234", "status: partial"
    for secret in ("bench-api-key-7f3a91", "bench-api-secret-c0ffee==", "https://hooks.example/T0/B0/x"):
        register_secret(secret)
    ours = JsonLogFormatter(service_name="bench", redactor=Redactor())
    plain = JsonFormatter("%(levelname)s %(name)s %(message)s", timestamp=True)

    with tracer.start_as_current_span("bench"):
        line = ours.format(record)
        assert '"trace_id"' in line, line
        print("otelres line:           ", line)
        print("python-json-logger line:", plain.format(record))
        trace_fields = ours._trace_fields

        def ours_new_span() -> str:
            trace_fields._last = None  # as if every line came from another span
            return ours.format(record)

        formatted = compare(
            "format one record (span active)",
            {
                BASELINE: sync_timer(lambda: plain.format(record), CALLS),
                "otelres JsonLogFormatter": sync_timer(lambda: ours.format(record), CALLS),
                "otelres, IDs not cached (new span per line)": sync_timer(ours_new_span, CALLS),
            },
            rounds=ROUNDS,
        )
        typical_line = compare(
            "format a typical bot line (':' and '=' to scan, 3 fields, 3 secrets)",
            {
                BASELINE: sync_timer(lambda: plain.format(typical), CALLS),
                "otelres JsonLogFormatter": sync_timer(lambda: ours.format(typical), CALLS),
            },
            rounds=ROUNDS,
        )
        ours_logger = _logger_for(ours, "bench.ours")
        plain_logger = _logger_for(plain, "bench.plain")
        extra = {"strategy": "ma_crossover"}
        compare(
            "logger.info(...) through a StreamHandler",
            {
                BASELINE: sync_timer(lambda: plain_logger.info("placed %s", "buy", extra=extra), CALLS),
                "otelres JsonLogFormatter": sync_timer(
                    lambda: ours_logger.info("placed %s", "buy", extra=extra), CALLS
                ),
            },
            rounds=ROUNDS,
        )
    worst = max(formatted["otelres JsonLogFormatter"].ratio,
                formatted["otelres, IDs not cached (new span per line)"].ratio,
                typical_line["otelres JsonLogFormatter"].ratio)
    return 0 if verdict("JSON line with trace IDs vs python-json-logger (worst)", worst, TARGET) else 1


if __name__ == "__main__":
    raise SystemExit(main())
