"""promtool accepts the Prometheus configuration and rules, and the rules pass their unit tests."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import require_binary
from tests.stack._assets import (
    PROMETHEUS_CONFIG,
    RULE_TESTS_DIR,
    load_yaml,
    rule_files,
    rules,
)


@pytest.fixture(name="promtool")
def _promtool() -> str:
    return require_binary("promtool")


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)


def test_check_config_accepts_the_stack_configuration(promtool: str) -> None:
    """`promtool check config` accepts collector/prometheus/prometheus.yml as shipped."""
    result = run(promtool, "check", "config", str(PROMETHEUS_CONFIG))
    assert result.returncode == 0, result.stdout + result.stderr


def test_check_config_accepts_the_configuration_with_the_rules_it_loads(
    promtool: str, tmp_path: Path
) -> None:
    """The shipped configuration, with rule_files pointing at the repository's rules, checks clean."""
    config = load_yaml(PROMETHEUS_CONFIG)
    config["rule_files"] = [str(path) for path in rule_files()]
    copy = tmp_path / "prometheus.yml"
    copy.write_text(yaml.safe_dump(config), encoding="utf-8")
    result = run(promtool, "check", "config", str(copy))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rule_files())} rule files found" in result.stdout


def test_check_rules_accepts_every_rule_file(promtool: str) -> None:
    """`promtool check rules` accepts every file under collector/prometheus/rules."""
    result = run(promtool, "check", "rules", *map(str, rule_files()))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == len(rule_files())


def test_rule_unit_tests_pass(promtool: str) -> None:
    """`promtool test rules` passes every unit test under collector/prometheus/tests."""
    tests = sorted(RULE_TESTS_DIR.glob("*.yml"))
    result = run(promtool, "test", "rules", *map(str, tests))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == len(tests)


def test_every_alert_has_a_unit_test_that_expects_it_to_fire() -> None:
    """Each alerting rule appears in some promtool test with a non-empty exp_alerts."""
    fired = {
        case["alertname"]
        for path in RULE_TESTS_DIR.glob("*.yml")
        for test in load_yaml(path)["tests"]
        for case in test.get("alert_rule_test", [])
        if case.get("exp_alerts")
    }
    alerts = {rule["alert"] for rule in rules() if "alert" in rule}
    assert alerts, "no alerting rules found"
    assert alerts <= fired, f"alerts without a firing unit test: {sorted(alerts - fired)}"


def test_every_recording_rule_has_a_unit_test() -> None:
    """Each recording rule is evaluated by some promtool promql_expr_test."""
    tested = " ".join(
        case["expr"]
        for path in RULE_TESTS_DIR.glob("*.yml")
        for test in load_yaml(path)["tests"]
        for case in test.get("promql_expr_test", [])
    )
    records = {rule["record"] for rule in rules() if "record" in rule}
    untested = sorted(r for r in records if r not in tested)
    assert not untested, f"recording rules no promtool test evaluates: {untested}"


def test_rules_carry_severity_and_human_annotations() -> None:
    """Every alert has a severity label and summary/description annotations for the router."""
    for rule in rules():
        if "alert" not in rule:
            continue
        assert rule.get("labels", {}).get("severity") in {"critical", "warning"}, rule["alert"]
        assert {"summary", "description"} <= set(rule.get("annotations", {})), rule["alert"]


def test_the_guide_lists_every_alert_with_its_for_and_severity() -> None:
    """docs/OBSERVABILITY_STACK.md's alert table matches the rules (name, `for`, severity)."""
    guide = (PROMETHEUS_CONFIG.parents[2] / "docs" / "OBSERVABILITY_STACK.md").read_text(encoding="utf-8")
    rows = {
        cells[0].strip("` "): cells
        for line in guide.splitlines()
        if line.startswith("| `Otelres")
        for cells in [[cell.strip() for cell in line.strip("|").split("|")]]
    }
    alerts = {rule["alert"]: rule for rule in rules() if "alert" in rule}
    assert set(rows) == set(alerts)
    for name, rule in alerts.items():
        _, _, duration, severity = rows[name]
        expected = rule.get("for", "\N{EN DASH}").replace("m", " m").replace("h", " h")
        assert duration == expected, f"{name}: the guide says {duration}, the rule {rule.get('for')}"
        assert severity == rule["labels"]["severity"], name
