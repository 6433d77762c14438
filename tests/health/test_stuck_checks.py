"""Checks that misbehave badly: swallow their cancellation, hang in a thread, raise BaseException."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator

import pytest

from otelres.config import Config
from otelres.health import HealthChecker, HealthStatus, health_check
from otelres.health._threads import DaemonExecutor, in_daemon_thread, new_loop, run_coroutine


class Boom(BaseException):
    """A BaseException subclass a check might raise (as some frameworks' aborts do)."""


@pytest.fixture(name="release")
def _release() -> Iterator[threading.Event]:
    """An event that frees every hung check at the end of the test."""
    event = threading.Event()
    yield event
    event.set()


def _stubborn(calls: list[int], release: threading.Event):  # type: ignore[no-untyped-def]
    """An async check that ignores cancellation until *release* is set."""

    @health_check("stubborn", register=False)
    async def stubborn() -> HealthStatus:
        calls.append(1)
        while not release.is_set():
            try:
                await asyncio.sleep(0.02)
            except asyncio.CancelledError:
                pass
        return HealthStatus.GREEN

    return stubborn


def test_run_sync_returns_promptly_past_a_check_that_ignores_cancellation(release: threading.Event) -> None:
    """run_sync() reports an async check that swallows its cancellation as timed out and returns
    instead of waiting for it as asyncio.run() would."""
    checker = HealthChecker([_stubborn([], release)], config=Config(), timeout=0.2)
    started = time.perf_counter()
    report = checker.run_sync()
    assert time.perf_counter() - started < 2.0
    assert report.results["stubborn"].message == "timed out after 0.2 s"


async def test_a_still_stuck_async_check_does_not_start_another_task(release: threading.Event) -> None:
    """An async check still running after ignoring its cancellation is reported RED again
    without being started a second time, and runs again once it has ended."""
    calls: list[int] = []
    checker = HealthChecker([_stubborn(calls, release)], config=Config(), timeout=0.1)
    await checker.run_all_checks()
    second = await checker.run_all_checks()
    assert len(calls) == 1
    assert second["stubborn"].status is HealthStatus.RED
    assert "still running since an earlier run" in second["stubborn"].message
    release.set()
    await asyncio.sleep(0.1)
    third = await checker.run_all_checks()
    assert (len(calls), third["stubborn"].status) == (2, HealthStatus.GREEN)


def test_run_sync_does_not_wait_for_a_check_hung_in_to_thread(release: threading.Event) -> None:
    """An async check hung in asyncio.to_thread is cut at its timeout and run_sync() returns at once,
    its thread being a daemon that cannot hold up the process exit."""
    threads: list[threading.Thread] = []

    @health_check("to_thread", register=False)
    async def to_thread() -> HealthStatus:
        def block() -> None:
            threads.append(threading.current_thread())
            release.wait()

        await asyncio.to_thread(block)
        return HealthStatus.GREEN

    started = time.perf_counter()
    report = HealthChecker([to_thread], config=Config(), timeout=0.2).run_sync()
    assert time.perf_counter() - started < 2.0
    assert report.results["to_thread"].status is HealthStatus.RED
    assert len(threads) == 1
    assert threads[0].daemon


@pytest.mark.parametrize("exc", [SystemExit(3), Boom("aborted"), GeneratorExit()])
async def test_an_async_check_raising_a_base_exception_is_red(exc: BaseException) -> None:
    """An async check raising SystemExit, GeneratorExit or a BaseException subclass is RED naming it;
    the checker and the other checks carry on."""

    @health_check("aborting", register=False)
    async def aborting() -> HealthStatus:
        raise exc

    @health_check("fine", register=False)
    async def fine() -> HealthStatus:
        return HealthStatus.GREEN

    results = await HealthChecker([aborting, fine], config=Config()).run_all_checks()
    expected = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    assert results["aborting"].status is HealthStatus.RED
    assert results["aborting"].error == expected
    assert results["aborting"].message == f"check raised {expected}"
    assert results["fine"].status is HealthStatus.GREEN


async def test_a_sync_check_raising_a_base_exception_is_red_with_its_own_name() -> None:
    """A sync check raising a BaseException subclass is RED with that class and text, not a wrapper's."""

    @health_check("aborting", register=False)
    def aborting() -> HealthStatus:
        raise Boom("worker aborted")

    result = (await HealthChecker([aborting], config=Config()).run_all_checks())["aborting"]
    assert result.error == "Boom: worker aborted"
    assert result.message == "check raised Boom: worker aborted"


def test_the_daemon_executor_serves_as_a_loop_default_executor() -> None:
    """Loops made by new_loop() run asyncio.to_thread work on daemon threads."""

    async def where() -> bool:
        return await asyncio.to_thread(lambda: threading.current_thread().daemon)

    assert run_coroutine(where()) is True
    loop = new_loop()
    try:
        assert isinstance(loop._default_executor, DaemonExecutor)  # type: ignore[attr-defined]
    finally:
        loop.close()


async def test_in_daemon_thread_carries_base_exceptions_as_exceptions() -> None:
    """A BaseException raised in a daemon-thread call arrives as an Exception naming the original."""

    def abort() -> None:
        raise Boom("stop")

    with pytest.raises(Exception, match="Boom: stop"):
        await in_daemon_thread(abort)


async def test_run_sync_inside_a_running_loop_says_to_await() -> None:
    """run_sync() called from async code raises a RuntimeError saying to await run() instead,
    leaving no un-awaited coroutine behind."""
    checker = HealthChecker([lambda: HealthStatus.GREEN], config=Config())
    with pytest.raises(RuntimeError, match=r"await checker\.run\(\)"):
        checker.run_sync()
