"""Cold `otelres health --json` with five trivial checks against a cold OpenTelemetry SDK import.

Target (issue 4): at most 2.0x cold
`python -c "import opentelemetry.sdk.metrics, opentelemetry.sdk.trace"`. The health command
runs in a scratch project whose config.toml lists five trivial checks by import path (three
sync, two async). Each round starts a fresh interpreter for each contender, alternating which
goes first; the median of the per-round ratios is reported, with the worst imports of the
health command listed so a regression names its cause.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROUNDS = 21
TARGET = 2.0
ROOT = Path(__file__).resolve().parent.parent

CHECKS = textwrap.dedent(
    """
    from otelres.health import HealthResult, HealthStatus

    def a():
        return HealthResult.green("ok", value=1)

    def b():
        return HealthStatus.GREEN

    def c():
        return HealthResult.green()

    async def d():
        return HealthStatus.GREEN

    async def e():
        return HealthResult.green("fine")
    """
)
CONFIG = textwrap.dedent(
    """
    [health_checks]
    checks = ["a", "b", "c", "d", "e"]

    [health_checks.custom]
    a = "bench_checks:a"
    b = "bench_checks:b"
    c = "bench_checks:c"
    d = "bench_checks:d"
    e = "bench_checks:e"
    """
)


def cold(argv: list[str], cwd: str, env: dict[str, str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} exited {done.returncode}: {done.stderr.decode()}")
    return elapsed


def slowest_imports(cwd: str, env: dict[str, str], count: int = 8) -> list[tuple[int, str]]:
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "otelres", "health", "--json"],
        cwd=cwd, env=env, capture_output=True, text=True, check=True,
    )
    rows = []
    for line in done.stderr.splitlines():
        parts = line.split("|")
        if len(parts) == 3 and parts[1].strip().isdigit():
            rows.append((int(parts[1]), parts[2].rstrip()))
    return sorted(rows, reverse=True)[:count]


def main() -> None:
    with tempfile.TemporaryDirectory() as project:
        Path(project, "bench_checks.py").write_text(CHECKS)
        Path(project, "config.toml").write_text(CONFIG)
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), project, env.get("PYTHONPATH")]))
        env.pop("OTELRES_CONFIG", None)
        contenders = {
            "otelres health --json": [sys.executable, "-m", "otelres", "health", "--json"],
            "import otel sdk": [
                sys.executable, "-c", "import opentelemetry.sdk.metrics, opentelemetry.sdk.trace"
            ],
        }
        for argv in contenders.values():  # warm the OS file cache, not the interpreter
            cold(argv, project, env)
        times: dict[str, list[float]] = {name: [] for name in contenders}
        ratios = []
        for round_ in range(ROUNDS):
            order = list(contenders.items())
            if round_ % 2:
                order.reverse()
            for name, argv in order:
                times[name].append(cold(argv, project, env))
            ratios.append(times["otelres health --json"][-1] / times["import otel sdk"][-1])
        for name, samples in times.items():
            print(f"{name:>22}: median {statistics.median(samples) * 1000:6.1f} ms")
        ratio = statistics.median(ratios)
        print(f"cold `otelres health --json` / cold SDK import: {ratio:.2f}x (target <= {TARGET:.1f}x)")
        print("largest cumulative imports of the health command (us):")
        for micros, name in slowest_imports(project, env):
            print(f"  {micros:>8}  {name.strip()}")
        if ratio > TARGET:
            raise SystemExit(f"over target: {ratio:.2f}x > {TARGET:.1f}x")


if __name__ == "__main__":
    main()
