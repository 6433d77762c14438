"""`import otelres` stays cheap: it loads neither the SDK, exporters, ccxt, redis nor the CLI."""

from __future__ import annotations

import subprocess
import sys

import pytest

FORBIDDEN = (
    "opentelemetry.sdk",
    "opentelemetry.exporter",
    "ccxt",
    "redis",
    "pybreaker",
    "otelres._cli",
    "otelres.telemetry",
    "pythonjsonlogger",
    "prometheus_client",
    "grpc",
    "aiohttp",
)


def imported_modules(statement: str) -> list[str]:
    """Module names loaded by running *statement* in a fresh interpreter (from -X importtime)."""
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", statement],
        capture_output=True, text=True, check=True,
    )
    names = []
    for line in result.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            names.append(line.rsplit("|", 1)[1].strip())
    return names


@pytest.mark.parametrize(
    "statement",
    [
        "import otelres",
        "import otelres.resilience",
        "import otelres.config",
        "import otelres.testing",
        "import otelres.health",
        "import otelres.monitoring",
        "import otelres.backup",
        "import otelres.status_page",
        # the classes users construct first: still no SDK, exporter, pybreaker, ccxt or redis
        "from otelres.resilience import CircuitBreaker, Retry, RateLimiter, Policy, Bulkhead,"
        " Timeout, Fallback, circuit_breaker, policy, get_breaker",
        "from otelres.health import HealthChecker",
        "from otelres.backup import BackupManager",
        "from otelres.testing import FakeClock, capture_telemetry, no_backoff",
        "from otelres.config import load_config; load_config()",
    ],
)
def test_import_loads_no_heavy_or_optional_module(statement: str) -> None:
    """Importing the package, a subpackage or its main classes pulls in none of the heavy or optional modules."""
    loaded = imported_modules(statement)
    assert any(name == "otelres" for name in loaded)
    heavy = sorted({n for n in loaded for f in FORBIDDEN if n == f or n.startswith(f + ".")})
    assert heavy == [], f"{statement} imported {heavy}"


def test_public_names_resolve_lazily() -> None:
    """Every name in otelres.__all__ resolves, and resolving one loads only what it needs."""
    import otelres

    for name in otelres.__all__:
        assert getattr(otelres, name) is not None, name
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        otelres.nope  # noqa: B018


def test_version_matches_package_metadata() -> None:
    """otelres.__version__ is the installed distribution's version."""
    from importlib.metadata import version

    import otelres

    assert otelres.__version__ == version("otelres")
