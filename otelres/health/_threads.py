"""Running blocking check code off the event loop without ever blocking shutdown."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

__all__ = ["in_daemon_thread"]


def in_daemon_thread(func: Callable[[], T], *, name: str = "otelres-health") -> asyncio.Future[T]:
    """Run *func* in a new daemon thread; the returned future resolves on the running loop.

    Not the loop's default executor on purpose: a check that never returns would keep an
    executor thread busy forever, and ``asyncio.run()`` waits for the default executor on
    exit. A daemon thread is abandoned instead, so a hung check can neither delay other
    checks nor the end of the process.
    """
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(outcome: Callable[[asyncio.Future[Any], Any], None], value: Any) -> None:
        try:
            loop.call_soon_threadsafe(outcome, future, value)
        except RuntimeError:  # the loop has closed: nobody is waiting any more
            pass

    def run() -> None:
        try:
            result = func()
        except Exception as exc:
            settle(_set_exception, exc)
        except BaseException as exc:  # SystemExit & co. cannot be set on a future
            settle(_set_exception, RuntimeError(f"check raised {type(exc).__name__}"))
        else:
            settle(_set_result, result)

    threading.Thread(target=run, name=name, daemon=True).start()
    return future


def _set_result(future: asyncio.Future[Any], value: Any) -> None:
    if not future.done():
        future.set_result(value)


def _set_exception(future: asyncio.Future[Any], exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)
