"""Cold `import otelres` against cold `import opentelemetry.trace, opentelemetry.metrics`.

Target (issue 2): at most 1.3x. Each round starts a fresh interpreter for each contender,
alternating which goes first; the median of the per-round ratios is reported.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time

ROUNDS = 25
CONTENDERS = {
    "otelres": "import otelres",
    "opentelemetry api": "import opentelemetry.trace, opentelemetry.metrics",
}


def cold(statement: str) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", statement], check=True)
    return time.perf_counter() - start


def main() -> None:
    for statement in CONTENDERS.values():  # warm the OS file cache, not the interpreter
        cold(statement)
    times: dict[str, list[float]] = {name: [] for name in CONTENDERS}
    ratios = []
    for round_ in range(ROUNDS):
        order = list(CONTENDERS.items())
        if round_ % 2:
            order.reverse()
        for name, statement in order:
            times[name].append(cold(statement))
        ratios.append(times["otelres"][-1] / times["opentelemetry api"][-1])
    for name, samples in times.items():
        print(f"{name:>18}: median {statistics.median(samples) * 1000:6.1f} ms")
    ratio = statistics.median(ratios)
    print(f"cold import ratio otelres / opentelemetry api: {ratio:.2f}x (target <= 1.30x)")


if __name__ == "__main__":
    main()
