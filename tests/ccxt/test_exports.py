"""Public names of the local exchange and of the instrumentation package."""

from __future__ import annotations

import subprocess
import sys

import otelres_instrumentation_ccxt

from otelres import testing
from otelres._testing import exchange


def test_the_local_exchange_is_exported_from_otelres_testing() -> None:
    """otelres.testing resolves the exchange's names to the objects of otelres._testing.exchange."""
    for name in ("DEMO_SCENARIO", "ExchangeServer", "Fault", "Phase", "exchange_client"):
        assert name in testing.__all__
        assert getattr(testing, name) is getattr(exchange, name)


def _isort_key(name: str) -> tuple[int, str]:
    """Constants, then classes, then functions, each alphabetically (ruff's RUF022 order)."""
    kind = 0 if name.isupper() else 1 if name[:1].isupper() else 2
    return kind, name


def test_all_lists_are_sorted_and_resolve() -> None:
    """Every name in the __all__ lists exists, and the lists are sorted."""
    for module in (exchange, otelres_instrumentation_ccxt):
        assert list(module.__all__) == sorted(module.__all__, key=_isort_key), module.__name__
        for name in module.__all__:
            assert getattr(module, name) is not None


def test_importing_otelres_testing_does_not_import_ccxt() -> None:
    """`import otelres.testing` stays cheap: ccxt loads only when a client is built."""
    code = ("import sys, otelres.testing, otelres._testing.exchange; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('ccxt', 'aiohttp')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
