"""Running check code off the event loop, and event loops, without ever blocking shutdown.

A health check may hang for ever: in a worker thread (a sync check, or an async one that
uses ``asyncio.to_thread``), or as a task that swallows its cancellation. Neither may delay
the other checks, nor the end of the ``otelres health`` process. So blocking work runs on
daemon threads (the standard executor's threads are joined at interpreter exit), and the
loops this package runs itself use those threads as their default executor and never wait
at close for work that outlived its timeout.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

__all__ = [
    "CheckAborted",
    "DaemonExecutor",
    "aborted",
    "close_loop",
    "describe",
    "drain",
    "in_daemon_thread",
    "new_loop",
    "run_coroutine",
    "shielded",
]

#: How long closing a loop waits for cancelled tasks to finish before abandoning them.
CLOSE_GRACE_SECONDS = 0.25


class CheckAborted(Exception):
    """A check raised a ``BaseException`` that is not an ``Exception`` (``SystemExit``,
    ``GeneratorExit``, a custom one); carried as an ``Exception`` so it can cross a
    future and be reported as RED instead of ending the checker."""

    def __init__(self, original: BaseException) -> None:
        super().__init__(describe(original))
        self.original = original


def describe(exc: BaseException) -> str:
    """``"ClassName: text"`` of an exception (the original one for :class:`CheckAborted`)."""
    if isinstance(exc, CheckAborted):
        exc = exc.original
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def shielded(func: Callable[[], T]) -> Callable[[], T]:
    """*func*, raising :class:`CheckAborted` where it would raise a non-``Exception``.

    ``KeyboardInterrupt`` is let through on the main thread (it is Ctrl-C); on any other
    thread there is no Ctrl-C, so it is the check's own doing and reported like the rest.
    """

    def call() -> T:
        try:
            return func()
        except Exception:
            raise
        except BaseException as exc:
            raise aborted(exc) from None

    return call


def aborted(exc: BaseException) -> BaseException:
    """What to raise for a non-``Exception`` *exc* a check raised: ``KeyboardInterrupt``
    itself on the main thread (Ctrl-C), else :class:`CheckAborted` carrying it."""
    if isinstance(exc, KeyboardInterrupt) and threading.current_thread() is threading.main_thread():
        return exc
    return CheckAborted(exc)


class DaemonExecutor(concurrent.futures.ThreadPoolExecutor):
    """An executor that runs each call on a new daemon thread.

    ``ThreadPoolExecutor`` threads are joined when the interpreter exits, so one stuck call
    (``asyncio.to_thread(requests.get, ...)`` against a dead host) keeps the process alive;
    a daemon thread is abandoned instead. Health checks are few and short, so a thread per
    call costs nothing that matters. (A ``ThreadPoolExecutor`` subclass only because
    ``loop.set_default_executor`` accepts nothing else; none of its pool is used.)
    """

    def __init__(self, name: str = "otelres-health") -> None:
        super().__init__(max_workers=1, thread_name_prefix=name)
        self.name = name

    def submit(
        self, fn: Callable[..., T], /, *args: Any, **kwargs: Any
    ) -> concurrent.futures.Future[T]:
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        call = shielded(lambda: fn(*args, **kwargs))

        def run() -> None:
            if not future.set_running_or_notify_cancel():
                return
            try:
                result = call()
            except BaseException as exc:  # KeyboardInterrupt cannot reach here off the main thread
                future.set_exception(exc)
            else:
                future.set_result(result)

        threading.Thread(target=run, name=self.name, daemon=True).start()
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Nothing to stop: threads end with their call, or with the process."""


def in_daemon_thread(func: Callable[[], T], *, name: str = "otelres-health") -> asyncio.Future[T]:
    """Run *func* on a new daemon thread; the returned future resolves on the running loop.

    Not the loop's default executor on purpose: a call that never returns must neither
    keep an executor thread nor the process alive. A non-``Exception`` it raises arrives
    as :class:`CheckAborted`.
    """
    return asyncio.wrap_future(DaemonExecutor(name).submit(func))


def new_loop() -> asyncio.AbstractEventLoop:
    """A new event loop whose default executor (``asyncio.to_thread``) uses daemon threads."""
    loop = asyncio.new_event_loop()
    loop.set_default_executor(DaemonExecutor())
    return loop


def run_coroutine(coro: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(coro)`` that never waits on work abandoned at a timeout.

    ``asyncio.run`` cancels leftover tasks and waits for them, and for the default
    executor's threads: a check that ignores cancellation, or hangs in
    ``asyncio.to_thread``, would keep it (and the process) from ever finishing.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        coro.close()
        raise RuntimeError(
            "cannot run health checks synchronously inside a running event loop; await them "
            "instead (await checker.run() / await checker.run_all_checks())"
        )
    loop = new_loop()
    try:
        return loop.run_until_complete(coro)
    finally:
        close_loop(loop)


def close_loop(loop: asyncio.AbstractEventLoop) -> None:
    """Cancel what is left on the stopped *loop*, give it :data:`CLOSE_GRACE_SECONDS`, and
    close it. Runs *loop* briefly on this thread: a thread with a loop of its own running
    uses :func:`drain` on *loop*'s thread instead."""
    try:
        loop.run_until_complete(drain())
    finally:
        loop.close()


async def drain() -> None:
    """Cancel every other task of the running loop and give them :data:`CLOSE_GRACE_SECONDS`.

    Tasks that ignore their cancellation are left behind without asyncio's "Task was
    destroyed but it is pending!" when they are collected.
    """
    loop = asyncio.get_running_loop()
    pending = [t for t in asyncio.all_tasks(loop) if not t.done() and t is not asyncio.current_task()]
    for task in pending:
        task.cancel()
    if pending:
        await asyncio.wait(pending, timeout=CLOSE_GRACE_SECONDS)
    for task in pending:
        if not task.done():
            task._log_destroy_pending = False  # type: ignore[attr-defined]
        elif not task.cancelled():
            task.exception()  # retrieved, so asyncio does not log it as never retrieved
    await loop.shutdown_asyncgens()
