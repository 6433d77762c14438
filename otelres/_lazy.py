"""Lazy re-exports: a package's public names are imported on first access.

This keeps ``import otelres`` (and each subpackage) cheap while the public face stays a flat
list of names. A package declares which module defines each name and installs the pair of
module-level hooks::

    _LAZY = {"HealthChecker": "_checker", "configure": "otelres.telemetry"}
    __getattr__, __dir__ = lazy_exports(__name__, _LAZY, globals())

A module path without a dot is a submodule of the package; one with dots is absolute.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(
    package: str, exports: Mapping[str, str], namespace: dict[str, Any]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The ``__getattr__`` and ``__dir__`` hooks that resolve *exports* of *package* lazily.

    A resolved name is stored in *namespace* (the package's ``globals()``), so each name is
    imported once and later accesses are plain attribute lookups.
    """

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        target = module if "." in module else f"{package}.{module}"
        value = getattr(importlib.import_module(target), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(namespace.get("__all__", ())))

    return __getattr__, __dir__
