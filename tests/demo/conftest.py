"""Fixtures for the demo and status page tests: a real headless Chromium driven by Playwright."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import require_binary, require_module

# Chromium must stay on this machine: no updates, no sync, no QUIC probes, no first-run pings.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]


@pytest.fixture(name="chromium")
def _chromium() -> Iterator[Any]:
    """A headless Debian Chromium (never a downloaded browser), for one test.

    Not shared wider: Playwright's sync API keeps an event loop running on this thread
    while it is open, which would break later tests that call ``asyncio.run``.
    """
    path = require_binary("chromium")
    sync_playwright = require_module("playwright.sync_api").sync_playwright
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


class PageWatch:
    """A browser page that records console errors and uncaught exceptions."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.errors: list[str] = []
        page.on("console", lambda msg: self.errors.append(msg.text) if msg.type == "error" else None)
        page.on("pageerror", lambda exc: self.errors.append(f"uncaught: {exc}"))


@pytest.fixture(name="page")
def _page(chromium: Any) -> Iterator[PageWatch]:
    """A fresh page at a laptop's viewport, closed after the test."""
    context = chromium.new_context(viewport={"width": 1440, "height": 900})
    try:
        yield PageWatch(context.new_page())
    finally:
        context.close()
