"""The Redis connection behind shared breakers and limiters: short timeouts, outages, reconnects.

:class:`RedisConnection` wraps one redis-py client (and one asyncio client per event
loop) so that a guarded call can never hang on Redis and never sees a Redis error:

* every command has a short socket timeout and a short connect timeout, and redis-py's
  own retries are off (recent redis-py retries up to ten times with back-off by default,
  which would turn a 0.25 s timeout into seconds of waiting);
* when Redis fails (refused, reset, timed out), the connection is marked down and
  :class:`RedisUnavailableError` is raised; for the next ``reconnect_interval`` seconds
  every call raises it at once without touching the network, then one call tries again.
  The components using the connection turn that error into their fail mode (fall back to
  local state, or reject);
* a warning is logged once when Redis goes away and once when it answers again, never per
  call; the observable gauge ``otelres.redis.available`` says which it is right now.

``redis`` is an optional dependency (``pip install 'otelres[redis]'``), imported the
first time a connection is used, never when ``otelres`` is imported.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol
from urllib.parse import urlsplit

from otelres import _otel
from otelres._redis_url import check_url as _check_url
from otelres._redis_url import redact as _redact

if TYPE_CHECKING:
    from opentelemetry.metrics import CallbackOptions, Meter, MeterProvider, Observation
    from redis import Redis
    from redis.asyncio import Redis as AsyncRedis

    from otelres.config import RedisSettings
    from otelres.resilience._redis_scripts import LuaScript

__all__ = [
    "UNAVAILABLE",
    "FailMode",
    "RedisConnection",
    "RedisGuardState",
    "RedisUnavailableError",
    "UsesRedis",
    "count_of",
]

FailMode = Literal["open", "closed"]
FAIL_MODES: tuple[FailMode, ...] = ("open", "closed")

_log = logging.getLogger("otelres")

# The same refused command (OOM, READONLY, WRONGTYPE) is logged at most this often.
_REFUSAL_LOG_INTERVAL = 60.0

# Constructor argument -> key of [resilience.redis], for errors about a configuration file.
_SETTING_OF = {
    "socket_timeout": "socket_timeout_seconds",
    "connect_timeout": "connect_timeout_seconds",
    "reconnect_interval": "reconnect_interval_seconds",
}


def count_of(counter: itertools.count[int]) -> int:
    """How many times ``next()`` was called on *counter* (read without advancing it)."""
    # itertools.count is bumped atomically in C: no lock and no lost updates between threads.
    return int(repr(counter)[6:-1])


class RedisUnavailableError(Exception):
    """Redis could not answer (down, unreachable, too slow, or refused the command).

    Raised by :meth:`RedisConnection.run` to the shared-state components, which apply
    their fail mode; the application sees it only if it calls the connection itself.
    """


class RedisConnection:
    """One Redis server used for shared resilience state, with outage handling.

    Build it from ``[resilience.redis]`` with :meth:`from_settings`, or directly::

        conn = RedisConnection("redis://redis.internal:6379/0", key_prefix="bots",
                               fail_mode="open", socket_timeout=0.1)

    *password* (if not in the URL) authenticates; it never appears in logs, errors or
    ``repr``. *client* lets you pass a redis-py ``Redis`` you configured yourself (TLS, Sentinel,
    credentials providers); then its timeouts and retries are yours to choose, and
    *url* only names the server in logs. *async_client_factory* does the same for
    asyncio: it is called once per event loop and must return a ``redis.asyncio.Redis``.

    *fail_mode* and *state_cache_seconds* are the defaults of the breaker storages and
    token buckets built on this connection (each may override them).

    Async limiters use an asyncio client per event loop; ``await conn.aclose()`` before a
    loop ends closes its connections (:meth:`close` closes the blocking client's).
    """

    __slots__ = (
        "__weakref__",
        "_async_clients",
        "_async_factory",
        "_client",
        "_down_since",
        "_down_until",
        "_lock",
        "_password",
        "_refusal",
        "_refusal_quiet_until",
        "connect_timeout",
        "fail_mode",
        "key_prefix",
        "reconnect_interval",
        "socket_timeout",
        "state_cache_seconds",
        "url",
    )

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        key_prefix: str = "otelres",
        fail_mode: FailMode = "open",
        socket_timeout: float = 0.25,
        connect_timeout: float = 0.25,
        reconnect_interval: float = 1.0,
        state_cache_seconds: float = 0.0,
        password: str | None = None,
        client: Redis | None = None,
        async_client_factory: Callable[[], AsyncRedis] | None = None,
        meter_provider: MeterProvider | None = None,
    ) -> None:
        if fail_mode not in FAIL_MODES:
            raise ValueError(f"fail_mode must be 'open' or 'closed'; got {fail_mode!r}")
        for arg, value in (
            ("socket_timeout", socket_timeout),
            ("connect_timeout", connect_timeout),
            ("reconnect_interval", reconnect_interval),
        ):
            if not value > 0:
                raise ValueError(f"{arg} must be > 0 seconds; got {value!r}")
        if not state_cache_seconds >= 0:
            raise ValueError(f"state_cache_seconds must be >= 0; got {state_cache_seconds!r}")
        if not key_prefix or any(c.isspace() for c in key_prefix):
            raise ValueError(f"key_prefix must be a non-empty word without spaces; got {key_prefix!r}")
        if client is None:
            _check_url(url)
        self.url = url
        self.key_prefix = key_prefix
        self.fail_mode: FailMode = fail_mode
        self.socket_timeout = float(socket_timeout)
        self.connect_timeout = float(connect_timeout)
        self.reconnect_interval = float(reconnect_interval)
        self.state_cache_seconds = float(state_cache_seconds)
        self._password = password
        self._client = client
        self._async_factory = async_client_factory
        # Not weak-keyed: a client refers to its loop, so a weak key would never die anyway.
        # Entries leave when their loop shuts down (see _LoopClient) or is found closed.
        self._async_clients: dict[asyncio.AbstractEventLoop, _LoopClient] = {}
        self._lock = threading.Lock()
        # 0.0: up. Otherwise the monotonic time before which calls fail fast.
        self._down_until = 0.0
        self._down_since = 0.0
        self._refusal = ""
        self._refusal_quiet_until = 0.0
        _CONNECTIONS.add(self, meter_provider)

    @classmethod
    def from_settings(
        cls, settings: RedisSettings, *, meter_provider: MeterProvider | None = None
    ) -> RedisConnection:
        """The connection ``[resilience.redis]`` describes (whether or not ``enabled`` is set).

        With ``password_env`` set, the password is read from that environment variable;
        a ``ValueError`` names the key and the variable when it is not set.
        """
        password = None
        if settings.password_env:
            password = os.environ.get(settings.password_env)
            if not password:
                raise ValueError(
                    f"resilience.redis.password_env: the environment variable "
                    f"{settings.password_env!r} is not set (it should hold the Redis password)"
                )
        try:
            return cls(
                settings.url,
                key_prefix=settings.key_prefix,
                fail_mode=settings.fail_mode,
                socket_timeout=settings.socket_timeout_seconds,
                connect_timeout=settings.connect_timeout_seconds,
                reconnect_interval=settings.reconnect_interval_seconds,
                state_cache_seconds=settings.state_cache_seconds,
                password=password,
                meter_provider=meter_provider,
            )
        except ValueError as exc:
            # The constructor names its argument first ("url must ..."); say which key of
            # [resilience.redis] that is, since the user wrote a file, not a call.
            argument = str(exc).split(" ", 1)[0]
            raise ValueError(f"resilience.redis.{_SETTING_OF.get(argument, argument)}: {exc}") from None

    # ------------------------------------------------------------------ clients
    @property
    def client(self) -> Redis:
        """The synchronous redis-py client (created on first use)."""
        client = self._client
        if client is None:
            with self._lock:
                if self._client is None:
                    self._client = self._make_client()
                client = self._client
        return client

    def _make_client(self) -> Redis:
        """A redis-py client with this connection's timeouts and without client-side retries.

        redis-py reconnects a pooled connection by itself on the next command after one
        broke, which is all the reconnecting shared state needs; its retries would only
        stretch the time a guarded call waits on a dead server.
        """
        try:
            import redis
            from redis.backoff import NoBackoff
            from redis.retry import Retry
        except ImportError:  # pragma: no cover - the extra is installed in the dev setup
            raise ImportError(
                "shared breaker and limiter state needs redis-py: pip install 'otelres[redis]'"
            ) from None
        # A password in the URL wins over this one (redis-py applies URL options last).
        return redis.Redis.from_url(
            self.url,
            password=self._password,
            socket_timeout=self.socket_timeout,
            socket_connect_timeout=self.connect_timeout,
            retry=Retry(NoBackoff(), 0),
        )

    def async_client(self) -> AsyncRedis:
        """The asyncio client of the running event loop (one per loop, created on first use).

        Its connections are closed when the loop shuts down (``asyncio.run()`` and
        pytest-asyncio finalize async generators then, which is the hook used), so a
        program that runs one loop after another keeps no sockets of the finished ones.
        """
        return self._loop_client().client

    def _loop_client(self) -> _LoopClient:
        """The running loop's :class:`_LoopClient`, created (and old loops' dropped) on first use."""
        loop = asyncio.get_running_loop()
        entry = self._async_clients.get(loop)
        if entry is None:
            # list(): a snapshot, since threads running loops of their own add entries too.
            for old in list(self._async_clients):
                if old.is_closed():
                    # Closed without finalizing async generators (a bare loop.close()):
                    # the sockets are freed when the garbage collector takes the client.
                    self._async_clients.pop(old, None)
            client = self._async_factory() if self._async_factory else self._make_async_client()
            entry = self._async_clients[loop] = _LoopClient(client, loop, self._async_clients)
        return entry

    def _make_async_client(self) -> AsyncRedis:
        """The asyncio twin of :meth:`_make_client` (same timeouts, no retries)."""
        from redis.asyncio import Redis as AsyncRedis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        return AsyncRedis.from_url(
            self.url,
            password=self._password,
            socket_timeout=self.socket_timeout,
            socket_connect_timeout=self.connect_timeout,
            retry=Retry(NoBackoff(), 0),
        )

    def key(self, kind: str, name: str) -> str:
        """The Redis key of component *name* of *kind*: ``<key_prefix>:<kind>:<name>``."""
        return f"{self.key_prefix}:{kind}:{name}"

    # ------------------------------------------------------------------ running scripts
    @property
    def available(self) -> bool:
        """False while Redis is considered down (after a failure, until a call succeeds)."""
        return self._down_until == 0.0

    def retry_in(self) -> float:
        """Seconds until a call may try Redis again (0 while it is up or a retry is due)."""
        down_until = self._down_until
        return max(0.0, down_until - time.monotonic()) if down_until else 0.0

    def run(self, script: LuaScript, key: str, *args: Any) -> Any:
        """Run *script* on *key*; raise :class:`RedisUnavailableError` instead of any Redis error."""
        if self._down_until and not self._may_try_again():
            raise RedisUnavailableError(f"Redis at {_redact(self.url)} is unavailable")
        try:
            reply = script.run(self.client, key, *args)
        except Exception as exc:
            raise self._failed(exc) from exc
        if self._down_until:
            self._recovered()
        return reply

    async def run_async(self, script: LuaScript, key: str, *args: Any) -> Any:
        """:meth:`run` on the asyncio client of the running loop, never blocking it."""
        if self._down_until and not self._may_try_again():
            raise RedisUnavailableError(f"Redis at {_redact(self.url)} is unavailable")
        entry = self._loop_client()
        try:
            if not entry.armed:
                await entry.arm()
            reply = await script.run_async(entry.client, key, *args)
        except Exception as exc:
            raise self._failed(exc) from exc
        if self._down_until:
            self._recovered()
        return reply

    def ping(self) -> bool:
        """Ask Redis for a PONG now, within the timeouts; True when it answered.

        For start-up checks and health checks. Unlike guarded calls it always tries the
        network, even inside the reconnect interval, and its answer updates
        :attr:`available` (and logs the outage or the recovery) like any other command.
        """
        try:
            self.client.ping()
        except Exception as exc:
            self._failed(exc)
            return False
        if self._down_until:
            self._recovered()
        return True

    def _may_try_again(self) -> bool:
        """Whether this call is the one that probes Redis again after an outage."""
        now = time.monotonic()
        with self._lock:
            if now < self._down_until:
                return False
            # Claim the probe: the others keep failing fast until it has an answer.
            self._down_until = now + self.reconnect_interval
            return True

    def _failed(self, exc: Exception) -> RedisUnavailableError:
        """The error for a failed command; a bug that is not a Redis error is raised as is."""
        from redis.exceptions import ConnectionError, RedisError, ResponseError, TimeoutError

        if not isinstance(exc, RedisError):
            raise exc
        if isinstance(exc, ResponseError) and not isinstance(exc, ConnectionError):
            # The server answered (wrong type at our key, out of memory, read-only
            # replica): not an outage to wait out, but the call still gets the fail mode.
            self._log_refusal(str(exc))
            return RedisUnavailableError(f"Redis at {_redact(self.url)} refused the command: {exc}")
        now = time.monotonic()
        with self._lock:
            first = self._down_until == 0.0
            self._down_until = now + self.reconnect_interval
            if first:
                self._down_since = now
        if first:
            what = "timed out" if isinstance(exc, TimeoutError) else type(exc).__name__
            _log.warning(
                "otelres: Redis at %s is unavailable (%s); shared breakers and limiters "
                "use their fail mode until it answers again",
                _redact(self.url),
                what,
            )
        return RedisUnavailableError(f"Redis at {_redact(self.url)} is unavailable: {type(exc).__name__}")

    def _log_refusal(self, text: str) -> None:
        """Log a refused command, but the same refusal at most once a minute.

        A refusal usually repeats on every call (a full Redis refuses every write), and
        a guarded call must never cost an error line of its own.
        """
        now = time.monotonic()
        with self._lock:
            if text == self._refusal and now < self._refusal_quiet_until:
                return
            self._refusal = text
            self._refusal_quiet_until = now + _REFUSAL_LOG_INTERVAL
        _log.error(
            "otelres: Redis at %s refused a command: %s (guards use their fail mode; "
            "repeats of this refusal are logged at most once a minute)",
            _redact(self.url),
            text,
        )

    def _recovered(self) -> None:
        """Mark Redis up again after a successful command, and say so once in the log."""
        with self._lock:
            if self._down_until == 0.0:
                return
            outage = time.monotonic() - self._down_since
            self._down_until = 0.0
        _log.warning(
            "otelres: Redis at %s answers again after %.1f s; shared state is back in use",
            _redact(self.url),
            outage,
        )

    # ------------------------------------------------------------------ lifecycle
    def close(self) -> None:
        """Close the synchronous client's connections (asyncio clients: :meth:`aclose`)."""
        client = self._client
        if client is not None:
            client.close()

    async def aclose(self) -> None:
        """Close the asyncio client of the running event loop now, if it has one."""
        entry = self._async_clients.pop(asyncio.get_running_loop(), None)
        if entry is not None:
            await entry.close()

    def __repr__(self) -> str:
        return (
            f"RedisConnection({_redact(self.url)!r}, key_prefix={self.key_prefix!r}, "
            f"fail_mode={self.fail_mode!r})"
        )


class _LoopClient:
    """An asyncio Redis client bound to one event loop, closed when that loop shuts down.

    asyncio has no "loop closing" callback, but ``loop.shutdown_asyncgens()`` (which
    ``asyncio.run()`` and pytest-asyncio call before closing a loop) closes every async
    generator started in it while the loop still runs. :meth:`arm` starts one whose
    ``finally`` closes the client, so its sockets go with the loop instead of leaking.
    """

    __slots__ = ("_clients", "_closed", "_closer", "_loop", "armed", "client")

    def __init__(
        self,
        client: AsyncRedis,
        loop: asyncio.AbstractEventLoop,
        clients: dict[asyncio.AbstractEventLoop, _LoopClient],
    ) -> None:
        self.client = client
        self.armed = False
        self._closed = False
        self._loop = loop
        self._clients = clients
        self._closer = self._close_at_shutdown()

    async def _close_at_shutdown(self) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await self.close()

    async def arm(self) -> None:
        """Start the closing generator in the running loop (once; the loop then holds it)."""
        self.armed = True
        await self._closer.__anext__()

    async def close(self) -> None:
        """Close the client's connections and forget it (once; later calls do nothing)."""
        if self._clients.get(self._loop) is self:
            del self._clients[self._loop]
        if not self._closed:
            self._closed = True
            await self.client.aclose()


Points = Iterable[tuple[int, dict[str, str | int]]]


def _observable(
    create: Callable[..., object], name: str, points: Callable[[], Points], *, unit: str, description: str
) -> None:
    """Create observable instrument *name* with *create*, publishing ``points()`` at collection.

    A failure while collecting is logged and yields no points: telemetry never breaks the app.
    """

    def callback(options: CallbackOptions) -> Iterable[Observation]:
        from opentelemetry.metrics import Observation

        return _otel.safe_observations(
            lambda: (Observation(value, attrs) for value, attrs in points()), name
        )

    create(name, [callback], unit=unit, description=description)


def _server(conn: RedisConnection) -> dict[str, str | int]:
    """``server.address`` and (for TCP) ``server.port`` of *conn*."""
    parts = urlsplit(conn.url)
    attrs: dict[str, str | int] = {"server.address": parts.hostname or parts.path}
    if parts.port:
        attrs["server.port"] = parts.port
    return attrs


def _install(meter: Meter, live: Callable[[], list[RedisConnection]]) -> None:
    """Create ``otelres.redis.available`` on *meter*, reading the live connections."""
    _observable(
        meter.create_observable_gauge,
        "otelres.redis.available",
        lambda: ((1 if conn.available else 0, _server(conn)) for conn in live()),
        unit="1",
        description=(
            "1 while the Redis server holding shared breaker and limiter state answers, "
            "0 while it is considered down."
        ),
    )


_CONNECTIONS: _otel.ObservedSet[RedisConnection] = _otel.ObservedSet(_install)


class UsesRedis(Protocol):
    """A breaker storage or token bucket that keeps its state in Redis (for telemetry)."""

    guard_kind: ClassVar[str]
    name: str
    fail_mode: FailMode

    @property
    def unavailable_calls(self) -> int:
        """Guarded calls decided without Redis so far."""
        ...


class RedisGuardState:
    """What the breaker storage and the token bucket in Redis share: name, key, fail mode, count.

    A subclass names its key kind (``<key_prefix>:<key_kind>:<name>``) and its
    ``guard.kind`` for ``otelres.redis.unavailable``, validates its own arguments, then
    calls this ``__init__``; it counts each call decided without Redis with
    ``next(self._unavailable_count)``.
    """

    __slots__ = ("__weakref__", "_conn", "_key", "_unavailable_count", "fail_mode", "name")

    guard_kind: ClassVar[str]
    key_kind: ClassVar[str]

    def __init__(
        self,
        name: str,
        connection: RedisConnection,
        fail_mode: FailMode | None,
        meter_provider: MeterProvider | None,
    ) -> None:
        mode = connection.fail_mode if fail_mode is None else fail_mode
        if mode not in FAIL_MODES:
            raise ValueError(f"fail_mode must be 'open' or 'closed'; got {mode!r}")
        self.name = name
        self.fail_mode: FailMode = mode
        self._conn = connection
        # Import redis-py and build the client now, not in the first guarded call.
        _ = connection.client
        self._key = connection.key(self.key_kind, name)
        self._unavailable_count = itertools.count()
        UNAVAILABLE.add(self, meter_provider)

    @property
    def key(self) -> str:
        """The Redis key holding this guard's state."""
        return self._key

    @property
    def unavailable_calls(self) -> int:
        """Calls decided without Redis (fail mode); published as ``otelres.redis.unavailable``."""
        return count_of(self._unavailable_count)


def _install_unavailable(meter: Meter, live: Callable[[], list[UsesRedis]]) -> None:
    """Create ``otelres.redis.unavailable`` on *meter*, reading the live storages and buckets."""
    _observable(
        meter.create_observable_counter,
        "otelres.redis.unavailable",
        lambda: (
            (guard.unavailable_calls, {"guard.kind": guard.guard_kind, "guard.name": guard.name,
                                       "redis.fail_mode": guard.fail_mode})
            for guard in live()
        ),
        unit="{call}",
        description=(
            "Guarded calls decided without Redis because it was unreachable: on local "
            "state (fail_mode open) or rejected (fail_mode closed)."
        ),
    )


UNAVAILABLE: _otel.ObservedSet[UsesRedis] = _otel.ObservedSet(_install_unavailable)
"""The breaker storages and token buckets published by ``otelres.redis.unavailable``."""
