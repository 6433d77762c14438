"""Cold `import otelres` against cold `import opentelemetry.trace, opentelemetry.metrics`.

Target (issue 2): at most 1.3x. Each round starts a fresh interpreter for each contender,
rotating which goes first; the median of the per-round ratios is reported.

Two more lines say what a user pays for the first class they construct:
``from otelres.resilience import CircuitBreaker`` against the same API import, and against
``import pybreaker``, the breaker users would pick instead (it imports no OpenTelemetry at
all, so that ratio is the price of the API plus otelres' breaker). Exits with status 1 when
the target is missed.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time

ROUNDS = 25
TARGET = 1.30
CONTENDERS = {
    "otelres": "import otelres",
    "CircuitBreaker": "from otelres.resilience import CircuitBreaker",
    "opentelemetry api": "import opentelemetry.trace, opentelemetry.metrics",
    "pybreaker": "import pybreaker",
}
RATIOS = (
    ("otelres", "opentelemetry api", TARGET),
    ("CircuitBreaker", "opentelemetry api", None),
    ("CircuitBreaker", "pybreaker", None),
)


def cold(statement: str) -> float:
    """Wall time of a fresh interpreter that runs *statement* and exits."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", statement], check=True)
    return time.perf_counter() - start


def main() -> int:
    for statement in CONTENDERS.values():  # warm the OS file cache, not the interpreter
        cold(statement)
    times: dict[str, list[float]] = {name: [] for name in CONTENDERS}
    ratios: dict[tuple[str, str], list[float]] = {(a, b): [] for a, b, _ in RATIOS}
    names = list(CONTENDERS)
    for round_ in range(ROUNDS):
        shift = round_ % len(names)
        for name in names[shift:] + names[:shift]:
            times[name].append(cold(CONTENDERS[name]))
        for a, b in ratios:
            ratios[(a, b)].append(times[a][-1] / times[b][-1])
    for name, samples in times.items():
        print(f"{name:>18}: median {statistics.median(samples) * 1000:6.1f} ms  ({CONTENDERS[name]})")
    failed = False
    for a, b, target in RATIOS:
        ratio = statistics.median(ratios[(a, b)])
        goal = f" (target <= {target:.2f}x)" if target else ""
        print(f"cold import ratio {a} / {b}: {ratio:.2f}x{goal}")
        failed = failed or (target is not None and ratio > target)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
