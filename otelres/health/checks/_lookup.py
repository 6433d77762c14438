"""Finding the live resilience components a built-in check looks at."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Mapping
from typing import Any

__all__ = ["live_components"]


def live_components(
    source: Callable[[], Iterable[Any]] | None, module: str, function: str
) -> list[Any]:
    """The components to look at: what *source* returns, else ``module.function()``
    (*function* may be dotted: ``"PUBLISHED.live"``).

    The module is only looked up, never imported: when it is not loaded, no such component
    can exist in this process, and the CLI stays fast. A mapping counts by its values.
    """
    if source is not None:
        found: Any = source()
    else:
        lookup: Any = sys.modules.get(module)
        for part in function.split("."):
            lookup = getattr(lookup, part, None)
        if lookup is None:
            return []
        found = lookup()
    if isinstance(found, Mapping):
        found = found.values()
    return list(found)
