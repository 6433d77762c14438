"""Resolving ``[health_checks] checks`` and ``[health_checks.custom]`` into checks."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from otelres.config import ConfigError, config_from_dict
from otelres.health import HealthChecker, HealthStatus, health_check

CUSTOM_CHECKS = """
from otelres.health import HealthCheck, HealthResult, HealthStatus

def risk_check():
    return HealthResult.yellow("exposure near limit", exposure={"value": 0.93, "unit": "1"})

async def live_check():
    return HealthStatus.GREEN

class Backtest(HealthCheck):
    name = "backtest_engine"
    def check(self):
        return HealthResult.green("engine loaded")

backtest_instance = Backtest()
not_a_check = 42
"""


def _config(health: dict[str, object], source: str = "config.toml"):  # type: ignore[no-untyped-def]
    return config_from_dict({"health_checks": health}, source=source)


async def test_seed_slots_map_to_custom_import_paths(check_module: Callable[[str], str]) -> None:
    """The seed's named checks resolve to functions, async functions and check objects by import path."""
    module = check_module(CUSTOM_CHECKS)
    config = _config(
        {
            "checks": ["backtest", "risk", "live", "circuit_breakers"],
            "custom": {
                "backtest": f"{module}:backtest_instance",
                "risk": f"{module}:risk_check",
                "live": f"{module}:live_check",
            },
        }
    )
    checker = HealthChecker(config=config)
    assert [c.name for c in checker.checks] == ["backtest", "risk", "live", "circuit_breakers"]
    results = await checker.run_all_checks()
    assert results["backtest"].message == "engine loaded"
    assert results["risk"].status is HealthStatus.YELLOW
    assert results["live"].status is HealthStatus.GREEN
    assert checker.get_overall_status(results) is HealthStatus.YELLOW


async def test_a_class_path_is_instantiated(check_module: Callable[[str], str]) -> None:
    """An import path naming a HealthCheck subclass gets an instance, published under the slot name."""
    module = check_module(CUSTOM_CHECKS)
    checker = HealthChecker(config=_config({"checks": ["backtest"], "custom": {"backtest": f"{module}:Backtest"}}))
    assert (await checker.run_check("backtest")).message == "engine loaded"


def test_an_unknown_check_name_is_a_config_error_naming_the_key() -> None:
    """A name that is neither built in, registered nor custom raises ConfigError naming file, key and name."""
    with pytest.raises(ConfigError) as info:
        HealthChecker(config=_config({"checks": ["circuit_breakers", "portfolio"]}))
    (problem,) = info.value.problems
    assert problem.startswith("config.toml: health_checks.checks[1]: unknown health check 'portfolio'")
    assert "[health_checks.custom]" in problem


def test_a_name_listed_twice_is_a_config_error_naming_both_keys() -> None:
    """A check listed twice in [health_checks] checks is a ConfigError naming both positions,
    not a traceback."""
    with pytest.raises(ConfigError) as info:
        HealthChecker(config=_config({"checks": ["circuit_breakers", "telemetry", "circuit_breakers"]}))
    assert info.value.problems == [
        "config.toml: health_checks.checks[2]: 'circuit_breakers' is already listed as "
        "health_checks.checks[0]"
    ]


@pytest.mark.parametrize(
    ("path", "fragment"),
    [
        ("no_colon_here", "expected 'package.module:attribute'"),
        ("otelres_no_such_module_xyz:check", "cannot import module 'otelres_no_such_module_xyz'"),
        ("{module}:missing", "has no attribute 'missing'"),
        ("{module}:not_a_check", "is not a health check"),
    ],
)
def test_an_unresolvable_import_path_is_a_config_error(
    check_module: Callable[[str], str], path: str, fragment: str
) -> None:
    """A custom import path that does not resolve raises ConfigError naming health_checks.custom.<name>."""
    module = check_module(CUSTOM_CHECKS)
    config = _config({"checks": ["risk"], "custom": {"risk": path.format(module=module)}})
    with pytest.raises(ConfigError) as info:
        HealthChecker(config=config)
    (problem,) = info.value.problems
    assert problem.startswith("config.toml: health_checks.custom.risk: ")
    assert fragment in problem


@pytest.mark.parametrize(
    ("source", "fragment"),
    [
        ('raise RuntimeError("DB_URL is not set")\n', "failed: RuntimeError: DB_URL is not set"),
        ("def broken(:\n", "failed: SyntaxError: "),
        (
            "from otelres.health import HealthCheck\n"
            "class risk_check(HealthCheck):\n"
            "    def __init__(self):\n"
            "        raise RuntimeError('no DB_URL')\n",
            "creating the check",
        ),
    ],
)
def test_a_module_that_fails_to_import_is_a_config_error(
    check_module: Callable[[str], str], source: str, fragment: str
) -> None:
    """A custom check module that raises or does not compile while importing, or a check class
    whose constructor raises, is a ConfigError naming the key and the error, not a traceback."""
    module = check_module(source)
    config = _config({"checks": ["risk"], "custom": {"risk": f"{module}:risk_check"}})
    with pytest.raises(ConfigError) as info:
        HealthChecker(config=config)
    (problem,) = info.value.problems
    assert problem.startswith("config.toml: health_checks.custom.risk: ")
    assert fragment in problem


def test_every_bad_name_is_reported_at_once(check_module: Callable[[str], str]) -> None:
    """Several bad entries produce one ConfigError listing all of them."""
    config = _config({"checks": ["nope", "risk", "exchange"], "custom": {"risk": "x.y:z"}})
    with pytest.raises(ConfigError) as info:
        HealthChecker(config=config)
    text = str(info.value)
    assert "health_checks.custom.risk" in text
    assert "health_checks.checks[0]: unknown health check 'nope'" in text
    assert "health_checks.checks[2]: the 'exchange' check needs health_checks.exchanges" in text


def test_registered_checks_fill_slots() -> None:
    """A slot name can be a check registered with @health_check."""

    @health_check("portfolio")
    def portfolio() -> HealthStatus:
        return HealthStatus.GREEN

    checker = HealthChecker(config=_config({"checks": ["portfolio"]}))
    assert [c.name for c in checker.checks] == ["portfolio"]


def test_builtins_are_configured_from_the_sections() -> None:
    """Built-in checks take their thresholds from [health_checks] and [backup]."""
    config = config_from_dict(
        {
            "health_checks": {
                "checks": ["rate_limiters", "exchange", "backup", "disk_space", "telemetry"],
                "limiter_max_wait_ratio": 0.2,
                "exchanges": ["kraken", "binance"],
                "exchange_latency_warning_seconds": 0.5,
            },
            "backup": {"interval_hours": 6, "backup_path": "/var/backups/bot"},
        }
    )
    checks = {c.name: c for c in HealthChecker(config=config).checks}
    assert checks["rate_limiters"].max_wait_ratio == 0.2  # type: ignore[attr-defined]
    assert checks["exchange"].exchanges == ["kraken", "binance"]  # type: ignore[attr-defined]
    assert checks["exchange"].latency_warning == 0.5  # type: ignore[attr-defined]
    assert checks["backup"].interval_hours == 6  # type: ignore[attr-defined]
    assert checks["disk_space"].path == "/var/backups/bot"  # type: ignore[attr-defined]


def test_bad_threshold_values_are_config_errors() -> None:
    """Out-of-range [health_checks] values are reported by the config loader with their key."""
    with pytest.raises(ConfigError, match=r"health_checks\.limiter_max_wait_ratio: expected a number"):
        config_from_dict({"health_checks": {"limiter_max_wait_ratio": 2}})


def test_the_shipped_example_config_names_only_real_checks() -> None:
    """The repository's config.toml lists built-in checks that resolve and run without raising,
    so `make health-check` works out of the box."""
    from pathlib import Path

    from otelres.config import load_config

    config = load_config(Path(__file__).resolve().parents[2] / "config.toml")
    checker = HealthChecker(config=config)
    assert [c.name for c in checker.checks] == list(config.health_checks.checks)
    report = checker.run_sync()
    assert {n: r.error for n, r in report.results.items()} == dict.fromkeys(config.health_checks.checks)
