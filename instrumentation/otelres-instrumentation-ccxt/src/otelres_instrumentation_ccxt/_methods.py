"""Which ccxt methods are traced, and which of them may be sent twice."""

from __future__ import annotations

from typing import Any

__all__ = [
    "IDEMPOTENT_PREFIXES",
    "ORDER_METHODS",
    "camel_case",
    "is_idempotent",
    "unified_methods",
]

IDEMPOTENT_PREFIXES = ("fetch_", "load_markets")
"""Reads: sending one twice changes nothing at the exchange, so retrying is safe."""

ORDER_METHODS = frozenset({"create_order"})
"""Methods that safe order retry protects with a client order id."""

# ccxt's own snake_case -> camelCase exceptions (see BaseExchange.__init__).
_CAMEL_EXCEPTIONS = {"ohlcv": "OHLCV", "le": "LE", "be": "BE", "adl": "ADL"}

_EXTRA = ("load_markets",)
# One-word unified methods (the rest all contain an underscore).
_SINGLE_WORDS = frozenset({"withdraw", "transfer", "deposit"})


def camel_case(name: str) -> str:
    """ccxt's camelCase alias of a snake_case method name (``fetch_ohlcv`` -> ``fetchOHLCV``)."""
    first, *rest = name.split("_")
    return first + "".join(_CAMEL_EXCEPTIONS.get(p, p[:1].upper() + p[1:]) for p in rest)


def is_idempotent(method: str) -> bool:
    """Whether *method* only reads (``fetch_*``, ``load_markets``) and may be retried blindly."""
    return method.startswith(IDEMPOTENT_PREFIXES)


def unified_methods(base: type[Any], has: dict[str, Any]) -> frozenset[str]:
    """The REST unified methods of ccxt: snake names of *base* listed in the ``has`` table.

    WebSocket methods (``watch_*``, ``un_watch_*``, ``*_ws``) are left out: the
    instrumentor covers the REST path.
    """
    found = set(_EXTRA)
    for name in dir(base):
        if name.startswith(("_", "watch_", "un_watch_")) or name.endswith("_ws"):
            continue
        if ("_" in name or name in _SINGLE_WORDS) and camel_case(name) in has and callable(
            getattr(base, name, None)
        ):
            found.add(name)
    return frozenset(found)
