"""The public face of otelres.monitoring: sorted exports that resolve, and a cheap import."""

from __future__ import annotations

import subprocess
import sys

import otelres.monitoring as monitoring


def test_all_is_sorted_and_every_name_resolves() -> None:
    """__all__ is sorted and each listed name is importable from the package."""
    assert monitoring.__all__ == sorted(monitoring.__all__)
    for name in monitoring.__all__:
        assert getattr(monitoring, name) is not None


def test_importing_the_package_loads_no_sdk_and_no_json_logger() -> None:
    """import otelres.monitoring loads neither the OTel SDK nor python-json-logger nor smtplib."""
    code = (
        "import sys, otelres.monitoring\n"
        "heavy = [m for m in sys.modules if m.startswith(('opentelemetry.sdk', 'pythonjsonlogger',"
        " 'smtplib', 'urllib.request'))]\n"
        "print(heavy)\n"
    )
    assert _fresh_interpreter(code).stdout.strip() == "[]"


def test_get_logger_and_the_facade_load_no_sdk() -> None:
    """The seed's get_logger and get_metrics_collector work on opentelemetry-api alone."""
    code = (
        "import sys\n"
        "from otelres.monitoring import get_logger, get_metrics_collector\n"
        "get_logger('x').info('hello', extra={'a': 1})\n"
        "get_metrics_collector().increment('ops')\n"
        "print([m for m in sys.modules if m.startswith('opentelemetry.sdk')])\n"
    )
    out = _fresh_interpreter(code)
    assert out.stdout.strip() == "[]"
    assert '"message": "hello"' in out.stderr


def _fresh_interpreter(code: str) -> subprocess.CompletedProcess[str]:
    """Run *code* in a new interpreter (nothing imported yet) and return its output."""
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
