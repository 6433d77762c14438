"""The `otelres` command: version, help, usage errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from otelres import __version__
from otelres._cli import main


def test_version_flag_prints_the_version(capsys: pytest.CaptureFixture[str]) -> None:
    """`otelres --version` prints the package version and exits 0."""
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"otelres {__version__}"


def test_no_command_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    """Without a subcommand the help lists the commands."""
    assert main([]) == 0
    assert "config" in capsys.readouterr().out


def test_unknown_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    """An unknown subcommand exits with status 2 and names the bad choice."""
    with pytest.raises(SystemExit) as info:
        main(["frobnicate"])
    assert info.value.code == 2
    assert "frobnicate" in capsys.readouterr().err


def test_python_dash_m_runs_the_same_command() -> None:
    """`python -m otelres --version` works as the installed `otelres` script does."""
    result = subprocess.run(
        [sys.executable, "-m", "otelres", "--version"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0
    assert result.stdout.strip() == f"otelres {__version__}"


def test_config_check_names_the_environment_variables_in_effect(tmp_path: Path) -> None:
    """`otelres config check` shows the env-applied values and lists the OTEL_* names set, never their values."""
    env = {"PATH": "/usr/bin:/bin", "OTEL_SERVICE_NAME": "from-env", "OTEL_EXPORTER_OTLP_HEADERS": "api-key=s3cret"}
    result = subprocess.run(
        [sys.executable, "-m", "otelres", "config", "check"],
        capture_output=True, text=True, check=False, cwd=tmp_path, env=env,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["telemetry"]["service_name"] == "from-env"
    assert "# no configuration file: defaults" in result.stderr
    assert "# environment (wins over the file): OTEL_EXPORTER_OTLP_HEADERS, OTEL_SERVICE_NAME" in result.stderr
    assert "s3cret" not in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["health", "--timeout", "-1"], "argument --timeout: expected a number of seconds > 0, got '-1'"),
        (["health", "--watch", "nan"], "argument --watch: expected a number of seconds > 0, got 'nan'"),
        (["serve", "--port", "99999"], "argument --port: expected a port between 0 and 65535, got '99999'"),
        (["demo", "--duration", "3"], "argument --duration: expected at least 10 seconds to show every phase"),
        (["demo", "--port", "http"], "argument --port: expected a port number, got 'http'"),
    ],
)
def test_bad_numbers_are_usage_errors_naming_the_argument(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Seconds and ports given on the command line are checked the same way by every command."""
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code != 0
    assert message in capsys.readouterr().err
