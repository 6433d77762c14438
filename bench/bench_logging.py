"""JSON log lines: otelres' formatter (with trace IDs, service name, redaction) vs python-json-logger.

Target (issue 5): a JSON line with trace IDs costs at most 1.25x a plain python-json-logger
``JsonFormatter`` line for the same record. Both format the same ``LogRecord`` (a message with
one argument and one ``extra`` field) while a span is active; the plain formatter is configured
for the same core fields (timestamp, level, logger, message). A second pair measures the whole
``logger.info(...)`` call through a handler writing to an in-memory stream.

Run: .venv/bin/python bench/bench_logging.py
"""

from __future__ import annotations

import io
import logging
import statistics
import time
from collections.abc import Callable

from opentelemetry.sdk.trace import TracerProvider
from pythonjsonlogger.json import JsonFormatter

from otelres.monitoring import JsonLogFormatter, Redactor

ROUNDS = 15
CALLS = 5_000
TARGET = 1.25


def _best_per_call(fn: Callable[[], object], calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls


def compare(name: str, ours: Callable[[], object], theirs: Callable[[], object]) -> float:
    """Interleave both for ROUNDS rounds; print and return the median ratio ours/theirs."""
    ratios, ours_t, theirs_t = [], [], []
    for _ in range(ROUNDS):
        t = _best_per_call(theirs, CALLS)
        o = _best_per_call(ours, CALLS)
        ratios.append(o / t)
        ours_t.append(o)
        theirs_t.append(t)
    ratio = statistics.median(ratios)
    print(
        f"{name:<46} otelres {statistics.median(ours_t) * 1e6:6.2f} us  "
        f"python-json-logger {statistics.median(theirs_t) * 1e6:6.2f} us  ratio {ratio:.2f}x"
    )
    return ratio


def main() -> int:
    tracer = TracerProvider().get_tracer("bench")
    record = logging.LogRecord("app.orders", logging.INFO, __file__, 10, "placed %s", ("buy",), None)
    record.strategy = "ma_crossover"
    ours = JsonLogFormatter(service_name="bench", redactor=Redactor())
    plain = JsonFormatter("%(levelname)s %(name)s %(message)s", timestamp=True)

    with tracer.start_as_current_span("bench"):
        line = ours.format(record)
        assert '"trace_id"' in line, line
        print("otelres line:           ", line)
        print("python-json-logger line:", plain.format(record))
        formatter_ratio = compare("format one record (span active)", lambda: ours.format(record),
                                  lambda: plain.format(record))
        trace_fields = ours._trace_fields

        def ours_new_span() -> str:
            trace_fields._last = None  # as if every line came from another span
            return ours.format(record)

        uncached_ratio = compare("format, IDs not cached (new span per line)", ours_new_span,
                                 lambda: plain.format(record))

        def logger_for(formatter: logging.Formatter, name: str) -> logging.Logger:
            handler = logging.StreamHandler(io.StringIO())
            handler.setFormatter(formatter)
            logger = logging.getLogger(name)
            logger.handlers[:] = [handler]
            logger.propagate = False
            logger.setLevel(logging.INFO)
            return logger

        ours_logger = logger_for(ours, "bench.ours")
        plain_logger = logger_for(plain, "bench.plain")
        extra = {"strategy": "ma_crossover"}
        compare(
            "logger.info(...) through a StreamHandler",
            lambda: ours_logger.info("placed %s", "buy", extra=extra),
            lambda: plain_logger.info("placed %s", "buy", extra=extra),
        )
    worst = max(formatter_ratio, uncached_ratio)
    verdict = "meets" if worst <= TARGET else "MISSES"
    print(f"JSON line with trace IDs: {worst:.2f}x python-json-logger at worst ({verdict} <= {TARGET}x)")
    return 0 if worst <= TARGET else 1


if __name__ == "__main__":
    raise SystemExit(main())
