"""Plumbing shared by the guards: calling a function from its parts, and decorating one.

A guard's engine takes ``invoke(fn, args, kwargs)`` for "run one attempt", so that a
:class:`~otelres.resilience.Policy` can pass its inner layers where a standalone guard
passes :func:`direct`.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable
from typing import Any

__all__ = ["decorate", "direct", "direct_async"]


def direct(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """``fn(*args, **kwargs)``."""
    return fn(*args, **kwargs)


async def direct_async(
    fn: Callable[..., Awaitable[Any]], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    """``await fn(*args, **kwargs)``."""
    return await fn(*args, **kwargs)


def decorate(
    fn: Callable[..., Any],
    call: Callable[..., Any],
    call_async: Callable[..., Awaitable[Any]],
) -> Callable[..., Any]:
    """Wrap *fn* so each call goes through ``call`` (or ``call_async`` for ``async def``).

    The wrapper keeps *fn*'s name, docstring and signature (``functools.wraps``) and stays
    a coroutine function when *fn* is one.
    """
    if inspect.iscoroutinefunction(fn):

        @functools.wraps(fn)
        async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
            return await call_async(fn, *args, **kwargs)

        return async_wrapper

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return call(fn, *args, **kwargs)

    return wrapper
