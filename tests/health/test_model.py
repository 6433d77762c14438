"""HealthStatus, HealthResult and the JSON report schema."""

from __future__ import annotations

import json

import pytest

from otelres.health import SCHEMA_VERSION, HealthReport, HealthResult, HealthStatus


def test_status_values_are_the_seed_strings() -> None:
    """Statuses compare equal to and serialise as "green", "yellow" and "red"."""
    assert [s.value for s in HealthStatus] == ["green", "yellow", "red"]
    assert HealthStatus.RED == "red"
    assert json.dumps({"s": HealthStatus.YELLOW}) == '{"s": "yellow"}'


def test_worst_status_wins() -> None:
    """The worst of several statuses is the overall one; none at all is GREEN."""
    assert HealthStatus.worst([HealthStatus.GREEN, HealthStatus.RED, HealthStatus.YELLOW]) is HealthStatus.RED
    assert HealthStatus.worst([HealthStatus.GREEN, HealthStatus.YELLOW]) is HealthStatus.YELLOW
    assert HealthStatus.worst([]) is HealthStatus.GREEN
    assert [s.level for s in HealthStatus] == [0, 1, 2]


def test_result_to_dict_has_the_seed_fields() -> None:
    """A result serialises its name, status, message, details, duration, timestamp and error."""
    result = HealthResult("db", HealthStatus.YELLOW, "slow", {"latency": {"value": 1.5, "unit": "s"}},
                          duration=0.25, timestamp=1_700_000_000.5, error=None)
    assert result.to_dict() == {
        "name": "db",
        "status": "yellow",
        "message": "slow",
        "details": {"latency": {"value": 1.5, "unit": "s"}},
        "duration_seconds": 0.25,
        "timestamp": "2023-11-14T22:13:20.500Z",
        "error": None,
    }


def test_report_schema_round_trips() -> None:
    """A report's JSON carries schema_version, overall_status, timestamp and checks, and parses back."""
    results = {
        "a": HealthResult.green(name="a"),
        "b": HealthResult.red("down", name="b", error="ConnectionError: refused"),
    }
    report = HealthReport.of(results, duration=0.5)
    data = json.loads(report.to_json())
    assert data["schema_version"] == SCHEMA_VERSION == 1
    assert data["overall_status"] == "red"
    assert set(data) == {"schema_version", "overall_status", "timestamp", "duration_seconds", "checks"}
    assert data["checks"]["b"]["error"] == "ConnectionError: refused"
    again = HealthReport.from_dict(data)
    assert again.overall is HealthStatus.RED
    assert again.results["b"].message == "down"
    assert again.exit_status == 2


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        ({"overall_status": "green"}, "no 'checks'"),
        ({"overall_status": "blue", "checks": {}}, "invalid overall_status"),
        ({"overall_status": "green", "checks": {"x": {"status": "purple"}}}, "checks.x"),
        ({"schema_version": 99, "overall_status": "green", "checks": {}}, "schema_version"),
    ],
)
def test_malformed_reports_are_refused_with_the_field_named(data: dict[str, object], fragment: str) -> None:
    """Parsing a report that is not one raises ValueError naming what is wrong."""
    with pytest.raises(ValueError, match=fragment):
        HealthReport.from_dict(data)
