"""config.toml loading: the example parses, bad input names its key, OTEL_* wins, defaults."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from otelres.config import Config, ConfigError, config_from_dict, load_config

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "config.toml"

SEED_CONFIG = """
[resilience]
circuit_breaker_enabled = true
circuit_breaker_threshold = 5
circuit_breaker_timeout = 60

[resilience.rate_limits]
kraken = 10
binance = 15
coinbasepro = 8

[monitoring]
log_level = "INFO"
structured_logging = true
metrics_enabled = true

[health_checks]
enabled = true
interval_seconds = 60
checks = ["backtest", "exchange", "portfolio", "risk", "live"]

[backup]
enabled = true
interval_hours = 24
retention_days = 30
backup_path = "./backups"
compress = true
"""


def test_example_config_parses_every_section() -> None:
    """The shipped example sets every section, and each value is read as written."""
    config = load_config(EXAMPLE, environ={})
    assert config.source == str(EXAMPLE)
    assert config.telemetry.service_name == "trading-bot"
    assert config.telemetry.resource_attributes == {"team": "quant"}
    assert config.resilience.rate_limit("kraken") == 10
    assert config.resilience.rate_limit("unknown-exchange") == 5
    binance = config.resilience.breaker("binance")
    assert (binance.failure_rate_threshold, binance.window_size, binance.minimum_calls) == (0.5, 50, 20)
    assert binance.timeout_multiplier == 2.0
    assert config.resilience.retry_for("kraken").max_attempts == 4
    assert config.resilience.retry_for("kraken").multiplier == 2.0  # inherited default
    assert config.resilience.retry_for("binance").max_attempts == 3
    assert config.resilience.timeout("kraken") == 15.0
    assert config.resilience.timeout("other") == 10.0
    assert config.resilience.bulkheads["kraken"].max_queue == 16
    assert config.resilience.redis.fail_mode == "open"
    assert config.monitoring.redact_keys == ("account_id",)
    assert config.health_checks.interval_seconds == 60
    assert (config.backup.keep_last, config.backup.keep_daily) == (3, 7)


def test_seed_configuration_is_accepted_verbatim(tmp_path: Path) -> None:
    """The seed system's config.toml loads unchanged, with its values."""
    path = tmp_path / "config.toml"
    path.write_text(SEED_CONFIG)
    config = load_config(path, environ={})
    assert config.resilience.breaker("kraken").threshold == 5
    assert config.resilience.breaker("kraken").timeout_seconds == 60
    assert config.resilience.rate_limit("coinbasepro") == 8
    assert config.resilience.rate_limit("nobody") is None
    assert config.health_checks.checks == ("backtest", "exchange", "portfolio", "risk", "live")
    assert config.backup.backup_path == "./backups"


def test_no_file_means_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without a file anywhere the configuration is all defaults, and that is not an error."""
    monkeypatch.chdir(tmp_path)
    config = load_config(environ={})
    assert config == Config()
    assert config.source is None


def test_config_path_from_environment(tmp_path: Path) -> None:
    """OTELRES_CONFIG names the file when no path is given."""
    path = tmp_path / "elsewhere.toml"
    path.write_text('[telemetry]\nservice_name = "from-env-path"\n')
    config = load_config(environ={"OTELRES_CONFIG": str(path)})
    assert config.telemetry.service_name == "from-env-path"


def test_explicit_missing_file_is_an_error(tmp_path: Path) -> None:
    """A file that was asked for by name but does not exist is reported, not silently skipped."""
    with pytest.raises(ConfigError, match="no such configuration file"):
        load_config(tmp_path / "missing.toml", environ={})
    with pytest.raises(ConfigError, match=r"missing\.toml"):
        load_config(environ={"OTELRES_CONFIG": str(tmp_path / "missing.toml")})


def test_invalid_toml_names_the_file(tmp_path: Path) -> None:
    """A syntax error is reported with the file name."""
    path = tmp_path / "broken.toml"
    path.write_text("[resilience\n")
    with pytest.raises(ConfigError, match=r"broken\.toml: not valid TOML"):
        load_config(path, environ={})


BAD_INPUTS = [
    ({"resilience": {"circuit_breaker_threshold": "five"}}, "resilience.circuit_breaker_threshold", "expected an integer"),
    ({"resilience": {"circuit_breaker_threshold": 0}}, "resilience.circuit_breaker_threshold", ">= 1"),
    ({"resilience": {"rate_limits": {"kraken": -1}}}, "resilience.rate_limits.kraken", "> 0"),
    ({"resilience": {"rate_limits": {"kraken": "fast"}}}, "resilience.rate_limits.kraken", "expected a number"),
    ({"resilience": {"circuit_breaker_treshold": 3}}, "resilience.circuit_breaker_treshold", "did you mean 'circuit_breaker_threshold'"),
    ({"resilience": {"circuit_breaker": {"kraken": {"treshold": 3}}}}, "resilience.circuit_breaker.kraken.treshold", "did you mean 'threshold'"),
    ({"resilience": {"circuit_breaker": {"kraken": {"failure_rate_threshold": 1.5}}}}, "resilience.circuit_breaker.kraken.failure_rate_threshold", "<= 1"),
    ({"resilience": {"retry": {"jitter": "fulll"}}}, "resilience.retry.jitter", "did you mean 'full'"),
    ({"resilience": {"retry": {"kraken": {"max_attempts": 0}}}}, "resilience.retry.kraken.max_attempts", ">= 1"),
    ({"resilience": {"redis": {"fail_mode": "maybe"}}}, "resilience.redis.fail_mode", "one of 'open', 'closed'"),
    ({"telemetry": {"traces_exporter": "zipkin"}}, "telemetry.traces_exporter[0]", "one of 'none', 'console', 'otlp', 'prometheus'"),
    ({"telemetry": {"otlp_protocol": "http"}}, "telemetry.otlp_protocol", "one of 'grpc', 'http/protobuf'"),
    ({"telemetry": {"otlp_endpoint": "collector:4317"}}, "telemetry.otlp_endpoint", "expected a URL starting with http://"),
    ({"telemetry": {"traces_exporter": ["otlp", "prometheus"]}}, "telemetry.traces_exporter", "'prometheus' exports metrics only"),
    ({"telemetry": {"prometheus_port": 70000}}, "telemetry.prometheus_port", "<= 65535"),
    ({"telemetry": {"span_mode": "sometimes"}}, "telemetry.span_mode", "'off', 'events', 'always'"),
    ({"monitoring": {"structured_logging": "yes"}}, "monitoring.structured_logging", "expected true or false"),
    ({"monitoring": {"log_level": "LOUD"}}, "monitoring.log_level", "one of 'DEBUG'"),
    ({"health_checks": {"checks": "risk"}}, "health_checks.checks", None),
    ({"health_checks": {"interval_seconds": -5}}, "health_checks.interval_seconds", "> 0"),
    ({"backup": {"retention_days": 1.5}}, "backup.retention_days", "expected an integer"),
    ({"backup": "yes"}, "backup", "expected a table"),
    ({"resilience": {"redis": {"url": "127.0.0.1:6379"}}}, "resilience.redis.url", "must start with redis://, rediss:// or unix://"),
    ({"resilience": {"redis": {"url": "redis://:pw@host:99999/0"}}}, "resilience.redis.url", "no valid port"),
    ({"resilience": {"redis": {"url": "redis://host:6379/O"}}}, "resilience.redis.url", "database number"),
    ({"backups": {}}, "backups", "unknown section; did you mean 'backup'"),
]


@pytest.mark.parametrize(("data", "key", "expected"), BAD_INPUTS, ids=[k for _, k, _ in BAD_INPUTS])
def test_bad_input_names_the_file_and_key(data: dict[str, object], key: str, expected: str | None) -> None:
    """Each invalid value is an error naming the file, the dotted key and what was expected."""
    if expected is None:  # a single string where a list is expected is accepted as a list of one
        config = config_from_dict(data, source="bot.toml", environ={})
        assert config.health_checks.checks == ("risk",)
        return
    with pytest.raises(ConfigError) as info:
        config_from_dict(data, source="bot.toml", environ={})
    (problem,) = info.value.problems
    assert problem.startswith(f"bot.toml: {key}: ")
    assert expected in problem


def test_every_problem_is_reported_at_once() -> None:
    """Several mistakes give several lines in one error, so one run fixes them all."""
    with pytest.raises(ConfigError) as info:
        config_from_dict(
            {"resilience": {"circuit_breaker_threshold": -1, "rate_limits": {"a": 0}}, "backup": {"compress": 1}},
            environ={},
        )
    assert len(info.value.problems) == 3


def test_otel_environment_wins_over_the_file(tmp_path: Path) -> None:
    """Standard OTEL_* variables override [telemetry], as OpenTelemetry users expect."""
    path = tmp_path / "config.toml"
    path.write_text(
        '[telemetry]\nservice_name = "file"\ntraces_exporter = "console"\notlp_protocol = "grpc"\n'
        'sdk_disabled = false\n[telemetry.resource_attributes]\nteam = "file"\nregion = "eu"\n'
    )
    env = {
        "OTEL_SERVICE_NAME": "env-service",
        "OTEL_TRACES_EXPORTER": "otlp,console",
        "OTEL_METRICS_EXPORTER": "prometheus",
        "OTEL_LOGS_EXPORTER": "otlp",
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_SDK_DISABLED": "true",
        "OTEL_RESOURCE_ATTRIBUTES": "team=env, deployment.environment=prod%20eu,",
        "OTEL_EXPORTER_PROMETHEUS_HOST": "0.0.0.0",
        "OTEL_EXPORTER_PROMETHEUS_PORT": "9100",
        "OTEL_METRIC_EXPORT_INTERVAL": "2500",
    }
    telemetry = load_config(path, environ=env).telemetry
    assert (telemetry.prometheus_host, telemetry.prometheus_port) == ("0.0.0.0", 9100)
    assert telemetry.metric_export_interval_seconds == 2.5  # the variable is in milliseconds
    assert telemetry.service_name == "env-service"
    assert telemetry.traces_exporter == ("otlp", "console")
    assert telemetry.metrics_exporter == ("prometheus",)
    assert telemetry.logs_exporter == ("otlp",)
    assert telemetry.otlp_endpoint == "http://127.0.0.1:4318"
    assert telemetry.otlp_protocol == "http/protobuf"
    assert telemetry.sdk_disabled is True
    assert dict(telemetry.resource_attributes) == {
        "team": "env",
        "region": "eu",
        "deployment.environment": "prod eu",
    }


def test_bad_otel_environment_is_reported() -> None:
    """An invalid OTEL_* value is an error that names the variable."""
    with pytest.raises(ConfigError) as info:
        config_from_dict({}, environ={"OTEL_SDK_DISABLED": "perhaps", "OTEL_TRACES_EXPORTER": "jaeger"})
    text = str(info.value)
    assert "OTEL_SDK_DISABLED" in text
    assert "telemetry.traces_exporter[0]" in text


def test_settings_are_frozen() -> None:
    """Settings objects cannot be changed after loading."""
    config = Config()
    with pytest.raises(AttributeError):
        config.telemetry.service_name = "x"  # type: ignore[misc]
    with pytest.raises(TypeError):
        config.resilience.rate_limits["x"] = 1.0  # type: ignore[index]


def test_config_check_command(tmp_path: Path) -> None:
    """`otelres config check` prints the effective settings, or every error with exit status 2."""
    good = subprocess.run(
        [sys.executable, "-m", "otelres", "config", "check", str(EXAMPLE)],
        capture_output=True, text=True, check=False, env={"PATH": "/usr/bin:/bin"},
    )
    assert good.returncode == 0, good.stderr
    assert '"service_name": "trading-bot"' in good.stdout
    bad = tmp_path / "bad.toml"
    bad.write_text("[resilience]\ncircuit_breaker_treshold = 3\n[backup]\nretention_days = -1\n")
    result = subprocess.run(
        [sys.executable, "-m", "otelres", "config", "check", str(bad)],
        capture_output=True, text=True, check=False,
    )
    assert result.returncode == 2
    assert f"{bad}: resilience.circuit_breaker_treshold: unknown key; did you mean" in result.stderr
    assert f"{bad}: backup.retention_days: expected an integer >= 0, got -1" in result.stderr
    assert result.stdout == ""


def test_printed_settings_never_show_a_redis_password() -> None:
    """to_dict() (what `config check` prints) masks a password written into the Redis URL."""
    config = config_from_dict(
        {"resilience": {"redis": {"url": "redis://bot:hunter2@10.0.0.5:6379/0"}}}, environ={}
    )
    assert config.resilience.redis.url == "redis://bot:hunter2@10.0.0.5:6379/0"  # still usable
    printed = config.to_dict()["resilience"]["redis"]["url"]
    assert printed == "redis://bot:***@10.0.0.5:6379/0"
    assert "hunter2" not in str(config.to_dict())


def test_a_bad_environment_value_is_blamed_on_the_variable(tmp_path: Path) -> None:
    """A bad value from OTEL_* names the variable, not the file, even when the file sets the same key."""
    path = tmp_path / "bot.toml"
    path.write_text('[telemetry]\ntraces_exporter = "console"\n[telemetry.resource_attributes]\nteam = 7\n')
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={"OTEL_TRACES_EXPORTER": "console,jaeger", "OTEL_RESOURCE_ATTRIBUTES": "region=eu"})
    assert sorted(info.value.problems) == [
        f"{path}: telemetry.resource_attributes.team: expected a string, got int 7",
        "environment: OTEL_TRACES_EXPORTER: telemetry.traces_exporter[1]: expected one of "
        "'none', 'console', 'otlp', 'prometheus', got str 'jaeger'",
    ]


def test_a_file_that_is_not_utf8_is_a_config_error(tmp_path: Path) -> None:
    """A binary or mis-encoded file is reported as invalid TOML with its name, not a traceback."""
    path = tmp_path / "latin1.toml"
    path.write_bytes('[telemetry]\nservice_name = "caf\u00e9"\n'.encode("latin-1"))
    with pytest.raises(ConfigError, match=r"latin1\.toml: not valid TOML: not UTF-8 text"):
        load_config(path, environ={})


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "no such configuration file"),
        ("[telemetry\n", "not valid TOML"),
        ("[frobnicate]\nx = 1\n", "frobnicate: unknown section; valid sections: backup, health_checks"),
        ('[resilience.retry.kraken]\nmax_atempts = 2\n', "resilience.retry.kraken.max_atempts: unknown key; did you mean 'max_attempts'?"),
    ],
    ids=["missing", "invalid-toml", "unknown-section", "retry-override-typo"],
)
def test_config_check_reports_broken_files(tmp_path: Path, content: str | None, expected: str) -> None:
    """`otelres config check` on a missing, unparsable or misspelled file exits 2 with one line naming the file."""
    path = tmp_path / "bot.toml"
    if content is not None:
        path.write_text(content)
    result = subprocess.run(
        [sys.executable, "-m", "otelres", "config", "check", str(path)],
        capture_output=True, text=True, check=False,
    )
    assert result.returncode == 2
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"error: {path}: ")
    assert expected in line
    assert result.stdout == ""


def _schema_keys(cls: type, prefix: str = "") -> set[str]:
    """Dotted keys of every setting, with ``*`` for a table the user names (``circuit_breaker.*``)."""
    import dataclasses
    import typing

    keys: set[str] = set()
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if f.name in ("source", "retry_overrides"):  # not keys: the file's path; [resilience.retry.<name>]
            continue
        hint = hints[f.name]
        sections = [a for a in typing.get_args(hint) if dataclasses.is_dataclass(a)]
        if dataclasses.is_dataclass(hint):
            keys |= _schema_keys(hint, f"{prefix}{f.name}.")  # type: ignore[arg-type]
        elif sections:  # Mapping[str, Section] or tuple[Section, ...]: tables the user names or lists
            keys |= _schema_keys(sections[0], f"{prefix}{f.name}.*.")  # type: ignore[arg-type]
        else:
            keys.add(f"{prefix}{f.name}")
    return keys


def _example_keys(text: str) -> set[str]:
    """Dotted keys the example sets or shows commented out (``# key = value``), named tables as ``*``."""
    import re

    named = ("resilience.circuit_breaker.", "resilience.bulkheads.", "resilience.retry.")
    keys: set[str] = set()
    table = ""
    for raw in text.splitlines():
        line = raw.lstrip("# ").rstrip()
        header = re.match(r"^(\[\[?)([a-z_.]+)\]", line)
        if header:
            table = header.group(2)
            for stem in named:
                if table.startswith(stem):
                    table = stem + "*"
            if header.group(1) == "[[":
                table += ".*"
            continue
        key = re.match(r'^"?([a-z_]+)"?\s*=', line)
        if key and table:
            keys.add(f"{table}.{key.group(1)}")
    return keys


def test_example_config_shows_every_key() -> None:
    """Every setting the schema accepts appears in the example config.toml, set or commented out with a value."""
    example = _example_keys(EXAMPLE.read_text())
    tables = {"telemetry.resource_attributes", "resilience.rate_limits", "resilience.timeouts", "health_checks.custom"}
    missing = sorted(k for k in _schema_keys(Config) - example if k not in tables or not any(e.startswith(k + ".") for e in example))
    assert missing == []
