"""HealthChecker: concurrency, timeouts, failures, selection, caching, flapping and history."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from otelres.config import Config, HealthSettings
from otelres.health import (
    HealthCheck,
    HealthChecker,
    HealthResult,
    HealthStatus,
    StatusChange,
    health_check,
)
from otelres.testing import FakeClock


def _config(**settings: object) -> Config:
    return Config(health_checks=HealthSettings(**settings))  # type: ignore[arg-type]


def _fixed(name: str, status: HealthStatus, **kwargs: object) -> HealthCheck:
    @health_check(name, register=False, **kwargs)  # type: ignore[arg-type]
    def check() -> HealthResult:
        return HealthResult(name, status, status.value)

    return check


async def test_seed_usage_runs_registered_checks() -> None:
    """HealthChecker() runs the default and @health_check checks; get_overall_status gives the worst."""

    @health_check("portfolio")
    def portfolio() -> HealthResult:
        return HealthResult.yellow("stale prices", age={"value": 90, "unit": "s"})

    checker = HealthChecker()
    results = await checker.run_all_checks()
    assert {"circuit_breakers", "rate_limiters", "telemetry", "portfolio"} <= set(results)
    assert results["portfolio"].status is HealthStatus.YELLOW
    assert results["portfolio"].details == {"age": {"value": 90, "unit": "s"}}
    assert checker.get_overall_status(results) is HealthStatus.YELLOW


async def test_five_one_second_checks_finish_together() -> None:
    """Five checks of 1 s each (three async, two sync) complete in well under 1.5 s together."""

    def make(index: int) -> HealthCheck:
        if index % 2:
            def slow_sync() -> HealthStatus:
                time.sleep(1.0)
                return HealthStatus.GREEN
            return health_check(f"sync{index}", register=False)(slow_sync)

        async def slow_async() -> HealthStatus:
            await asyncio.sleep(1.0)
            return HealthStatus.GREEN
        return health_check(f"async{index}", register=False)(slow_async)

    checker = HealthChecker([make(i) for i in range(5)], config=_config())
    started = time.perf_counter()
    results = await checker.run_all_checks()
    elapsed = time.perf_counter() - started
    assert len(results) == 5
    assert all(r.status is HealthStatus.GREEN for r in results.values())
    assert elapsed < 1.5
    assert all(r.duration >= 0.99 for r in results.values())


async def test_a_hung_check_is_cut_at_its_timeout_without_delaying_others() -> None:
    """A never-returning check (async or sync) is RED "timed out after N s" at its timeout; others finish on time."""
    never = threading.Event()

    @health_check("hung_async", register=False)
    async def hung_async() -> HealthStatus:
        await asyncio.Event().wait()
        return HealthStatus.GREEN

    @health_check("hung_sync", register=False)
    def hung_sync() -> HealthStatus:
        never.wait()
        return HealthStatus.GREEN

    @health_check("quick", register=False)
    async def quick() -> HealthStatus:
        return HealthStatus.GREEN

    checker = HealthChecker([hung_async, hung_sync, quick], config=_config(), timeout=0.3)
    started = time.perf_counter()
    try:
        results = await checker.run_all_checks()
    finally:
        never.set()
    elapsed = time.perf_counter() - started
    assert elapsed < 1.0
    for name in ("hung_async", "hung_sync"):
        assert results[name].status is HealthStatus.RED
        assert results[name].message == "timed out after 0.3 s"
        assert results[name].error == "TimeoutError"
    assert results["quick"].status is HealthStatus.GREEN
    assert results["quick"].duration < 0.2


async def test_a_check_timeout_overrides_the_checker_timeout() -> None:
    """A check's own timeout wins over the checker's."""

    @health_check("slowish", register=False, timeout=0.1)
    async def slowish() -> HealthStatus:
        await asyncio.sleep(2)
        return HealthStatus.GREEN

    results = await HealthChecker([slowish], config=_config(timeout_seconds=10)).run_all_checks()
    assert results["slowish"].message == "timed out after 0.1 s"


async def test_a_still_hung_sync_check_does_not_start_another_thread() -> None:
    """A sync check still stuck from the previous run is reported RED again without a second call."""
    release = threading.Event()
    calls = []

    @health_check("stuck", register=False)
    def stuck() -> HealthStatus:
        calls.append(1)
        release.wait()
        return HealthStatus.GREEN

    checker = HealthChecker([stuck], config=_config(), timeout=0.1)
    try:
        await checker.run_all_checks()
        second = await checker.run_all_checks()
    finally:
        release.set()
    assert len(calls) == 1
    assert second["stuck"].status is HealthStatus.RED
    assert "still running since an earlier run" in second["stuck"].message


async def test_overlapping_runs_of_a_slow_sync_check_are_not_mistaken_for_hung() -> None:
    """Two probes running the same slow (but not timed-out) sync check at once both get its real result."""

    @health_check("slow_db", register=False)
    def slow_db() -> HealthStatus:
        time.sleep(0.2)
        return HealthStatus.GREEN

    checker = HealthChecker([slow_db], config=_config(), timeout=5)
    first, second = await asyncio.gather(checker.run(), checker.run())
    assert first.overall is HealthStatus.GREEN
    assert second.overall is HealthStatus.GREEN


async def test_a_raising_check_is_red_with_the_error() -> None:
    """A check that raises becomes RED carrying the exception, and the others still report."""

    @health_check("broken", register=False)
    def broken() -> HealthResult:
        raise ConnectionError("database refused the connection")

    checker = HealthChecker([broken, _fixed("fine", HealthStatus.GREEN)], config=_config())
    results = await checker.run_all_checks()
    assert results["broken"].status is HealthStatus.RED
    assert results["broken"].error == "ConnectionError: database refused the connection"
    assert "database refused the connection" in results["broken"].message
    assert results["fine"].status is HealthStatus.GREEN


async def test_a_check_that_cancels_itself_is_red_and_the_run_completes() -> None:
    """A check whose own code raises CancelledError is RED; the other checks and the run are unaffected."""

    @health_check("self_cancelling", register=False)
    async def self_cancelling() -> HealthStatus:
        raise asyncio.CancelledError

    checker = HealthChecker([self_cancelling, _fixed("fine", HealthStatus.GREEN)], config=_config())
    results = await checker.run_all_checks()
    assert (results["self_cancelling"].status, results["self_cancelling"].message) == (
        HealthStatus.RED, "check was cancelled"
    )
    assert results["fine"].status is HealthStatus.GREEN


async def test_cancelling_a_run_cancels_it() -> None:
    """Cancelling the task running the checks cancels the checks too and propagates; it is not a RED result."""

    stopped = asyncio.Event()

    @health_check("slow", register=False)
    async def slow() -> HealthStatus:
        try:
            await asyncio.sleep(10)
        finally:
            stopped.set()
        return HealthStatus.GREEN

    task = asyncio.ensure_future(HealthChecker([slow], config=_config()).run_all_checks())
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.wait_for(stopped.wait(), 1.0)  # the check was cancelled along with the run


async def test_a_check_returning_something_else_is_red() -> None:
    """A check that returns neither a HealthResult nor a HealthStatus is RED saying so."""

    @health_check("sloppy", register=False)
    def sloppy() -> object:
        return True

    result = await HealthChecker([sloppy], config=_config()).run_check("sloppy")  # type: ignore[list-item]
    assert result.status is HealthStatus.RED
    assert "expected a HealthResult" in result.message


async def test_sync_checks_run_off_the_event_loop_thread() -> None:
    """A sync check runs in a worker thread, an async one on the loop's thread."""
    seen: dict[str, str] = {}

    @health_check("sync_one", register=False)
    def sync_one() -> HealthStatus:
        seen["sync"] = threading.current_thread().name
        return HealthStatus.GREEN

    @health_check("async_one", register=False)
    async def async_one() -> HealthStatus:
        seen["async"] = threading.current_thread().name
        return HealthStatus.GREEN

    await HealthChecker([sync_one, async_one], config=_config()).run_all_checks()
    assert seen["async"] == threading.current_thread().name
    assert seen["sync"] != seen["async"]


async def test_subclassed_checks_run() -> None:
    """A HealthCheck subclass with a name and a check() method runs like a decorated function."""

    class Queue(HealthCheck):
        name = "queue"
        tags = frozenset({"readiness"})

        def __init__(self, depth: int) -> None:
            self.depth = depth

        def check(self) -> HealthResult:
            if self.depth > 10:
                return HealthResult.yellow("backing up", depth=self.depth)
            return HealthResult.green(depth=self.depth)

    results = await HealthChecker([Queue(50)], config=_config()).run_all_checks()
    assert results["queue"].status is HealthStatus.YELLOW
    assert results["queue"].details == {"depth": 50}


async def test_checks_are_selected_by_name_and_tag() -> None:
    """Names and tags select checks (union of both); unknown names raise, naming the known ones."""
    checker = HealthChecker(
        [
            _fixed("a", HealthStatus.GREEN, tags=["db"]),
            _fixed("b", HealthStatus.RED, tags=["exchange"]),
            _fixed("c", HealthStatus.YELLOW),
        ],
        config=_config(),
    )
    assert list(await checker.run_all_checks(["c"])) == ["c"]
    assert list(await checker.run_all_checks(tags=["exchange"])) == ["b"]
    assert sorted(await checker.run_all_checks(["c"], ["db"])) == ["a", "c"]
    report = await checker.run(exclude=["b"])
    assert sorted(report.results) == ["a", "c"]
    assert report.overall is HealthStatus.YELLOW
    with pytest.raises(ValueError, match=r"unknown health check 'zzz'; known checks: a, b, c"):
        await checker.run_all_checks(["zzz"])


async def test_a_tag_no_check_carries_raises() -> None:
    """Selecting by a tag that no check carries raises naming the tags in use, rather than
    selecting nothing and reporting GREEN."""
    checker = HealthChecker([_fixed("a", HealthStatus.RED, tags=["db"])], config=_config())
    with pytest.raises(ValueError, match=r"no health check has the tag 'dbb'; tags in use: db"):
        await checker.run_all_checks(tags=["dbb"])


async def test_results_are_cached_with_separate_ttls() -> None:
    """GREEN results are reused for cache_ttl seconds, failing ones for cache_ttl_failing seconds."""
    clock = FakeClock()
    calls = {"good": 0, "bad": 0}

    @health_check("good", register=False)
    def good() -> HealthStatus:
        calls["good"] += 1
        return HealthStatus.GREEN

    @health_check("bad", register=False)
    def bad() -> HealthStatus:
        calls["bad"] += 1
        return HealthStatus.RED

    checker = HealthChecker([good, bad], config=_config(), cache_ttl=30, cache_ttl_failing=5, clock=clock)
    await checker.run_all_checks()
    clock.advance(4)
    await checker.run_all_checks()
    assert calls == {"good": 1, "bad": 1}
    clock.advance(2)  # 6 s: failing result expired, healthy one not
    await checker.run_all_checks()
    assert calls == {"good": 1, "bad": 2}
    clock.advance(25)  # 31 s after the first run
    await checker.run_all_checks()
    assert calls == {"good": 2, "bad": 3}
    await checker.run(use_cache=False)
    assert calls == {"good": 3, "bad": 4}


async def test_flapping_protection_needs_consecutive_results() -> None:
    """RED is reported only after failures_before_red RED results in a row, GREEN again after successes_before_green."""
    script = iter(["green", "red", "green", "red", "red", "red", "green", "green"])

    @health_check("flaky", register=False)
    def flaky() -> HealthStatus:
        return HealthStatus(next(script))

    checker = HealthChecker([flaky], config=_config(), failures_before_red=3, successes_before_green=2)
    reported = []
    for _ in range(8):
        reported.append((await checker.run_check("flaky")).status.value)
    assert reported == ["green", "green", "green", "green", "green", "red", "red", "green"]
    suppressed = checker.history("flaky")[1]
    assert suppressed.details["unconfirmed_status"] == "red"
    assert "RED 1 of 3" in suppressed.message
    assert "recovering (1 of 2" in checker.history("flaky")[6].message


async def test_the_first_result_is_reported_as_is() -> None:
    """With flapping protection on, a check that is RED from the start is RED at once."""
    checker = HealthChecker([_fixed("down", HealthStatus.RED)], config=_config(failures_before_red=5))
    assert (await checker.run_check("down")).status is HealthStatus.RED


async def test_history_is_bounded() -> None:
    """Only the last history_size results of a check are kept, oldest first."""
    counter = iter(range(100))

    @health_check("count", register=False)
    def count() -> HealthResult:
        return HealthResult.green(str(next(counter)))

    checker = HealthChecker([count], config=_config(history_size=3))
    for _ in range(5):
        await checker.run_all_checks()
    assert [r.message for r in checker.history("count")] == ["2", "3", "4"]


async def test_status_changes_reach_hooks_and_the_log(caplog: pytest.LogCaptureFixture) -> None:
    """A reported status change calls the hooks and is logged, a turn to RED at ERROR; a raising hook is ignored."""
    script = iter([HealthStatus.GREEN, HealthStatus.RED, HealthStatus.RED])

    @health_check("link", register=False)
    def link() -> HealthStatus:
        return next(script)

    checker = HealthChecker([link], config=_config())
    changes: list[StatusChange] = []
    checker.on_status_change(changes.append)
    checker.on_status_change(lambda change: 1 / 0)
    with caplog.at_level("INFO", logger="otelres.health"):
        for _ in range(3):
            await checker.run_all_checks()
    assert [(c.old, c.new) for c in changes] == [(None, HealthStatus.GREEN), (HealthStatus.GREEN, HealthStatus.RED)]
    errors = [r for r in caplog.records if r.name == "otelres.health" and r.levelname == "ERROR"]
    assert any("health check link is RED" in r.getMessage() for r in errors)


def test_run_sync_works_without_a_loop() -> None:
    """run_sync() runs the checks from plain synchronous code."""
    report = HealthChecker([_fixed("x", HealthStatus.YELLOW)], config=_config()).run_sync()
    assert report.overall is HealthStatus.YELLOW
    assert report.exit_status == 1


def test_invalid_arguments_are_refused() -> None:
    """Nonsense thresholds, duplicate names and the reserved name 'overall' raise ValueError."""
    with pytest.raises(ValueError, match="timeout"):
        HealthChecker([], config=_config(), timeout=0)
    with pytest.raises(ValueError, match="failures_before_red"):
        HealthChecker([], config=_config(), failures_before_red=0)
    checker = HealthChecker([_fixed("a", HealthStatus.GREEN)], config=_config())
    with pytest.raises(ValueError, match="already has a check named 'a'"):
        checker.add_check(_fixed("a", HealthStatus.RED))
    with pytest.raises(ValueError, match="reserved"):
        _fixed("overall", HealthStatus.GREEN)


async def test_simultaneous_runs_share_the_run_in_progress() -> None:
    """Five runs of one check started together (probes plus the runner) call it once and all
    get its result."""
    calls: list[int] = []

    @health_check("exchange_api", register=False)
    async def exchange_api() -> HealthResult:
        calls.append(1)
        await asyncio.sleep(0.1)
        return HealthResult.yellow("slow")

    checker = HealthChecker([exchange_api], config=_config())
    reports = await asyncio.gather(*(checker.run() for _ in range(5)))
    assert len(calls) == 1
    assert [r.results["exchange_api"].message for r in reports] == ["slow"] * 5
    await checker.run()
    assert len(calls) == 2


async def test_a_run_joined_by_others_can_be_cancelled_alone() -> None:
    """Cancelling the run that started a check leaves the runs that joined it to finish the
    check themselves."""
    calls: list[int] = []

    @health_check("db", register=False)
    async def db() -> HealthStatus:
        calls.append(1)
        await asyncio.sleep(0.1)
        return HealthStatus.GREEN

    checker = HealthChecker([db], config=_config())
    first = asyncio.ensure_future(checker.run())
    await asyncio.sleep(0.02)
    second = asyncio.ensure_future(checker.run())
    await asyncio.sleep(0.02)
    first.cancel()
    report = await second
    assert report.results["db"].status is HealthStatus.GREEN
    assert len(calls) == 2
    assert first.cancelled()


async def test_a_check_raising_its_own_timeout_error_is_not_mistaken_for_ours() -> None:
    """A check that raises TimeoutError itself (a socket timeout) is RED with its own error, not
    "timed out after" the checker's limit."""

    @health_check("socket", register=False)
    def socket_check() -> HealthStatus:
        raise TimeoutError("connect to 10.0.0.5:5432 timed out")

    result = (await HealthChecker([socket_check], config=_config(), timeout=5).run_all_checks())["socket"]
    assert result.error == "TimeoutError: connect to 10.0.0.5:5432 timed out"
    assert result.message == "check raised TimeoutError: connect to 10.0.0.5:5432 timed out"
