"""A real ``redis-server`` for the Redis tests: started on 127.0.0.1 and a free port.

The server keeps nothing on disk (no RDB snapshots, no AOF) and runs in a temporary
directory. Tests that kill Redis on purpose use :func:`RedisServer.kill` and
:func:`RedisServer.start` to bring it back on the same port.
"""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from otelres.resilience import RedisConnection
from tests.conftest import free_port, require_binary


class RedisServer:
    """One ``redis-server`` process this test session owns."""

    def __init__(
        self, binary: str, directory: Path, port: int | None = None, password: str | None = None
    ) -> None:
        self.binary = binary
        self.directory = directory
        self.port = port or free_port()
        self.password = password
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:<port>/0``."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> None:
        """Start the server (on the same port as before, after a kill) and wait until it answers PING."""
        if self.process is not None and self.process.poll() is None:
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        log = self.directory / "redis.log"
        self.process = subprocess.Popen(
            [
                self.binary,
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.directory),
                "--logfile",
                str(log),
                "--daemonize",
                "no",
                "--protected-mode",
                "no",
                "--databases",
                "1",
                *(["--requirepass", self.password] if self.password else []),
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd=self.directory,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                text = log.read_text(errors="replace") if log.exists() else ""
                raise RuntimeError(f"redis-server exited with {self.process.returncode}: {text[-2000:]}")
            if self._answers_ping():
                return
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"redis-server did not answer on port {self.port} within {timeout} s")

    def _answers_ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith((b"+PONG", b"-NOAUTH"))
        except OSError:
            return False

    def kill(self) -> None:
        """Kill the server at once (SIGKILL), as a crash or an OOM kill would."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL if it lingers)."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)

    def flush(self) -> None:
        """Remove every key (between tests sharing the session server)."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=2) as sock:
            if self.password:
                sock.sendall(f"AUTH {self.password}\r\n".encode())
                sock.recv(16)
            sock.sendall(b"FLUSHALL\r\n")
            reply = sock.recv(16)
        assert reply.startswith(b"+OK"), reply


@pytest.fixture(name="redis_binary", scope="session")
def _redis_binary() -> str:
    return require_binary("redis-server")


@pytest.fixture(name="session_redis", scope="session")
def _session_redis(redis_binary: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(redis_binary, tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(name="redis_server")
def _redis_server(session_redis: RedisServer) -> RedisServer:
    """The session's redis-server, emptied for this test."""
    session_redis.start()  # a test that killed its own server never touches this one
    session_redis.flush()
    return session_redis


@pytest.fixture(name="own_redis_server")
def _own_redis_server(redis_binary: str, tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of this test alone, which the test may kill and restart."""
    server = RedisServer(redis_binary, tmp_path / "redis")
    server.start()
    yield server
    server.stop()


@pytest.fixture(name="conns")
def _conns(redis_server: RedisServer) -> Iterator[list[RedisConnection]]:
    """Three connections to the emptied session server (key prefix ``t``), standing for three processes."""
    conns = [RedisConnection(redis_server.url, key_prefix="t") for _ in range(3)]
    yield conns
    for conn in conns:
        conn.close()


@pytest.fixture(name="conn")
def _conn(conns: list[RedisConnection]) -> RedisConnection:
    """One connection to the emptied session server (key prefix ``t``)."""
    return conns[0]
