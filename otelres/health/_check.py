"""What a check is: the :class:`HealthCheck` base class, the ``@health_check`` decorator,
the registry decorated checks land in, and turning import paths into checks."""

from __future__ import annotations

import importlib
import inspect
import threading
from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import Any

from otelres.health._model import HealthResult, HealthStatus

__all__ = [
    "CheckFunction",
    "CheckRegistry",
    "FunctionCheck",
    "HealthCheck",
    "as_check",
    "default_registry",
    "health_check",
    "load_check",
]

#: What a check function may be: sync or async, returning a result (or just a status).
CheckFunction = Callable[[], HealthResult | HealthStatus | Awaitable[HealthResult | HealthStatus]]

#: The name the overall status is published under; no check may take it.
OVERALL = "overall"


class HealthCheck:
    """Base class of checks: set ``name`` (and optionally ``tags``, ``timeout``), override :meth:`check`.

    :meth:`check` may be ``async def`` (it runs on the checker's event loop) or a plain
    ``def`` (it runs in a worker thread, so blocking I/O is fine). It returns a
    :class:`HealthResult` (name, duration and timestamp are filled in by the checker) or
    simply a :class:`HealthStatus`; raising an exception makes the check RED with the
    error as message::

        class QueueDepth(HealthCheck):
            name = "queue"
            tags = frozenset({"readiness"})

            def __init__(self, queue):
                self.queue = queue

            def check(self):
                depth = self.queue.qsize()
                if depth > 1000:
                    return HealthResult.yellow("queue is backing up", depth=depth)
                return HealthResult.green(depth=depth)

    ``timeout`` (seconds) overrides the checker's per-check timeout for this check.
    """

    name: str = ""
    tags: frozenset[str] = frozenset()
    timeout: float | None = None

    def check(self) -> HealthResult | HealthStatus | Awaitable[HealthResult | HealthStatus]:
        """Look at the component and say how it is."""
        raise NotImplementedError(f"{type(self).__name__} must override check()")

    @property
    def is_async(self) -> bool:
        """True when :meth:`check` is a coroutine function (run on the loop, not in a thread)."""
        return inspect.iscoroutinefunction(self.check)

    def __repr__(self) -> str:
        tags = f", tags={sorted(self.tags)}" if self.tags else ""
        return f"<{type(self).__name__} {self.name!r}{tags}>"


class FunctionCheck(HealthCheck):
    """A check made from a sync or async function (what ``@health_check`` returns).

    The object stays callable like the function it wraps.
    """

    def __init__(
        self,
        func: CheckFunction,
        name: str,
        *,
        tags: Iterable[str] = (),
        timeout: float | None = None,
    ) -> None:
        _validate_name(name)
        self.func = func
        self.name = name
        self.tags = frozenset(tags)
        self.timeout = timeout
        self._is_async = inspect.iscoroutinefunction(func)
        self.__doc__ = func.__doc__
        self.__wrapped__ = func

    @property
    def is_async(self) -> bool:
        return self._is_async

    def check(self) -> HealthResult | HealthStatus | Awaitable[HealthResult | HealthStatus]:
        return self.func()

    def __call__(self) -> HealthResult | HealthStatus | Awaitable[HealthResult | HealthStatus]:
        return self.func()


class CheckRegistry:
    """Checks by name. ``@health_check`` registers into :data:`default_registry`, which a
    :class:`~otelres.health.HealthChecker` built without explicit checks runs, and which
    names in ``[health_checks] checks`` are looked up in."""

    def __init__(self) -> None:
        self._checks: dict[str, HealthCheck] = {}
        self._lock = threading.Lock()

    def register(self, check: HealthCheck, *, replace: bool = False) -> HealthCheck:
        """Add *check*; a second check under the same name is an error unless *replace*."""
        _validate_name(check.name)
        with self._lock:
            if not replace and check.name in self._checks and self._checks[check.name] is not check:
                raise ValueError(
                    f"a health check named {check.name!r} is already registered; "
                    "pass replace=True to replace it"
                )
            self._checks[check.name] = check
        return check

    def unregister(self, name: str) -> None:
        """Remove the check called *name* (nothing happens when there is none)."""
        with self._lock:
            self._checks.pop(name, None)

    def get(self, name: str) -> HealthCheck | None:
        """The check called *name*, or None."""
        return self._checks.get(name)

    def clear(self) -> None:
        """Remove every check (for tests)."""
        with self._lock:
            self._checks.clear()

    def __iter__(self) -> Iterator[HealthCheck]:
        with self._lock:
            return iter(list(self._checks.values()))

    def __len__(self) -> int:
        return len(self._checks)

    def __contains__(self, name: object) -> bool:
        return name in self._checks


#: The registry ``@health_check`` registers into.
default_registry = CheckRegistry()


def health_check(
    name: str | None = None,
    *,
    tags: Iterable[str] = (),
    timeout: float | None = None,
    register: bool = True,
    registry: CheckRegistry | None = None,
) -> Callable[[CheckFunction], FunctionCheck]:
    """Turn a sync or async function into a :class:`FunctionCheck` and register it.

    ::

        @health_check("database", tags=["readiness"], timeout=2.0)
        async def database() -> HealthResult:
            await db.execute("SELECT 1")
            return HealthResult.green()

    *name* defaults to the function's name. With ``register=False`` the check is only
    returned (pass it to ``HealthChecker(checks=[...])`` yourself).
    """

    def decorate(func: CheckFunction) -> FunctionCheck:
        check = FunctionCheck(
            func, name or str(getattr(func, "__name__", "")), tags=tags, timeout=timeout
        )
        if register:
            (registry or default_registry).register(check, replace=True)
        return check

    return decorate


def as_check(obj: object, name: str | None = None) -> HealthCheck:
    """*obj* as a :class:`HealthCheck`: a check object as is (renamed copy-free when *name*
    matches), a :class:`HealthCheck` subclass instantiated without arguments, or a sync or
    async function wrapped in a :class:`FunctionCheck` called *name* (default: its name).

    Raises ``TypeError`` for anything else.
    """
    if isinstance(obj, type) and issubclass(obj, HealthCheck):
        obj = obj()
    if isinstance(obj, HealthCheck):
        if name is not None and obj.name != name:
            if isinstance(obj, FunctionCheck):
                return FunctionCheck(obj.func, name, tags=obj.tags, timeout=obj.timeout)
            return _Renamed(obj, name)
        if not obj.name:
            raise TypeError(f"health check {obj!r} has no name")
        return obj
    if callable(obj):
        return FunctionCheck(obj, name or str(getattr(obj, "__name__", "")))
    raise TypeError(
        f"expected a HealthCheck or a function returning a HealthResult, got {type(obj).__name__}"
    )


class _Renamed(HealthCheck):
    """A check object published under another name (a config slot name)."""

    def __init__(self, inner: HealthCheck, name: str) -> None:
        _validate_name(name)
        self.inner = inner
        self.name = name
        self.tags = inner.tags
        self.timeout = inner.timeout

    @property
    def is_async(self) -> bool:
        return self.inner.is_async

    def check(self) -> HealthResult | HealthStatus | Awaitable[HealthResult | HealthStatus]:
        return self.inner.check()


def load_check(path: str, name: str) -> HealthCheck:
    """Import ``"package.module:attribute"`` and make it a check called *name*.

    Raises ``ValueError`` saying what did not resolve (malformed path, missing module, a
    module that fails while importing, missing attribute, or a target that is not a check).
    """
    module_name, sep, attribute = path.partition(":")
    if not sep or not module_name or not attribute:
        raise ValueError(f"expected 'package.module:attribute', got {path!r}")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"cannot import module {module_name!r} ({exc})") from None
    except Exception as exc:  # the module itself fails: a SyntaxError, a missing setting
        raise ValueError(
            f"importing module {module_name!r} failed: {type(exc).__name__}: {exc}"
        ) from None
    target: Any = module
    for part in attribute.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise ValueError(f"module {module_name!r} has no attribute {attribute!r}") from None
    try:
        return as_check(target, name)
    except TypeError as exc:
        raise ValueError(f"{path!r} is not a health check: {exc}") from None
    except ValueError:
        raise
    except Exception as exc:  # a HealthCheck subclass whose __init__ fails
        raise ValueError(f"creating the check {path!r} failed: {type(exc).__name__}: {exc}") from None


def _validate_name(name: str) -> None:
    if not name or not isinstance(name, str):
        raise ValueError("a health check needs a non-empty name")
    if name == OVERALL:
        raise ValueError(f"{OVERALL!r} is reserved for the overall status; pick another check name")
    if any(ch in name for ch in "/?&=# \t\n"):
        raise ValueError(f"health check name {name!r} may not contain '/', '?', '&', '=', '#' or spaces")
