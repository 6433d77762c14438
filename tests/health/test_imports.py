"""The public face of otelres.health: exported names and cheap imports."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import otelres.health

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("opentelemetry.sdk", "ccxt", "redis", "prometheus_client", "aiohttp", "otelres._cli", "otelres.backup")


def _isort_key(name: str) -> tuple[int, str]:
    """Constants, then classes, then functions: the order ruff's RUF022 keeps __all__ in."""
    kind = 0 if name.isupper() else 1 if name[:1].isupper() else 2
    return kind, name


def test_all_is_sorted_and_every_name_resolves() -> None:
    """__all__ is sorted, and each name in it is importable from otelres.health."""
    assert otelres.health.__all__ == sorted(otelres.health.__all__, key=_isort_key)
    for name in otelres.health.__all__:
        assert getattr(otelres.health, name) is not None


def _loaded_after(code: str, cwd: Path) -> list[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("OTELRES_CONFIG", None)
    probe = code + f"\nimport sys, json\nprint(json.dumps(sorted(m for m in sys.modules if m.startswith({HEAVY!r}))))"
    done = subprocess.run([sys.executable, "-c", probe], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=60, check=True)
    return list(json.loads(done.stdout.splitlines()[-1]))


def test_using_the_checker_loads_no_sdk_or_optional_package(tmp_path: Path) -> None:
    """Building and running a HealthChecker imports neither the SDK, ccxt, redis, prometheus_client nor the CLI."""
    code = (
        "import asyncio\n"
        "from otelres.health import HealthChecker, ExchangeCheck, BackupFreshnessCheck, serve\n"
        "asyncio.run(HealthChecker().run_all_checks())\n"
    )
    assert _loaded_after(code, tmp_path) == []


def test_the_health_command_stays_lean(tmp_path: Path) -> None:
    """`otelres health --json` with the default checks imports no SDK, exporter or optional package."""
    code = (
        "import contextlib, io\n"
        "from otelres._cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    main(['health', '--json'])\n"
    )
    assert [m for m in _loaded_after(code, tmp_path) if not m.startswith("otelres.")] == []
