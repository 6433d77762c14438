"""Plumbing shared by the guards: calling a function from its parts, and decorating one.

A guard's engine takes ``invoke(fn, args, kwargs)`` for "run one attempt", so that a
:class:`~otelres.resilience.Policy` can pass its inner layers where a standalone guard
passes :func:`direct`.
"""

from __future__ import annotations

import functools
import inspect
import types
from collections.abc import Awaitable, Callable
from typing import Any

from otelres.resilience._errors import GuardMisuseError

__all__ = [
    "COROUTINE",
    "check_decoratable",
    "decorate",
    "direct",
    "direct_async",
    "is_async",
    "refuse_coroutine",
]


#: The type sync call paths compare a result with (inline, to stay cheap) before
#: calling :func:`refuse_coroutine`.
COROUTINE = types.CoroutineType


def direct(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """``fn(*args, **kwargs)``, refusing a coroutine (see :func:`refuse_coroutine`)."""
    result = fn(*args, **kwargs)
    if type(result) is COROUTINE:
        refuse_coroutine(result, fn, None)
    return result


async def direct_async(
    fn: Callable[..., Awaitable[Any]], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    """``await fn(*args, **kwargs)``."""
    return await fn(*args, **kwargs)


def is_async(fn: Callable[..., Any]) -> bool:
    """Whether calling *fn* returns a coroutine (``async def``, partials of one, or an
    object whose ``__call__`` is ``async def``)."""
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
        getattr(fn, "__call__", None)  # noqa: B004 - the method itself, not callability
    )


def check_decoratable(fn: object, guard: object) -> None:
    """Raise a ``TypeError`` naming *guard* when *fn* cannot be guarded by a wrapper.

    A generator function (sync or async) returns its generator at once and fails only while
    someone iterates it, after the wrapper returned: a guard around it would count every call
    a success and never see, retry or answer a failure, so it is refused rather than
    silently ignored.
    """
    if inspect.isgeneratorfunction(fn) or inspect.isasyncgenfunction(fn):
        name = getattr(fn, "__qualname__", repr(fn))
        raise TypeError(
            f"{_describe(guard)} cannot guard generator function {name}: its failures happen "
            "while the caller iterates, after the guarded call returned. Guard a function that "
            "consumes the generator (for example one returning a list) instead"
        )
    if not callable(fn):
        raise TypeError(f"{_describe(guard)} can only decorate a function, got {fn!r}")


def refuse_coroutine(result: object, fn: Callable[..., Any], guard: object) -> None:
    """Raise a ``TypeError`` when *result*, what a sync ``call`` got from *fn*, is a coroutine.

    ``guard.call(async_fn)`` only creates the coroutine: nothing would be guarded while it
    runs later. The coroutine is closed (no "never awaited" warning) and the error says to
    use ``call_async``. One type check, so cheap enough for every call.
    """
    if type(result) is COROUTINE:
        result.close()
        name = getattr(fn, "__qualname__", repr(fn))
        raise GuardMisuseError(
            f"{_describe(guard)}.call() got a coroutine from {name}: use "
            "await .call_async() (or decorate the async function) to guard it"
        )


def _describe(guard: object) -> str:
    name = getattr(guard, "name", None)
    kind = type(guard).__name__
    return kind if name is None else f"{kind}({name!r})"


def decorate(
    fn: Callable[..., Any],
    call: Callable[..., Any],
    call_async: Callable[..., Awaitable[Any]],
) -> Callable[..., Any]:
    """Wrap *fn* so each call goes through ``call`` (or ``call_async`` for ``async def``).

    The wrapper keeps *fn*'s name, docstring and signature (``functools.wraps``) and stays
    a coroutine function when *fn* is one. A ``staticmethod`` or ``classmethod`` object
    (the guard written above the ``@staticmethod`` line) stays one, with its function
    guarded. Generator functions are refused (see :func:`check_decoratable`).
    """
    if isinstance(fn, (staticmethod, classmethod)):
        return type(fn)(decorate(fn.__func__, call, call_async))
    check_decoratable(fn, getattr(call, "__self__", None))
    if is_async(fn):

        @functools.wraps(fn)
        async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
            return await call_async(fn, *args, **kwargs)

        return async_wrapper

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return call(fn, *args, **kwargs)

    return wrapper
