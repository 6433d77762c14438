"""Checking and redacting Redis URLs (``[resilience.redis] url``) without importing redis-py."""

from __future__ import annotations

from urllib.parse import urlsplit

__all__ = ["check_url", "redact"]


def redact(url: str) -> str:
    """*url* without user and password, for logs and errors (``redis://host:port/db``)."""
    parts = urlsplit(url)
    # From the netloc as written, not .hostname/.port: a URL with a bad port is redacted too.
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}{parts.path}"


def check_url(url: str) -> None:
    """Raise a ``ValueError`` starting with ``url`` when redis-py could not use *url* as meant.

    redis-py finds a bad port only when the first client is built, and silently uses
    database 0 for a path it cannot read (``/O`` typed for ``/0``): both are caught here.
    """
    if not url.startswith(("redis://", "rediss://", "unix://")):
        raise ValueError(f"url must start with redis://, rediss:// or unix://; got {redact(url)!r}")
    parts = urlsplit(url)
    try:
        parts.port  # noqa: B018 - parsing the port is the check
    except ValueError:
        raise ValueError(f"url has no valid port (1-65535): {redact(url)!r}") from None
    database = parts.path.strip("/") if parts.scheme != "unix" else ""
    if database and not database.isdigit():
        raise ValueError(f"url must end with a database number (/0); got {redact(url)!r}")
