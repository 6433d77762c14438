"""The health gauges and the duration histogram, read through an in-memory metric reader."""

from __future__ import annotations

import pytest

from otelres.config import Config
from otelres.health import HealthChecker, HealthResult, HealthStatus, health_check
from otelres.health._telemetry import _status_points
from otelres.testing import capture_telemetry


def _checks():  # type: ignore[no-untyped-def]
    state = {"db": HealthStatus.GREEN}

    @health_check("db", register=False)
    def db() -> HealthStatus:
        return state["db"]

    @health_check("exchange", register=False)
    def exchange() -> HealthResult:
        return HealthResult.yellow("slow")

    return state, [db, exchange]


async def test_status_gauge_per_check_and_overall() -> None:
    """otelres.health.status reports 0/1/2 per check (health.check.name) and for "overall"."""
    capture = capture_telemetry(install_global=False)
    state, checks = _checks()
    checker = HealthChecker(checks, config=Config(), meter_provider=capture.meter_provider)
    assert capture.points("otelres.health.status") == []  # nothing before the first run
    await checker.run_all_checks()
    values = {p.attributes["health.check.name"]: p.value for p in capture.points("otelres.health.status")}
    assert values == {"db": 0, "exchange": 1, "overall": 1}
    state["db"] = HealthStatus.RED
    await checker.run_all_checks()
    values = {p.attributes["health.check.name"]: p.value for p in capture.points("otelres.health.status")}
    assert values == {"db": 2, "exchange": 1, "overall": 2}


async def test_gauge_shows_what_the_checker_reports() -> None:
    """The gauge follows the reported (flapping-protected) status, as the CLI and HTTP endpoints do."""
    capture = capture_telemetry(install_global=False)
    state, checks = _checks()
    checker = HealthChecker(checks, config=Config(), failures_before_red=2, meter_provider=capture.meter_provider)
    await checker.run_all_checks()
    state["db"] = HealthStatus.RED
    results = await checker.run_all_checks()
    assert results["db"].status is HealthStatus.GREEN
    assert capture.value("otelres.health.status", **{"health.check.name": "db"}) == 0


async def test_duration_histogram_records_each_run() -> None:
    """otelres.health.check.duration (s) records every check that ran, with its status; cache hits are not recorded."""
    capture = capture_telemetry(install_global=False)
    _, checks = _checks()
    checker = HealthChecker(
        checks, config=Config(), cache_ttl=60, cache_ttl_failing=60, meter_provider=capture.meter_provider
    )
    await checker.run_all_checks()
    await checker.run_all_checks()
    (point,) = capture.points("otelres.health.check.duration", **{"health.check.name": "exchange"})
    assert point.unit == "s"
    assert point.count == 1
    assert point.attributes["health.status"] == "yellow"


@pytest.mark.parametrize("failing_first", [True, False])
async def test_two_checkers_in_one_process_publish_one_overall(failing_first: bool) -> None:
    """With a second checker (say, the probe server's) reporting GREEN, the overall point stays
    the worst of both, whichever checker was made or read first."""
    capture = capture_telemetry(install_global=False)
    state, checks = _checks()
    state["db"] = HealthStatus.RED

    @health_check("heartbeat", register=False)
    def heartbeat() -> HealthStatus:
        return HealthStatus.GREEN

    order = [[checks[0]], [heartbeat]] if failing_first else [[heartbeat], [checks[0]]]
    checkers = [HealthChecker(c, config=Config(), meter_provider=capture.meter_provider) for c in order]
    for checker in checkers:
        await checker.run_all_checks()
    # What the gauge callback yields for the checkers in this order (the SDK keeps the last
    # of points that share attributes), and what an exporter then reads.
    yielded = [(o.attributes["health.check.name"], o.value) for o in _status_points(checkers)]
    assert sorted(yielded) == [("db", 2), ("heartbeat", 0), ("overall", 2)]
    points = capture.points("otelres.health.status")
    assert {p.attributes["health.check.name"]: p.value for p in points} == dict(yielded)
