"""The scheduled runner in a thread and as a task on the application's loop."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from otelres.config import Config
from otelres.health import HealthChecker, HealthReport, HealthRunner, HealthStatus, health_check


def _counting_checker() -> tuple[HealthChecker, list[int]]:
    calls: list[int] = []

    @health_check("tick", register=False)
    def tick() -> HealthStatus:
        calls.append(1)
        return HealthStatus.GREEN

    return HealthChecker([tick], config=Config()), calls


def test_thread_runner_runs_on_schedule_and_stops_cleanly() -> None:
    """Without a loop the runner runs at once and every interval on a thread, and stop() ends it."""
    checker, calls = _counting_checker()
    reports: list[HealthReport] = []
    runner = HealthRunner(checker, interval=0.05, on_report=reports.append)
    with runner:
        deadline = time.monotonic() + 5
        while len(calls) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert runner.running
    assert not runner.running
    assert len(calls) >= 3
    settled = len(calls)
    time.sleep(0.15)
    assert len(calls) == settled
    assert reports[0].overall is HealthStatus.GREEN
    assert not any(t.name == "otelres-health-runner" for t in threading.enumerate())


def test_stop_does_not_wait_out_the_interval() -> None:
    """Stopping a runner with a long interval returns promptly."""
    checker, calls = _counting_checker()
    runner = HealthRunner(checker, interval=3600).start()
    while not calls:
        time.sleep(0.01)
    started = time.monotonic()
    runner.stop()
    assert time.monotonic() - started < 1.0
    assert not runner.running


async def test_task_runner_uses_the_running_loop() -> None:
    """Started inside a loop, the runner is a task on that loop; aclose() waits for it."""
    checker, _ = _counting_checker()
    async with HealthRunner(checker, interval=0.02) as runner:
        while runner.runs < 2:
            await asyncio.sleep(0.01)
        assert runner._task is not None
    assert not runner.running
    assert runner.runs >= 2


def test_a_failing_report_hook_does_not_stop_the_schedule() -> None:
    """An on_report hook that raises is logged and the runner keeps going."""
    checker, calls = _counting_checker()

    def bad_hook(report: HealthReport) -> None:
        raise RuntimeError("hook bug")

    with HealthRunner(checker, interval=0.02, on_report=bad_hook):
        deadline = time.monotonic() + 5
        while len(calls) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
    assert len(calls) >= 2


def test_interval_comes_from_config_and_must_be_positive() -> None:
    """The default interval is [health_checks] interval_seconds; zero is refused."""
    checker, _ = _counting_checker()
    assert HealthRunner(checker).interval == 60.0
    with pytest.raises(ValueError, match="interval"):
        HealthRunner(checker, interval=0)


def test_stopping_a_thread_runner_does_not_wait_out_a_hung_check() -> None:
    """stop() cancels the run in progress, so a check hung until its 30 s timeout does not
    delay it, and no thread is left running."""
    entered = threading.Event()

    @health_check("wedged", register=False)
    async def wedged() -> HealthStatus:
        entered.set()
        await asyncio.sleep(60)
        return HealthStatus.GREEN

    runner = HealthRunner(HealthChecker([wedged], config=Config(), timeout=30), interval=1).start()
    assert entered.wait(5)
    started = time.perf_counter()
    runner.stop()
    assert time.perf_counter() - started < 2.0
    assert not runner.running
