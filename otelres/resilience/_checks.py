"""Argument checks shared by the guards' constructors.

Every error names the guard and the argument at fault (``Retry('kraken'): initial_delay
must be a number >= 0, got 'fast'``), and a wrong type is a ``ValueError``/``TypeError`` raised
here rather than a comparison failing deep inside. ``bool`` is never accepted as a number
(``max_attempts=True`` is a mistake, not 1).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any, cast

__all__ = ["Checker"]



class Checker:
    """Checks the arguments of guard *kind* called *name* (itself checked here first)."""

    __slots__ = ("where",)

    def __init__(self, kind: str, name: object) -> None:
        if not isinstance(name, str) or not name:
            raise ValueError(f"{kind}: name must be a non-empty string, got {name!r}")
        self.where = f"{kind}({name!r})"

    # ------------------------------------------------------------------ numbers
    def integer(self, arg: str, value: int | None, default: int, minimum: int) -> int:
        """*value* (or *default* when None), an ``int`` of at least *minimum*."""
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ValueError(f"{self.where}: {arg} must be an integer >= {minimum}, got {value!r}")
        return value

    def number(
        self, arg: str, value: float | None, default: float, minimum: float | None = None
    ) -> float:
        """*value* (or *default* when None): a number > 0, or >= *minimum* when given."""
        if value is None:
            return default
        if minimum is None:
            return self.positive(arg, value)
        return self.at_least(arg, value, minimum)

    def optional_number(self, arg: str, value: float | None, default: float | None) -> float | None:
        """*value* (or *default* when None): a number > 0, or None."""
        if value is None:
            return default
        return self.positive(arg, value)

    def positive(self, arg: str, value: float) -> float:
        """*value* as a float, which must be a number > 0 (infinity allowed)."""
        number = self._real(arg, value, "> 0")
        if not number > 0:
            raise ValueError(f"{self.where}: {arg} must be a number > 0, got {value!r}")
        return number

    def at_least(self, arg: str, value: float, minimum: float) -> float:
        """*value* as a float, which must be a number >= *minimum*."""
        number = self._real(arg, value, f">= {minimum:g}")
        if number < minimum:
            raise ValueError(f"{self.where}: {arg} must be a number >= {minimum:g}, got {value!r}")
        return number

    def ratio(self, arg: str, value: float | None, default: float | None) -> float | None:
        """*value* (or *default* when None): a number in (0, 1]."""
        if value is None:
            return default
        number = self._real(arg, value, "in (0, 1]")
        if not 0 < number <= 1:
            raise ValueError(f"{self.where}: {arg} must be a number in (0, 1], got {value!r}")
        return number

    def _real(self, arg: str, value: object, wanted: str) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
            raise ValueError(f"{self.where}: {arg} must be a number {wanted}, got {value!r}")
        return float(value)

    # ------------------------------------------------------------------ other kinds
    def choice(self, arg: str, value: object, choices: tuple[str, ...]) -> None:
        """Raise unless *value* is one of *choices*."""
        if value not in choices:
            listed = ", ".join(repr(choice) for choice in choices)
            raise ValueError(f"{self.where}: {arg} must be one of {listed}, got {value!r}")

    def optional_callable(self, arg: str, value: object) -> None:
        """Raise unless *value* is callable or None."""
        if value is not None and not callable(value):
            raise TypeError(f"{self.where}: {arg} must be a function (or None), got {value!r}")

    def callables(self, arg: str, value: object) -> tuple[Callable[..., Any], ...]:
        """One function or an iterable of them, as a tuple."""
        if callable(value):
            return (value,)
        try:
            items = tuple(cast("Iterable[object]", value))
        except TypeError:
            items = (value,)
        for item in items:
            if not callable(item):
                raise TypeError(
                    f"{self.where}: {arg} must be a function or a sequence of functions, "
                    f"got {item!r}"
                )
        return cast("tuple[Callable[..., Any], ...]", items)

    def exception_spec(
        self, arg: str, spec: object, base: type[BaseException] = BaseException
    ) -> tuple[type[BaseException], ...] | Callable[[BaseException], bool]:
        """A tuple of exception classes (from one class or any iterable of them: tuple,
        list, set), or *spec* itself when it is a predicate. Classes must subclass *base*."""
        classes: tuple[object, ...]
        if isinstance(spec, type):
            classes = (spec,)
        elif callable(spec):
            return cast("Callable[[BaseException], bool]", spec)
        elif isinstance(spec, (str, bytes)) or not isinstance(spec, Iterable):
            classes = (spec,)
        else:
            classes = tuple(spec)
        for item in classes:
            if not (isinstance(item, type) and issubclass(item, base)):
                raise TypeError(
                    f"{self.where}: {arg} must be {base.__name__} subclasses (a class, a tuple or "
                    f"a list of them) or a predicate, got {item!r}"
                )
        return cast("tuple[type[BaseException], ...]", classes)
