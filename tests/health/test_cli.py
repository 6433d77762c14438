"""``otelres health`` and ``otelres serve``: output, exit statuses and errors."""

from __future__ import annotations

import io
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from otelres._cli import main
from otelres.config import Config
from otelres.health import HealthChecker, HealthReport, HealthResult, HealthStatus, health_check, serve
from otelres.health._cli import render_table
from tests.conftest import free_port

CHECKS = """
import asyncio
import time
from otelres.health import HealthResult, HealthStatus

def green():
    return HealthResult.green("all good")

def yellow():
    return HealthResult.yellow("getting slow")

def red():
    return HealthResult.red("exchange down")

def hang():
    time.sleep(30)
    return HealthStatus.GREEN

async def stubborn():
    while True:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            pass

async def threaded():
    await asyncio.to_thread(time.sleep, 30)
    return HealthStatus.GREEN

async def loopy():
    import os
    with open(os.environ["LOOPS_FILE"], "a") as out:
        out.write(f"{id(asyncio.get_running_loop())}\\n")
    return HealthStatus.GREEN
"""

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(name="project")
def _project(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, check_module: Callable[[str], str]
) -> Callable[..., Path]:
    """A project directory (the cwd) whose config.toml lists the given custom checks."""
    module = check_module(CHECKS)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("OTELRES_CONFIG", raising=False)

    def write(*names: str, extra: str = "") -> Path:
        custom = "\n".join(f'{n} = "{module}:{n.rstrip("0123456789")}"' for n in names)
        listed = ", ".join(f'"{n}"' for n in names)
        path = tmp_path / "config.toml"
        path.write_text(f"[health_checks]\nchecks = [{listed}]\n{extra}\n[health_checks.custom]\n{custom}\n")
        return path

    return write


@pytest.mark.parametrize(
    ("checks", "status"),
    [(("green",), 0), (("green", "yellow"), 1), (("yellow", "red", "green"), 2)],
)
def test_exit_status_follows_the_overall_status(
    project: Callable[..., Path], capsys: pytest.CaptureFixture[str], checks: tuple[str, ...], status: int
) -> None:
    """Exit status is 0 for GREEN, 1 for YELLOW and 2 for RED."""
    project(*checks)
    assert main(["health"]) == status
    out = capsys.readouterr().out
    assert out.splitlines()[0].split() == ["STATUS", "CHECK", "TIME", "MESSAGE"]
    assert f"overall: {['GREEN', 'YELLOW', 'RED'][status]}" in out


def test_json_output_follows_the_schema(project: Callable[..., Path], capsys: pytest.CaptureFixture[str]) -> None:
    """--json prints the versioned report schema with one entry per check."""
    project("green", "yellow")
    assert main(["health", "--json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["schema_version"] == 1
    assert data["overall_status"] == "yellow"
    assert set(data["checks"]) == {"green", "yellow"}
    entry = data["checks"]["yellow"]
    assert set(entry) == {"name", "status", "message", "details", "duration_seconds", "timestamp", "error"}
    assert (entry["status"], entry["message"]) == ("yellow", "getting slow")


def test_piped_output_is_plain(project: Callable[..., Path], capsys: pytest.CaptureFixture[str]) -> None:
    """Output to a pipe has words, no symbols and no escape codes."""
    project("green", "red")
    main(["health"])
    out = capsys.readouterr().out
    assert "\x1b[" not in out
    assert "✖" not in out
    assert "RED     red" in out


class _Terminal(io.StringIO):
    encoding = "utf-8"

    def isatty(self) -> bool:
        return True


def _report() -> HealthReport:
    return HealthReport.of({"a": HealthResult.green(name="a"), "b": HealthResult.red("down", name="b")})


def test_terminal_output_has_symbols_and_colour(monkeypatch: pytest.MonkeyPatch) -> None:
    """On a terminal the table shows symbols in colour."""
    monkeypatch.delenv("NO_COLOR", raising=False)
    table = render_table(_report(), _Terminal())
    assert "\x1b[31m✖ RED" in table
    assert "\x1b[32m✔ GREEN" in table


def test_no_color_keeps_symbols_but_drops_colour(monkeypatch: pytest.MonkeyPatch) -> None:
    """NO_COLOR removes the escape codes on a terminal."""
    monkeypatch.setenv("NO_COLOR", "1")
    table = render_table(_report(), _Terminal())
    assert "\x1b[" not in table
    assert "✖ RED" in table


def test_check_and_tag_select(project: Callable[..., Path], capsys: pytest.CaptureFixture[str]) -> None:
    """--check runs only the named checks; an unknown one is a usage error (3) naming it."""
    project("green", "red")
    assert main(["health", "--check", "green", "--json"]) == 0
    assert list(json.loads(capsys.readouterr().out)["checks"]) == ["green"]
    assert main(["health", "--check", "nope"]) == 3
    assert "unknown health check 'nope'" in capsys.readouterr().err


def test_timeout_cuts_a_hung_check(project: Callable[..., Path], capsys: pytest.CaptureFixture[str]) -> None:
    """--timeout turns a hung check RED after that many seconds and the command returns."""
    project("hang", "green")
    started = time.monotonic()
    assert main(["health", "--timeout", "0.2", "--json"]) == 2
    assert time.monotonic() - started < 2
    data = json.loads(capsys.readouterr().out)
    assert data["checks"]["hang"]["message"] == "timed out after 0.2 s"


@pytest.mark.parametrize(
    ("config", "fragment"),
    [
        ("[health_checks]\ntimeout_seconds = -1\n", "health_checks.timeout_seconds: expected a number > 0"),
        ("[health_checks]\nchecks = ['portfolio']\n", "health_checks.checks[0]: unknown health check 'portfolio'"),
        ("[health_checks]\nchecks = ['risk']\n[health_checks.custom]\nrisk = 'nowhere_pkg:risk'\n",
         "health_checks.custom.risk: cannot import module 'nowhere_pkg'"),
        ("[health_checks\n", "not valid TOML"),
    ],
)
def test_bad_configuration_exits_3_naming_the_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], config: str, fragment: str
) -> None:
    """An invalid configuration exits with status 3 and names the file and key."""
    path = tmp_path / "bad.toml"
    path.write_text(config)
    assert main(["health", "--config", str(path)]) == 3
    err = capsys.readouterr().err
    assert fragment in err
    assert str(path) in err


def test_usage_errors_exit_3(capsys: pytest.CaptureFixture[str]) -> None:
    """Bad arguments exit with status 3, distinct from RED."""
    with pytest.raises(SystemExit) as info:
        main(["health", "--timeout", "-1"])
    assert info.value.code == 3
    assert "--timeout" in capsys.readouterr().err
    assert main(["health", "--config", "/nonexistent/otelres.toml"]) == 3


def test_unknown_arguments_exit_3(capsys: pytest.CaptureFixture[str]) -> None:
    """An option `otelres health` does not know exits 3 with its usage, never 2 (which means RED)."""
    with pytest.raises(SystemExit) as info:
        main(["health", "--jsn"])
    assert info.value.code == 3
    err = capsys.readouterr().err
    assert "usage: otelres health" in err
    assert "unrecognized arguments: --jsn" in err


def test_a_tag_no_check_carries_exits_3(project: Callable[..., Path], capsys: pytest.CaptureFixture[str]) -> None:
    """--tag with a tag no check has (a typo) is a usage error, not an empty GREEN report."""
    project("green")
    assert main(["health", "--tag", "readines"]) == 3
    err = capsys.readouterr().err
    assert "no health check has the tag 'readines'" in err


def test_url_asks_a_running_service(capsys: pytest.CaptureFixture[str]) -> None:
    """--url reads a service's /health, including a 503 RED report, and exits by its status; a refused name is 3."""

    @health_check("remote_db", register=False)
    def remote_db() -> HealthResult:
        return HealthResult.red("replica lag 40 s")

    @health_check("remote_api", register=False)
    def remote_api() -> HealthStatus:
        return HealthStatus.GREEN

    with serve(HealthChecker([remote_db, remote_api], config=Config()), port=0, background=True) as server:
        assert main(["health", "--url", server.url]) == 2
        out = capsys.readouterr().out
        assert "replica lag 40 s" in out
        assert main(["health", "--url", server.url + "/health", "--check", "remote_api", "--json"]) == 0
        assert list(json.loads(capsys.readouterr().out)["checks"]) == ["remote_api"]
        assert main(["health", "--url", server.url, "--check", "nope"]) == 3
        assert "unknown health check 'nope'" in capsys.readouterr().err


def test_an_unreachable_url_is_red(capsys: pytest.CaptureFixture[str]) -> None:
    """A service that cannot be reached counts as RED, with the reason on stderr."""
    assert main(["health", "--url", f"http://127.0.0.1:{free_port()}", "--timeout", "2"]) == 2
    assert "cannot reach" in capsys.readouterr().err


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.pop("OTELRES_CONFIG", None)
    return env


def test_the_real_command_in_a_project(project: Callable[..., Path], tmp_path: Path) -> None:
    """`python -m otelres health --json` imports the project's checks from the cwd and exits 1 for YELLOW."""
    project("green", "yellow")
    env = _env()
    done = subprocess.run(
        [sys.executable, "-m", "otelres", "health", "--json"], cwd=tmp_path, env=env,
        capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 1, done.stderr
    assert json.loads(done.stdout)["overall_status"] == "yellow"


def test_watch_repeats_until_interrupted(project: Callable[..., Path], tmp_path: Path) -> None:
    """--watch prints a report per interval (one JSON line each) and exits with the last status on Ctrl-C."""
    project("red")
    env = _env()
    proc = subprocess.Popen(
        [sys.executable, "-m", "otelres", "health", "--json", "--watch", "0.1"], cwd=tmp_path, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline(), proc.stdout.readline()]
        proc.send_signal(signal.SIGINT)
        status = proc.wait(timeout=10)
    finally:
        proc.kill()
        proc.wait()
    assert [json.loads(line)["overall_status"] for line in lines] == ["red", "red"]
    assert status == 2


@pytest.fixture(name="serve_command")
def _serve_command(tmp_path: Path) -> Iterator[Callable[..., tuple[subprocess.Popen[str], int, str]]]:
    """Start `otelres serve` in the project directory on a free port: (process, port, first
    stderr line). Every process started is killed at the end of the test."""
    started: list[subprocess.Popen[str]] = []

    def start(env: dict[str, str] | None = None) -> tuple[subprocess.Popen[str], int, str]:
        port = free_port()
        proc = subprocess.Popen(
            [sys.executable, "-m", "otelres", "serve", "--port", str(port)], cwd=tmp_path,
            env=env or _env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        started.append(proc)
        assert proc.stderr is not None
        return proc, port, proc.stderr.readline()

    yield start
    for proc in started:
        proc.kill()
        proc.wait()


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM])
def test_serve_command_answers_probes(
    project: Callable[..., Path], serve_command: Callable[..., tuple[subprocess.Popen[str], int, str]],
    stop: signal.Signals,
) -> None:
    """`otelres serve` serves /readyz and the status page on the configured port and exits 0
    on Ctrl-C and on SIGTERM (how Kubernetes stops a pod)."""
    project("green")
    proc, port, first = serve_command()
    assert "serving health probes on http://127.0.0.1:" in first
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz?verbose", timeout=10) as response:
        body = response.read().decode()
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/status", timeout=10) as response:
        status_page = json.loads(response.read())
    proc.send_signal(stop)
    status = proc.wait(timeout=10)
    assert "[+]green ok" in body
    assert [c["name"] for c in status_page["health"]["checks"]] == ["green"]  # the status page at /
    assert status == 0


def test_serve_sets_up_configured_exporters_and_serves_metrics(
    project: Callable[..., Path], serve_command: Callable[..., tuple[subprocess.Popen[str], int, str]]
) -> None:
    """With [telemetry] metrics_exporter = ["prometheus"], `otelres serve` exports the health gauges on /metrics."""
    config = project("green", "yellow")
    config.write_text(
        config.read_text() + f'\n[telemetry]\nmetrics_exporter = ["prometheus"]\nprometheus_port = {free_port()}\n'
    )
    proc, port, first = serve_command()
    assert "/metrics" in first
    body = ""
    deadline = time.monotonic() + 10
    while 'health_check_name="overall"' not in body and time.monotonic() < deadline:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
            body = response.read().decode()
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    status = proc.wait(timeout=10)
    assert re.search(r'otelres_health_status\{health_check_name="yellow"[^}]*\} 1\.0', body)
    assert re.search(r'otelres_health_status\{health_check_name="overall"[^}]*\} 1\.0', body)
    assert status == 0


def test_python_m_otelres_health_is_the_health_command(project: Callable[..., Path], tmp_path: Path) -> None:
    """`python -m otelres.health` (the seed's way to run its checker) behaves like `otelres health`."""
    project("red")
    done = subprocess.run(
        [sys.executable, "-m", "otelres.health", "--json"], cwd=tmp_path, env=_env(),
        capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 2, done.stderr
    assert json.loads(done.stdout)["checks"]["red"]["message"] == "exchange down"


def test_the_command_exits_promptly_past_hung_checks(project: Callable[..., Path], tmp_path: Path) -> None:
    """A sync check that hangs, an async one that ignores cancellation and one hung in
    asyncio.to_thread are RED at --timeout, and the process exits right after printing."""
    project("green", "hang", "stubborn", "threaded")
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "otelres", "health", "--json", "--timeout", "0.5"], cwd=tmp_path,
        env=_env(), capture_output=True, text=True, timeout=60,
    )
    assert time.perf_counter() - started < 15
    assert done.returncode == 2, done.stderr
    checks = json.loads(done.stdout)["checks"]
    assert {name: entry["message"] for name, entry in checks.items() if name != "green"} == dict.fromkeys(
        ("hang", "stubborn", "threaded"), "timed out after 0.5 s"
    )
    assert "Task was destroyed" not in done.stderr


def test_serve_runs_scheduled_checks_and_probes_on_one_loop(
    project: Callable[..., Path], tmp_path: Path,
    serve_command: Callable[..., tuple[subprocess.Popen[str], int, str]],
) -> None:
    """`otelres serve` runs the scheduled checks and the probes' checks on the same event loop,
    so an async check can keep loop-bound clients between runs."""
    project("loopy")
    loops = tmp_path / "loops.txt"
    proc, port, first = serve_command({**_env(), "LOOPS_FILE": str(loops)})
    assert "serving health probes" in first
    deadline = time.monotonic() + 10
    while not (loops.exists() and loops.read_text()) and time.monotonic() < deadline:
        time.sleep(0.05)
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=10) as response:
        assert response.status == 200
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=10) == 0
    seen = loops.read_text().split()
    assert len(seen) >= 2
    assert len(set(seen)) == 1
