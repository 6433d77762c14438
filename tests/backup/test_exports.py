"""The public face of otelres.backup: sorted exports, and a cheap import."""

from __future__ import annotations

import subprocess
import sys

import otelres.backup


def test_all_is_sorted_and_every_name_resolves() -> None:
    """__all__ is sorted and each name in it resolves to an object."""
    assert otelres.backup.__all__ == sorted(otelres.backup.__all__)
    for name in otelres.backup.__all__:
        assert getattr(otelres.backup, name) is not None


def test_import_is_cheap() -> None:
    """`import otelres.backup` loads none of its private modules, sqlite3, zstandard or the SDK."""
    code = (
        "import sys, otelres.backup; "
        "bad = [m for m in sys.modules if m.startswith(('otelres.backup._', 'sqlite3', "
        "'zstandard', 'opentelemetry.sdk'))]; print(bad)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
