"""Properties of flapping protection over arbitrary sequences of raw check results."""

from __future__ import annotations

import asyncio

from hypothesis import given, settings
from hypothesis import strategies as st

from otelres.config import Config
from otelres.health import HealthChecker, HealthStatus, health_check

RAW = st.lists(st.sampled_from(list(HealthStatus)), min_size=1, max_size=30)


def _reported(raw: list[HealthStatus], failures: int, successes: int) -> list[HealthStatus]:
    answers = iter(raw)

    @health_check("flap", register=False)
    async def flap() -> HealthStatus:
        return next(answers)

    checker = HealthChecker(
        [flap], config=Config(), failures_before_red=failures, successes_before_green=successes
    )

    async def drive() -> list[HealthStatus]:
        return [(await checker.run_check("flap")).status for _ in raw]

    return asyncio.run(drive())


@settings(max_examples=60, deadline=None)
@given(raw=RAW)
def test_without_protection_the_raw_status_is_reported(raw: list[HealthStatus]) -> None:
    """With both thresholds at 1, every raw status is reported unchanged."""
    assert _reported(raw, 1, 1) == raw


@settings(max_examples=60, deadline=None)
@given(raw=RAW, failures=st.integers(1, 4), successes=st.integers(1, 4))
def test_red_needs_a_run_of_failures_and_recovery_a_run_of_successes(
    raw: list[HealthStatus], failures: int, successes: int
) -> None:
    """RED starts only at the first result or after `failures` RED results in a row, and ends only after `successes` good ones."""
    reported = _reported(raw, failures, successes)
    for i, status in enumerate(reported):
        previous = reported[i - 1] if i else None
        if status is HealthStatus.RED and previous is not HealthStatus.RED and i > 0:
            window = raw[max(0, i - failures + 1) : i + 1]
            assert len(window) == failures
            assert all(s is HealthStatus.RED for s in window)
        if previous is HealthStatus.RED and status is not HealthStatus.RED:
            window = raw[max(0, i - successes + 1) : i + 1]
            assert len(window) == successes
            assert all(s is not HealthStatus.RED for s in window)
            assert status is raw[i]
        if status is not HealthStatus.RED and raw[i] is not HealthStatus.RED:
            assert status is raw[i]
