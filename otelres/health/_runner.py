"""The scheduled runner: checks every ``interval_seconds`` in the background."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any

from otelres._otel import call_hook
from otelres.health._checker import HealthChecker
from otelres.health._report import HealthReport
from otelres.health._threads import run_coroutine

__all__ = ["HealthRunner"]

_log = logging.getLogger("otelres.health")


class HealthRunner:
    """Runs a checker's checks every *interval* seconds until stopped (the seed's ``interval_seconds``).

    Keeping the gauges fresh is its job: between runs, ``otelres.health.status``, the
    CLI's ``--url`` and the HTTP endpoints' cached results all show the latest report.

    In an asyncio application start it inside the loop, so async checks share the
    application's loop (and its clients)::

        runner = HealthRunner(checker, interval=30)
        runner.start()            # a task on the running loop
        ...
        await runner.aclose()

    Without a running loop, :meth:`start` runs the checks on a daemon thread with its own
    loop, and :meth:`stop` ends it; ``with HealthRunner(...):`` does both. The first run
    happens at once. A run that raises (it should not: failing checks become RED) is
    logged and the schedule continues. *on_report* is called with every
    :class:`~otelres.health.HealthReport`; an exception it raises is logged.
    """

    def __init__(
        self,
        checker: HealthChecker | None = None,
        *,
        interval: float | None = None,
        names: Iterable[str] | None = None,
        tags: Iterable[str] | None = None,
        on_report: Callable[[HealthReport], object] | None = None,
    ) -> None:
        self.checker = checker if checker is not None else HealthChecker()
        interval = self.checker.config.health_checks.interval_seconds if interval is None else interval
        if not interval > 0:
            raise ValueError(f"interval must be > 0, got {interval!r}")
        self.interval = float(interval)
        self.names = list(names) if names is not None else None
        self.tags = list(tags) if tags is not None else None
        self.on_report = on_report
        self.runs = 0
        """How many runs have completed."""
        self._thread: threading.Thread | None = None
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._current: asyncio.Task[Any] | None = None
        self._stopping = False

    @property
    def running(self) -> bool:
        """True between :meth:`start` and the end of :meth:`stop` / :meth:`aclose`."""
        if self._task is not None:
            return not self._task.done()
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> HealthRunner:
        """Start running: as a task when called inside a running loop, else on a daemon thread."""
        if self.running:
            raise RuntimeError("this HealthRunner is already running")
        self._stopping = False
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        if loop is not None:
            self._loop = loop
            self._wake = asyncio.Event()
            self._task = self._current = loop.create_task(self._run(), name="otelres-health-runner")
        else:
            started = threading.Event()
            self._thread = threading.Thread(
                target=self._thread_main, args=(started,), name="otelres-health-runner", daemon=True
            )
            self._thread.start()
            started.wait()
        return self

    def stop(self, timeout: float | None = 10.0) -> None:
        """Stop: cancel the run in progress (a hung check is not waited out) and, in thread
        mode, wait up to *timeout* s for the thread to end.

        In task mode it cancels the task; use ``await aclose()`` to wait for it too.
        """
        self._stopping = True
        loop, wake, current = self._loop, self._wake, self._current
        if loop is not None and wake is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(wake.set)
                if current is not None:
                    loop.call_soon_threadsafe(current.cancel)
            except RuntimeError:
                pass
        if self._task is not None and _running_loop() is loop:
            self._task.cancel()  # else (another thread) the thread-safe cancel above does it
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    async def aclose(self) -> None:
        """Stop a task-mode runner and wait until it has finished."""
        self.stop()
        if self._task is not None:
            try:
                await self._task
            except asyncio.CancelledError:
                pass

    def __enter__(self) -> HealthRunner:
        return self.start()

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()

    async def __aenter__(self) -> HealthRunner:
        return self.start()

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.aclose()

    def _thread_main(self, started: threading.Event) -> None:
        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._wake = asyncio.Event()
            self._current = asyncio.current_task()
            started.set()
            await self._run()

        try:
            run_coroutine(main())
        except asyncio.CancelledError:  # stop() cancelled the run in progress
            pass
        finally:
            started.set()

    async def _run(self) -> None:
        assert self._wake is not None
        self._current = asyncio.current_task()
        while not self._stopping:
            try:
                report = await self.checker.run(self.names, self.tags)
            except Exception:
                _log.exception("otelres: a scheduled health run failed")
            else:
                self.runs += 1
                if self.on_report is not None:
                    call_hook(self.on_report, report, what="health report hook")
            try:  # stop() sets the event, so stopping never waits out the interval
                await asyncio.wait_for(self._wake.wait(), self.interval)
            except asyncio.TimeoutError:
                pass


def _running_loop() -> asyncio.AbstractEventLoop | None:
    """The event loop running in this thread, or None."""
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None
