"""A local exchange (Kraken and Binance REST) for testing ccxt code offline; see :class:`ExchangeServer`.

Import from :mod:`otelres.testing`::

    from otelres.testing import ExchangeServer, Fault, exchange_client
"""

from __future__ import annotations

from otelres._testing.exchange._client import exchange_client
from otelres._testing.exchange._faults import DEMO_SCENARIO, Fault, FaultKind, Phase
from otelres._testing.exchange._server import (
    BINANCE_CREDENTIALS,
    KRAKEN_CREDENTIALS,
    ExchangeServer,
    RecordedRequest,
)
from otelres._testing.exchange._state import Credentials, Order

__all__ = [
    "BINANCE_CREDENTIALS",
    "DEMO_SCENARIO",
    "KRAKEN_CREDENTIALS",
    "Credentials",
    "ExchangeServer",
    "Fault",
    "FaultKind",
    "Order",
    "Phase",
    "RecordedRequest",
    "exchange_client",
]
