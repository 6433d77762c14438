"""The demo in the terminal: a table redrawn in place on a terminal, plain lines otherwise."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from otelres._demo._bot import BotStats

__all__ = ["Display", "LiveTable", "PlainLines", "View", "render_table", "status_line"]

_COLOURS = {"green": "32", "yellow": "33", "red": "31", "grey": "90", "bold": "1", "dim": "2"}
_STATUS_COLOUR = {"green": "green", "yellow": "yellow", "red": "red"}


@dataclass
class View:
    """Everything one frame shows."""

    elapsed: float
    duration: float
    phase: str
    phase_number: int
    phases: int
    url: str
    snapshot: dict[str, Any]
    bots: Sequence[BotStats]
    events: Sequence[tuple[float, str]] = field(default_factory=list)


def _paint(text: str, colour: str | None, enabled: bool) -> str:
    if not enabled or colour is None:
        return text
    return f"\x1b[{_COLOURS[colour]}m{text}\x1b[0m"


def _cell(text: str, width: int, colour: str | None, enabled: bool) -> str:
    """*text* padded to *width* columns, then coloured (escape codes take no columns)."""
    return _paint(text.ljust(width), colour, enabled)


def render_table(view: View, *, colour: bool = False, events: int = 6, width: int = 120) -> list[str]:
    """The lines of one frame of the live table (without cursor movement).

    Sections come in order of importance (breakers, health, limiters, retries, the bot,
    recent events), so a short terminal cuts the least useful ones. Free text (check
    messages, events) is shortened to fit *width* columns.
    """
    snap = view.snapshot
    calm = view.phase in ("healthy", "recovery")
    lines = [
        _paint("otelres demo", "bold", colour)
        + f"  phase {view.phase_number}/{view.phases} "
        + _paint(f"{view.phase:<12}", "green" if calm else "yellow", colour)
        + f" {view.elapsed:5.1f} s of {view.duration:.0f} s   {view.url}/",
    ]
    for section in (_breakers, _health, _limiters, _retries):
        lines += ["", *section(snap, colour, width)]
    lines += ["", *_bots(view.bots, colour)]
    if view.events:
        lines += ["", _paint("RECENT EVENTS", "dim", colour)]
        for at, text in list(view.events)[-events:]:
            lines.append(_shorten(f"  {at:5.1f} s  {text}", width))
    return lines


def _breakers(snap: dict[str, Any], colour: bool, width: int) -> list[str]:
    lines = [_paint(f"{'BREAKER':<10}{'STATE':<11}{'FAIL RATE':>10}{'CALLS':>8}{'FAILED':>8}"
                    f"{'REJECTED':>10}{'TRANSITIONS':>13}", "dim", colour)]
    for breaker in snap.get("breakers", []):
        state = str(breaker["state"]).replace("_", "-").upper()
        lines.append(
            f"{breaker['name']:<10}"
            + _cell(state, 11, breaker["colour"] if breaker["colour"] != "grey" else None, colour)
            + f"{breaker['failure_rate'] * 100:>9.0f}%{breaker['calls']:>8}{breaker['failures']:>8}"
            f"{breaker['rejected']:>10}{breaker['transition_count']:>13}"
        )
    return lines


def _health(snap: dict[str, Any], colour: bool, width: int) -> list[str]:
    health = snap.get("health") or {}
    overall = health.get("overall") or "unknown"
    lines = [_paint("HEALTH", "dim", colour) + "    overall "
             + _paint(overall.upper(), _STATUS_COLOUR.get(overall), colour)]
    for check in health.get("checks", []):
        status = check["status"] or "-"
        recent = check["history"][-12:]
        if colour:
            trail = "".join(_paint("●", _STATUS_COLOUR.get(h["status"]), True) for h in recent)
        else:
            trail = "".join(h["status"][0].upper() for h in recent)
        trail += " " * (12 - len(recent))  # pad by what shows: escape codes take no columns
        lines.append(
            f"  {check['name']:<18}" + _cell(status.upper(), 7, _STATUS_COLOUR.get(status), colour)
            + f" {trail}  " + _shorten(check["message"], max(20, width - 43))
        )
    return lines


def _limiters(snap: dict[str, Any], colour: bool, width: int) -> list[str]:
    lines = [_paint(f"{'LIMITER':<10}{'TOKENS':>11}{'RATE/S':>10}{'GRANTED':>9}{'WAITED':>8}"
                    f"{'REJECTED':>10}", "dim", colour)]
    for limiter in snap.get("limiters", []):
        available = limiter["available"]
        tokens = "?" if available is None else f"{max(0.0, available):.1f}/{limiter['capacity']:.0f}"
        lines.append(
            f"{limiter['name']:<10}{tokens:>11}{limiter['rate']:>10.1f}"
            f"{limiter['acquired'] + limiter['waited']:>9}{limiter['waited']:>8}{limiter['rejected']:>10}"
        )
    return lines


def _retries(snap: dict[str, Any], colour: bool, width: int) -> list[str]:
    lines = [_paint(f"{'RETRY':<10}{'CALLS':>11}{'OK 1ST':>10}{'OK RETRIED':>12}{'FAILED':>8}",
                    "dim", colour)]
    for retry in snap.get("retries", []):
        failed = retry["failed_with_retry"] + retry["failed_without_retry"]
        lines.append(
            f"{retry['name']:<10}{retry['calls']:>11}{retry['success_without_retry']:>10}"
            f"{retry['success_with_retry']:>12}{failed:>8}"
        )
    return lines


def _bots(bots: Sequence[BotStats], colour: bool) -> list[str]:
    lines = [_paint(f"{'BOT':<10}{'CALLS':>11}{'OK':>10}{'FAILED':>9}{'REJECTED':>10}"
                    f"{'ORDERS':>8}{'LAST PRICE':>12}", "dim", colour)]
    for bot in bots:
        price = "-" if bot.last_price is None else f"{bot.last_price:,.1f}"
        lines.append(
            f"{bot.exchange:<10}{bot.calls:>11}{bot.ok:>10}{bot.failed:>9}"
            f"{bot.rejected + bot.limited:>10}{bot.orders:>8}{price:>12}"
        )
    return lines


def status_line(view: View) -> str:
    """One plain line summing up the state (for logs and pipes)."""
    snap = view.snapshot
    breakers = " ".join(f"{b['name']}={b['state']}" for b in snap.get("breakers", []))
    health = (snap.get("health") or {}).get("overall") or "unknown"
    calls = sum(b.calls for b in view.bots)
    failed = sum(b.failed for b in view.bots)
    rejected = sum(b.rejected + b.limited for b in view.bots)
    retried = sum(r["success_with_retry"] + r["failed_with_retry"] for r in snap.get("retries", []))
    return (
        f"[{view.elapsed:5.1f}s] {view.phase:<12} {breakers} health={health} "
        f"calls={calls} failed={failed} rejected={rejected} retried={retried}"
    )


def _shorten(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


class Display:
    """Where frames and events go; see :class:`LiveTable` and :class:`PlainLines`."""

    def update(self, view: View) -> None:
        raise NotImplementedError

    def event(self, elapsed: float, text: str) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Leave the terminal as it was."""


class LiveTable(Display):
    """Redraws the table in place on a terminal (ANSI escapes; no extra dependency)."""

    def __init__(self, stream: IO[str], *, colour: bool | None = None) -> None:
        self.stream = stream
        self.colour = _colour_wanted(stream) if colour is None else colour
        self._height = 0
        # Hide the cursor, and clip long lines instead of wrapping them: a wrapped line
        # would take two rows and throw off the redraw.
        self.stream.write("\x1b[?25l\x1b[?7l")

    def update(self, view: View) -> None:
        size = shutil.get_terminal_size((120, 40))
        # A frame taller than the terminal cannot be redrawn in place: cut the last sections.
        lines = render_table(view, colour=self.colour, width=size.columns)[: max(1, size.lines - 1)]
        out = []
        if self._height:
            out.append(f"\x1b[{self._height}F")  # back to the first line of the last frame
        out.extend(f"{line}\x1b[K\n" for line in lines)
        out.append("\x1b[J")  # clear what the last frame left below
        self.stream.write("".join(out))
        self.stream.flush()
        self._height = len(lines)

    def event(self, elapsed: float, text: str) -> None:
        """Events show in the table's RECENT EVENTS list."""

    def close(self) -> None:
        self.stream.write("\x1b[?7h\x1b[?25h\n")
        self.stream.flush()


class PlainLines(Display):
    """Plain lines for pipes and logs: every event as it happens, a status line every *every* s."""

    def __init__(self, stream: IO[str], *, every: float = 2.0) -> None:
        self.stream = stream
        self.every = every
        self._last = float("-inf")
        self._clock = time.monotonic

    def update(self, view: View) -> None:
        now = self._clock()
        if now - self._last < self.every:
            return
        self._last = now
        self._write(status_line(view))

    def event(self, elapsed: float, text: str) -> None:
        self._write(f"[{elapsed:5.1f}s] {text}")

    def _write(self, line: str) -> None:
        try:
            self.stream.write(line + "\n")
            self.stream.flush()
        except (BrokenPipeError, ValueError):
            pass


def _colour_wanted(stream: IO[str]) -> bool:
    """Colour on a terminal unless ``NO_COLOR`` is set (https://no-color.org) or TERM is dumb."""
    if os.environ.get("NO_COLOR"):
        return False
    if os.environ.get("TERM") == "dumb":
        return False
    return bool(getattr(stream, "isatty", lambda: False)())
