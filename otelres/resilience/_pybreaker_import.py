"""Import ``pybreaker`` without importing ``redis`` with it.

:class:`~otelres.resilience.CircuitBreakerOpenError` subclasses
``pybreaker.CircuitBreakerError`` (so existing ``except`` clauses keep working), which
means every breaker user imports pybreaker. pybreaker 1.x imports ``redis`` at module level
for its optional Redis storage, and ``import redis`` costs 0.3-0.5 s: more than all the
rest of ``from otelres import circuit_breaker`` together, paid by applications that never
touch Redis.

:func:`load_pybreaker` therefore runs pybreaker's module code with an ``__import__`` that
refuses ``redis`` (for that module's own import statements only: other threads and modules
are unaffected), so pybreaker sees redis as missing. When redis is installed, pybreaker's
Redis support is then switched back on lazily: ``HAS_REDIS_SUPPORT`` is set, and the first
``pybreaker.CircuitRedisStorage(...)`` imports redis and fills in the names pybreaker's
methods use. Nothing changes when pybreaker or redis were imported before otelres.
"""

from __future__ import annotations

import builtins
import functools
import importlib.util
import sys
import threading
from types import ModuleType
from typing import Any

__all__ = ["load_pybreaker"]

_lock = threading.Lock()
_import = builtins.__import__


def load_pybreaker() -> ModuleType:
    """The ``pybreaker`` module, imported now if needed without importing ``redis``."""
    module = sys.modules.get("pybreaker")
    if module is not None:
        return module
    if "redis" in sys.modules:  # already paid for: import pybreaker the ordinary way
        return importlib.import_module("pybreaker")
    with _lock:
        module = sys.modules.get("pybreaker")
        if module is not None:
            return module
        spec = importlib.util.find_spec("pybreaker")
        if spec is None or spec.loader is None:
            raise ModuleNotFoundError("No module named 'pybreaker'", name="pybreaker")
        module = importlib.util.module_from_spec(spec)
        namespace = vars(module)
        namespace["__builtins__"] = {**vars(builtins), "__import__": _import_without_redis}
        sys.modules["pybreaker"] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            sys.modules.pop("pybreaker", None)
            raise
        finally:
            namespace["__builtins__"] = builtins
        _defer_redis_support(module)
        return module


def _import_without_redis(
    name: str,
    globals: dict[str, Any] | None = None,
    locals: dict[str, Any] | None = None,
    fromlist: tuple[str, ...] | list[str] = (),
    level: int = 0,
) -> ModuleType:
    if level == 0 and (name == "redis" or name.startswith("redis.")):
        raise ImportError("redis is imported when pybreaker's Redis storage is used", name=name)
    return _import(name, globals, locals, fromlist, level)


def _defer_redis_support(module: ModuleType) -> None:
    """Let ``pybreaker.CircuitRedisStorage`` import redis when it is first constructed."""
    storage = getattr(module, "CircuitRedisStorage", None)
    if (
        getattr(module, "HAS_REDIS_SUPPORT", True)
        or storage is None
        or importlib.util.find_spec("redis") is None
    ):
        return
    original = storage.__init__

    @functools.wraps(original)
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        if "RedisError" not in vars(module):
            from redis import Redis
            from redis.client import Pipeline
            from redis.exceptions import RedisError

            setattr(module, "Redis", Redis)  # noqa: B010 - names pybreaker's methods look up
            setattr(module, "Pipeline", Pipeline)  # noqa: B010
            setattr(module, "RedisError", RedisError)  # noqa: B010
        original(self, *args, **kwargs)

    storage.__init__ = __init__
    setattr(module, "HAS_REDIS_SUPPORT", True)  # noqa: B010
