"""``otelres demo`` end to end: a real subprocess, its endpoints, its page in Chromium, its summary.

Set ``OTELRES_SCREENSHOT=docs/status-page.png`` to keep the page's screenshot from the run.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from otelres._demo._config import DemoOptions, demo_config, scaled_scenario
from otelres._demo._display import LiveTable, PlainLines, View, render_table, status_line
from otelres._testing.exchange import BINANCE_CREDENTIALS, KRAKEN_CREDENTIALS
from otelres.config import ConfigError
from otelres.testing import OtlpHttpReceiver
from tests.conftest import free_port, require_module
from tests.demo.conftest import PageWatch

require_module("ccxt")

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class DemoRun:
    """A running ``otelres demo`` subprocess and what it printed."""

    process: subprocess.Popen[str]
    url: str
    summary_path: Path
    lines: list[str] = field(default_factory=list)

    def wait(self, timeout: float = 60.0) -> int:
        return self.process.wait(timeout)

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def summary(self) -> dict[str, Any]:
        return dict(json.loads(self.summary_path.read_text()))

    def outside_contacts(self) -> list[str]:
        """Connections and lookups beyond this machine the demo attempted (refused)."""
        log = self.summary_path.parent / "network.log"
        assert log.exists(), "the network audit hook was not installed in the demo"
        return log.read_text().splitlines()


# Installed in the demo's interpreter: every connection and name lookup that is not for this
# machine is written to OTELRES_NETWORK_LOG and refused.
_AUDIT = """
import os, sys

_log = os.environ["OTELRES_NETWORK_LOG"]
_LOCAL = ("127.0.0.1", "::1", "localhost")


def _audit(event, args):
    if event == "socket.connect":
        address = args[1]
        host = address[0] if isinstance(address, tuple) else None
    elif event == "socket.getaddrinfo":
        host = args[0]
    else:
        return
    if host is None or host in _LOCAL or (isinstance(host, bytes) and host.decode() in _LOCAL):
        return
    with open(_log, "a") as fh:
        fh.write(f"{event} {host!r}\\n")
    raise OSError(f"test: no network beyond this machine ({host!r})")


sys.addaudithook(_audit)
open(_log, "a").close()  # proves the hook is installed
"""


@contextmanager
def start_demo(tmp_path: Path, *args: str) -> Iterator[DemoRun]:
    """Start the demo in a subprocess (plain output, a free port), yield it, and never leak it.

    The subprocess refuses, and records in ``network.log``, any connection beyond 127.0.0.1.
    """
    port = free_port()
    summary = tmp_path / "summary.json"
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    (hooks / "sitecustomize.py").write_text(_AUDIT)
    process = subprocess.Popen(
        [sys.executable, "-m", "otelres", "demo", "--port", str(port), "--plain",
         "--summary-json", str(summary), *args],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={
            **os.environ,
            "PYTHONUNBUFFERED": "1",
            "PYTHONPATH": os.pathsep.join([str(hooks), *filter(None, [os.environ.get("PYTHONPATH")])]),
            "OTELRES_NETWORK_LOG": str(tmp_path / "network.log"),
        },
    )
    run = DemoRun(process, f"http://127.0.0.1:{port}", summary)
    assert process.stdout is not None
    reader = threading.Thread(target=lambda: run.lines.extend(line.rstrip("\n") for line in process.stdout),  # type: ignore[union-attr]
                              daemon=True)
    reader.start()
    try:
        yield run
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
        reader.join(5)


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def wait_until_serving(run: DemoRun, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert run.process.poll() is None, run.output
        try:
            get(run.url + "/livez")
            return
        except OSError:
            time.sleep(0.1)
    pytest.fail(f"the demo did not serve {run.url} in {timeout} s:\n{run.output}")


@pytest.fixture(name="demo")
def _demo(tmp_path: Path) -> Iterator[DemoRun]:
    """``otelres demo --duration 15`` running in a subprocess."""
    with start_demo(tmp_path, "--duration", "15") as run:
        yield run


def test_demo_runs_the_story_serves_endpoints_and_page(demo: DemoRun, page: PageWatch, tmp_path: Path) -> None:
    """The demo serves /health, /metrics and a page that shows breakers opening and health going
    RED, then recovering; it ends on its own with exit 0 and a summary of what happened, contacts
    nothing beyond 127.0.0.1, and no credential appears in anything it prints or serves."""
    wait_until_serving(demo)
    status, body = get(demo.url + "/health")
    assert status in (200, 503)
    assert json.loads(body)["checks"]
    page.page.goto(demo.url + "/")
    page.page.wait_for_selector('[data-breaker="kraken"][data-state="closed"]', timeout=15_000)
    page.page.wait_for_selector('[data-breaker="kraken"][data-state="open"]', timeout=20_000)
    page.page.wait_for_selector('.check[data-check="circuit_breakers"][data-status="red"]', timeout=10_000)
    page.page.wait_for_selector('#overall[data-status="red"]', timeout=10_000)
    status, body = get(demo.url + "/health")
    assert status == 503
    assert json.loads(body)["overall_status"] == "red"
    status, metrics = get(demo.url + "/metrics")
    assert status == 200
    _, api_status = get(demo.url + "/api/status")
    assert b'otelres_breaker_state{breaker_name="kraken",breaker_state="open"' in metrics
    time.sleep(1.5)  # let a few transitions and red results gather in the history
    shot = tmp_path / "status-page.png"
    page.page.screenshot(path=str(shot), full_page=True)
    target = os.environ.get("OTELRES_SCREENSHOT")
    if target:
        shutil.copyfile(shot, ROOT / target)
    page.page.wait_for_selector('[data-breaker="kraken"][data-state="closed"]', timeout=20_000)
    page.page.wait_for_selector('.check[data-check="circuit_breakers"][data-status="green"]', timeout=10_000)
    assert page.errors == []

    assert demo.wait(60) == 0, demo.output
    summary = demo.summary()
    kraken = {(t["from"], t["to"]) for t in summary["breakers"]["kraken"]["transitions"]}
    assert ("closed", "open") in kraken
    assert ("half_open", "closed") in kraken
    assert summary["breakers"]["kraken"]["final_state"] == "closed"
    assert summary["retries"]["attempts"] > 0
    assert summary["retries"]["recovered"] > 0
    assert summary["rejections"]["breaker"] > 0
    assert "circuit_breakers" in summary["health"]["red_seen"]
    assert summary["health"]["final"] == "green"
    assert summary["served"]["/health"] >= 2
    assert summary["served"]["/metrics"] >= 1
    assert summary["served"]["/api/status"] >= 5
    assert demo.outside_contacts() == []
    text = demo.output
    published = "\n".join([text, metrics.decode(), api_status.decode(), json.dumps(summary)])
    for credentials in (KRAKEN_CREDENTIALS, BINANCE_CREDENTIALS):
        for secret in (credentials.api_key, credentials.secret, credentials.password):
            assert secret not in published
    assert "otelres demo finished after" in text
    assert "final health  GREEN" in text
    assert "breaker kraken: closed -> open" in text
    assert "phase: 503 storm" in text


def test_demo_exports_over_otlp(tmp_path: Path) -> None:
    """With --exporter otlp the same telemetry reaches a Collector over the real OTLP/HTTP wire format."""
    with OtlpHttpReceiver() as receiver, start_demo(
        tmp_path, "--duration", "10", "--exporter", "otlp",
        "--otlp-protocol", "http/protobuf", "--otlp-endpoint", receiver.endpoint,
    ) as run:
        assert run.wait(60) == 0, run.output
        receiver.wait_for(lambda r: "otelres.breaker.transitions" in r.metric_names(), timeout=10)
        assert {"otelres.breaker.calls", "otelres.retry.attempts", "otelres.health.status",
                "otelres.ccxt.call.duration"} <= receiver.metric_names()
        assert any(name.startswith("kraken ") for name in receiver.span_names())
        assert any("closed -> open" in str(record.body) for record in receiver.log_records())
        assert receiver.resource_attributes()["service.name"] == "otelres-demo"
    assert "OTLP (http/protobuf)" in run.output
    assert run.outside_contacts() == []


def test_demo_rejects_a_too_short_duration() -> None:
    """--duration below the minimum is a usage error naming the argument."""
    result = subprocess.run(
        [sys.executable, "-m", "otelres", "demo", "--duration", "3"],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 2
    assert "--duration" in result.stderr
    assert "at least 10" in result.stderr


def test_demo_reports_a_broken_config_file(tmp_path: Path) -> None:
    """A --config file with a bad value fails at once with the file and key named."""
    bad = tmp_path / "bad.toml"
    bad.write_text("[resilience]\ncircuit_breaker_threshold = 0\n")
    result = subprocess.run(
        [sys.executable, "-m", "otelres", "demo", "--config", str(bad)],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 2
    assert f"{bad}: resilience.circuit_breaker_threshold" in result.stderr


def test_otlp_endpoint_without_a_scheme_is_refused() -> None:
    """--otlp-endpoint must say http:// or https://; without it the gRPC exporter would silently use TLS."""
    with pytest.raises(ConfigError, match="--otlp-endpoint: expected a URL starting with http://"):
        demo_config(DemoOptions(exporter="otlp", otlp_endpoint="collector:4317"), environ={})


def test_demo_ignores_otel_environment_without_exporter() -> None:
    """Without --exporter otlp, OTEL_* variables cannot switch exporters on (nothing leaves 127.0.0.1)."""
    env = {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_METRICS_EXPORTER": "otlp",
           "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9"}
    config = demo_config(DemoOptions(), environ=env)
    assert config.telemetry.traces_exporter == ("none",)
    assert config.telemetry.metrics_exporter == ("none",)
    assert config.telemetry.otlp_endpoint == ""


def test_short_runs_compress_phases_and_breaker_timeouts() -> None:
    """A shorter run keeps every phase in proportion and shortens the demo breakers' open time."""
    phases = scaled_scenario(20.0)
    assert [p.name for p in phases] == ["healthy", "503 storm", "429 burst", "maintenance", "recovery"]
    assert sum(p.duration for p in phases) == pytest.approx(20.0)
    short = demo_config(DemoOptions(duration=20.0), environ={})
    full = demo_config(DemoOptions(), environ={})
    assert short.resilience.breaker("kraken").timeout_seconds == pytest.approx(
        full.resilience.breaker("kraken").timeout_seconds / 2
    )


def test_table_lines_without_colour_are_plain_text() -> None:
    """Without colour the live table has no escape codes and shows each breaker's state in capitals."""
    snapshot = {
        "breakers": [{"name": "kraken", "state": "half_open", "colour": "yellow", "failure_rate": 0.5,
                      "calls": 10, "failures": 5, "rejected": 2, "transition_count": 2}],
        "limiters": [], "retries": [],
        "health": {"overall": "yellow", "checks": [
            {"name": "circuit_breakers", "status": "yellow", "message": "not closed: kraken (half_open)",
             "history": [{"status": "green"}, {"status": "yellow"}]}]},
    }
    view = View(3.0, 40.0, "503 storm", 2, 5, "http://127.0.0.1:8080", snapshot, [], [(2.5, "phase: 503 storm")])
    lines = render_table(view, colour=False)
    text = "\n".join(lines)
    assert "\x1b" not in text
    assert "HALF-OPEN" in text
    assert "GY" in text
    assert "phase: 503 storm" in text
    coloured = "\n".join(render_table(view, colour=True))
    assert "\x1b[33mHALF-OPEN" in coloured


def test_ctrl_c_stops_the_demo_cleanly(tmp_path: Path) -> None:
    """Ctrl-C ends the demo with status 130 and releases its port at once."""
    with start_demo(tmp_path, "--duration", "30") as run:
        wait_until_serving(run)
        run.process.send_signal(signal.SIGINT)
        assert run.wait(20) == 130, run.output
        with pytest.raises(OSError):
            get(run.url + "/livez")
    assert "Traceback" not in run.output
    assert "WARNING" not in run.output  # the kept-aside log lines are for failures only


def test_a_taken_port_falls_back_to_a_free_one_unless_asked_for(tmp_path: Path) -> None:
    """Without --port a taken configured port gives way to a free one; an explicit --port does not."""
    from otelres._demo._runner import Demo
    from otelres.health import HealthChecker

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = demo_config(DemoOptions(), environ={})
        config = dataclasses.replace(
            config, health_checks=dataclasses.replace(config.health_checks, port=port)
        )
        checker = HealthChecker([], config=config)
        server = Demo(config, DemoOptions(), io.StringIO())._server(checker)
        try:
            assert server.port not in (port, 0)
        finally:
            server.close()
        with pytest.raises(OSError):
            Demo(config, DemoOptions(port=port), io.StringIO())._server(checker)


def test_live_table_redraws_in_place_and_plain_lines_are_throttled() -> None:
    """The live table moves the cursor back over its last frame; plain status lines come at most every period."""
    snapshot: dict[str, Any] = {"breakers": [], "limiters": [], "retries": [], "health": None}
    view = View(1.0, 40.0, "healthy", 1, 5, "http://127.0.0.1:8080", snapshot, [])
    out = io.StringIO()
    table = LiveTable(out, colour=False)
    table.update(view)
    first = out.getvalue()
    table.update(view)
    second = out.getvalue()[len(first):]
    height = len(render_table(view))
    assert "\x1b[?25l\x1b[?7l" in first  # no cursor, no line wrapping while drawing
    assert "\x1b[" + str(height) + "F" not in first
    assert second.startswith("\x1b[" + str(height) + "F")
    table.close()
    assert out.getvalue().endswith("\x1b[?7h\x1b[?25h\n")

    plain = io.StringIO()
    lines = PlainLines(plain, every=60.0)
    lines.update(view)
    lines.update(view)
    lines.event(1.5, "phase: 503 storm")
    assert plain.getvalue().splitlines() == [status_line(view), "[  1.5s] phase: 503 storm"]


def test_missing_packages_are_named_with_the_install_command(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without ccxt the demo stops at once, naming what to install, instead of failing half-way."""
    import importlib.util

    from otelres._demo import _runner

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "ccxt" else real_find_spec(name, *a)
    )
    assert _runner.run(DemoOptions(duration=10.0)) == 1
    err = capsys.readouterr().err
    assert "needs ccxt;" in err
    assert "pip install 'otelres[ccxt,prometheus]' otelres-instrumentation-ccxt" in err
