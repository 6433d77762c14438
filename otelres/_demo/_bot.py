"""The demo's trading bot: a small loop of real async ccxt calls against the local exchange."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

__all__ = ["BotStats", "trade"]

_log = logging.getLogger("otelres.demo")

#: Seconds between two ticks of one exchange's loop.
TICK_SECONDS = 0.2


@dataclass
class BotStats:
    """What one exchange's loop did: unified calls by outcome, and orders placed."""

    exchange: str
    calls: int = 0
    ok: int = 0
    failed: int = 0
    """Calls that failed for good (after retries): the exchange or the network was in trouble."""
    rejected: int = 0
    """Calls a breaker refused without contacting the exchange."""
    limited: int = 0
    """Calls the rate limiter refused (waiting would have taken too long)."""
    orders: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    """Failures and rejections by exception class."""
    last_price: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "calls": self.calls,
            "ok": self.ok,
            "failed": self.failed,
            "rejected": self.rejected,
            "limited": self.limited,
            "orders": self.orders,
            "errors": dict(self.errors),
        }


async def trade(
    client: Any, symbol: str, stats: BotStats, stop: asyncio.Event, *, tick: float = TICK_SECONDS
) -> None:
    """Watch *symbol*'s price on *client* and trade a little, until *stop* is set.

    Every tick fetches the ticker; every 10th tick the balance, and then places a
    small market order, buying when the price rose since the last order and selling
    when it fell. After a failed tick, the first good one re-reads balance and orders.
    Each call goes through the instrumented client, so through the exchange's breaker,
    retries and rate limiter; whatever it raises is counted, never fatal: a bot must
    outlive its exchange's bad minutes.
    """
    from otelres.resilience import CircuitBreakerOpenError, RateLimitExceededError

    count = 0
    order_price: float | None = None
    in_trouble = False
    while not stop.is_set():
        count += 1
        ticker = await _call(stats, client.fetch_ticker(symbol), CircuitBreakerOpenError,
                             RateLimitExceededError)
        if isinstance(ticker, dict) and ticker.get("last") is not None:
            stats.last_price = float(ticker["last"])
            if in_trouble:
                # Back from an outage: re-read balance and orders at once. This burst is
                # what the rate limiter smooths out (callers wait for tokens).
                for resync in (client.fetch_balance(), client.fetch_open_orders(symbol)):
                    await _call(stats, resync, CircuitBreakerOpenError, RateLimitExceededError)
        in_trouble = ticker is None
        if count % 10 == 0:
            await _call(stats, client.fetch_balance(), CircuitBreakerOpenError,
                        RateLimitExceededError)
        if count % 10 == 0 and stats.last_price is not None:
            side = "buy" if order_price is None or stats.last_price >= order_price else "sell"
            order = await _call(
                stats, client.create_order(symbol, "market", side, 0.001),
                CircuitBreakerOpenError, RateLimitExceededError,
            )
            if order is not None:
                stats.orders += 1
                order_price = stats.last_price
        try:
            await asyncio.wait_for(stop.wait(), tick)
        except asyncio.TimeoutError:
            pass


async def _call(
    stats: BotStats,
    call: Any,
    breaker_open: type[BaseException],
    limited: type[BaseException],
) -> Any:
    stats.calls += 1
    try:
        result = await call
    except breaker_open as exc:
        stats.rejected += 1
        stats.errors[type(exc).__name__] += 1
        return None
    except limited as exc:
        stats.limited += 1
        stats.errors[type(exc).__name__] += 1
        return None
    except Exception as exc:
        stats.failed += 1
        stats.errors[type(exc).__name__] += 1
        _log.debug("demo: %s call failed: %s", stats.exchange, type(exc).__name__)
        return None
    stats.ok += 1
    return result
