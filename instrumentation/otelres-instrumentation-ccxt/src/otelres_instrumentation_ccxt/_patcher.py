"""Putting wrappers on ccxt's exchange classes and instances, and taking them off again.

ccxt keeps its methods on one class per exchange and flavour (``ccxt.kraken``,
``ccxt.async_support.kraken``, ``ccxt.pro.kraken``), all below the sync
``BaseExchange``. A method is wrapped on the class that defines it, so a subclass
override calling ``super()`` is one traced call, not two. Every construction of an
exchange re-points the camelCase aliases (``fetchTicker``) at whatever the snake_case
name resolves to, so aliases are patched with their method and swept back on removal.
Exchange classes that appear after ``instrument()`` (``ccxt.async_support`` imported
later, a user's subclass) are patched on their first construction.
"""

from __future__ import annotations

import functools
import threading
from typing import Any

from otelres_instrumentation_ccxt._methods import camel_case, unified_methods
from otelres_instrumentation_ccxt._wrappers import MARK, RuntimeGetter, make_wrapper, unwrap

__all__ = ["ClassPatcher", "instrument_instance", "uninstrument_instance"]

HTTP_HOOKS = ("fetch", "fetch2", "on_rest_response", "sign", "throttle")
_MISSING = object()
_INSTANCE_MARK = "_otelres_ccxt_instance_patch"


def _base_exchange() -> type[Any]:
    from ccxt.base.exchange import BaseExchange

    return BaseExchange  # type: ignore[no-any-return]


@functools.lru_cache(maxsize=1)
def _targets() -> dict[str, str]:
    """Every method name to wrap, mapped to its camelCase alias (computed once)."""
    import ccxt
    from ccxt.base.exchange import Exchange

    has = ccxt.Exchange().describe().get("has", {})
    names = unified_methods(Exchange, has) | frozenset(HTTP_HOOKS)
    return {name: camel_case(name) for name in names}


def _subclasses(root: type[Any]) -> list[type[Any]]:
    seen: list[type[Any]] = []
    stack = [root]
    known: set[type[Any]] = set()
    while stack:
        cls = stack.pop()
        if cls in known:
            continue
        known.add(cls)
        seen.append(cls)
        stack.extend(cls.__subclasses__())
    return seen


class ClassPatcher:
    """Wraps ccxt's exchange classes (see the module docstring); thread-safe, idempotent."""

    def __init__(self, get_runtime: RuntimeGetter) -> None:
        self._get_runtime = get_runtime
        self._lock = threading.RLock()
        self._saved: dict[type[Any], dict[str, Any]] = {}
        self._targets: dict[str, str] = {}
        self._root: type[Any] | None = None
        self._original_init: Any = None
        # Classes ccxt constructed while patched: their camelCase aliases are ccxt's now.
        self._constructed: set[type[Any]] = set()
        self.active = False

    def patch(self) -> None:
        """Wrap every exchange class loaded now, and those constructed later."""
        with self._lock:
            if self.active:
                return
            self._root = root = _base_exchange()
            self._targets = _targets()
            for cls in _subclasses(root):
                self._patch_class(cls)
            self._hook_init(root)
            self.active = True

    def unpatch(self) -> None:
        """Put every original method (and camelCase alias) back."""
        with self._lock:
            if not self.active or self._root is None:
                return
            root = self._root
            if self._original_init is not None:
                root.__init__ = self._original_init
                self._original_init = None
            for cls, saved in self._saved.items():
                for name, value in saved.items():
                    if value is not _MISSING:
                        setattr(cls, name, value)
                    elif cls in self._constructed and name in vars(cls):
                        # The alias did not exist when patched, but ccxt has made it since,
                        # and existing clients rely on it: point it at the original.
                        setattr(cls, name, unwrap(vars(cls)[name]))
                    else:
                        try:
                            delattr(cls, name)
                        except AttributeError:
                            pass
            self._saved.clear()
            self._constructed.clear()
            # Constructions while instrumented pointed aliases of subclasses at wrappers.
            for cls in _subclasses(root):
                for name, value in list(vars(cls).items()):
                    if getattr(value, MARK, False):
                        setattr(cls, name, unwrap(value))
            self.active = False

    # ------------------------------------------------------------------ internals
    def _patch_class(self, cls: type[Any]) -> None:
        if cls in self._saved:
            return
        saved: dict[str, Any] = {}
        own = vars(cls)
        targets = self._targets
        for name in targets.keys() & own.keys():
            original = own[name]
            if not callable(original) or getattr(original, MARK, False):
                continue
            wrapper = make_wrapper(name, original, self._get_runtime)
            saved[name] = original
            setattr(cls, name, wrapper)
            camel = targets[name]
            if camel != name:
                alias = own.get(camel, _MISSING)
                if alias is _MISSING or alias is original or getattr(alias, MARK, False):
                    saved.setdefault(camel, alias)
                    setattr(cls, camel, wrapper)
        self._saved[cls] = saved

    def _hook_init(self, root: type[Any]) -> None:
        original_init = root.__init__
        self._original_init = original_init
        patcher = self

        def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
            cls = type(self)
            if cls not in patcher._constructed:
                with patcher._lock:
                    if patcher.active:
                        for klass in cls.__mro__:
                            if isinstance(klass, type) and issubclass(klass, root):
                                patcher._patch_class(klass)
                        patcher._constructed.add(cls)
            original_init(self, *args, **kwargs)

        __init__.__wrapped__ = original_init  # type: ignore[attr-defined]
        setattr(__init__, MARK, True)
        root.__init__ = __init__


def instrument_instance(exchange: Any, get_runtime: RuntimeGetter) -> bool:
    """Wrap the methods of one *exchange* instance only; False if it already was."""
    if _INSTANCE_MARK in vars(exchange):
        return False
    targets = _targets()
    cls = type(exchange)
    patched: list[str] = []
    for name, camel in targets.items():
        function = getattr(cls, name, None)
        if function is None or not callable(function):
            continue
        wrapper = make_wrapper(name, unwrap(function), get_runtime)
        bound = wrapper.__get__(exchange, cls)
        setattr(exchange, name, bound)
        patched.append(name)
        if camel != name:
            setattr(exchange, camel, bound)
            patched.append(camel)
    vars(exchange)[_INSTANCE_MARK] = tuple(patched)
    return True


def uninstrument_instance(exchange: Any) -> bool:
    """Remove what :func:`instrument_instance` put on *exchange*; False if nothing was there."""
    patched = vars(exchange).pop(_INSTANCE_MARK, None)
    if patched is None:
        return False
    for name in patched:
        vars(exchange).pop(name, None)
    return True
