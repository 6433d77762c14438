"""The live status page: breakers, rate limiters, retries, health lights and backup freshness.

Add it to the probe server of :mod:`otelres.health` (the one behind ``otelres serve``)::

    from otelres.health import HealthServer
    from otelres.status_page import add_status_page

    server = HealthServer(port=8080)
    add_status_page(server)          # / is the page, /api/status its JSON document
    server.start()

The page is package data served by that server (no CDN, works offline) and refreshes
itself from ``/api/status``. :class:`StatusCollector` decides what it shows; the same
document feeds ``otelres demo``'s terminal table. See docs/DEMO.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from otelres._lazy import lazy_exports

if TYPE_CHECKING:
    from otelres.status_page._collector import SCHEMA_VERSION, StatusCollector
    from otelres.status_page._routes import add_status_page

__all__ = ["SCHEMA_VERSION", "StatusCollector", "add_status_page"]

_LAZY = {"SCHEMA_VERSION": "_collector", "StatusCollector": "_collector", "add_status_page": "_routes"}
__getattr__, __dir__ = lazy_exports(__name__, _LAZY, globals())
