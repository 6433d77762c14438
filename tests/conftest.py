"""Shared fixtures: in-memory telemetry, a fake clock, and reset global state between tests."""

from __future__ import annotations

import importlib
import os
import shutil
import sys
from collections.abc import Iterator
from types import ModuleType

import pytest

from otelres import _otel, config
from otelres.testing import FakeClock, TelemetryCapture, capture_telemetry

IN_CI = os.environ.get("CI", "").lower() == "true"


@pytest.fixture(autouse=True)
def _reset_global_state() -> Iterator[None]:
    """Every test starts with default configuration, span mode and export status."""
    config.set_current(config.Config())
    _otel.set_span_mode("events")
    yield
    config.set_current(None)
    _otel.set_span_mode("events")
    telemetry = sys.modules.get("otelres.telemetry")
    if telemetry is not None:
        telemetry._status = telemetry.ExportStatus()


@pytest.fixture(name="telemetry")
def _telemetry() -> TelemetryCapture:
    """Spans and metrics of the global providers, recorded in memory (spans cleared per test)."""
    return capture_telemetry()


@pytest.fixture(name="clock")
def _clock() -> FakeClock:
    return FakeClock()


def require_binary(name: str) -> str:
    """The path of executable *name*; a failure under CI=true, a skip on a developer machine.

    `make test` installs every binary the integration tests need, so in CI a missing one
    means the install step is broken and must not pass silently.
    """
    path = shutil.which(name) or (f"/usr/sbin/{name}" if os.path.exists(f"/usr/sbin/{name}") else None)
    if path is None:
        if IN_CI:
            pytest.fail(f"{name} is not installed; `make test` should have installed it")
        pytest.skip(f"{name} is not installed (run `make test` to install it)")
    return path


def require_module(name: str) -> ModuleType:
    """Import *name*; a failure under CI=true, a skip on a developer machine (also at module level).

    `make test` installs every package the tests need, so in CI a missing one means the
    install step is broken and must not pass silently.
    """
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        if IN_CI:
            pytest.fail(f"{name} cannot be imported ({exc}); `make test` should have installed it")
        pytest.skip(f"{name} is not installed (run `make test` to install it)", allow_module_level=True)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
