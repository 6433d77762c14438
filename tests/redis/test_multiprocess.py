"""Breakers and limiters shared across real processes through a real redis-server."""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Iterator
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

import pytest
import redis

from otelres.resilience import BreakerState, RedisBreakerStorage, RedisConnection
from tests.redis import workers
from tests.redis.conftest import RedisServer

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SPAWN = multiprocessing.get_context("spawn")
REPLY_TIMEOUT = 30.0


class Guards:
    """A handle on one guard_worker process."""

    def __init__(self, url: str, **options: Any) -> None:
        self.commands: Any = SPAWN.Queue()
        self.results: Any = SPAWN.Queue()
        self.process: BaseProcess = SPAWN.Process(
            target=workers.guard_worker, args=(url, options, self.commands, self.results)
        )
        self.process.start()

    def ready(self) -> tuple[str, str, str]:
        reply: tuple[str, str, str] = self.results.get(timeout=REPLY_TIMEOUT)
        return reply

    def send(self, *command: Any) -> None:
        self.commands.put(command)

    def reply(self) -> Any:
        return self.results.get(timeout=REPLY_TIMEOUT)

    def ask(self, *command: Any) -> Any:
        self.send(*command)
        return self.reply()

    def stop(self) -> None:
        if self.process.is_alive():
            self.commands.put(("stop",))
            self.process.join(timeout=10)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(timeout=10)


@pytest.fixture(name="start_guards")
def _start_guards() -> Iterator[Any]:
    """Starts guard_worker processes (all stopped at teardown) and waits until they are ready."""
    started: list[Guards] = []

    def start(url: str, count: int, **options: Any) -> list[Guards]:
        group = [Guards(url, **options) for _ in range(count)]
        started.extend(group)
        for guards in group:
            assert guards.ready() == ("ready", "RedisBreakerStorage", "RedisTokenBucket")
        return group

    yield start
    for guards in started:
        guards.stop()


def test_four_processes_of_twenty_threads_share_one_budget(redis_server: RedisServer) -> None:
    """4 processes x 20 threads admit at most rate x 5 s + capacity calls, and at least 90 % of it."""
    rate, capacity, duration, procs = 100.0, 20.0, 5.0, 4
    ready, start, results = SPAWN.Queue(), SPAWN.Queue(), SPAWN.Queue()
    processes = [
        SPAWN.Process(
            target=workers.budget_worker,
            args=(redis_server.url, "budget", rate, capacity, 20, duration, ready, start, results),
        )
        for _ in range(procs)
    ]
    for process in processes:
        process.start()
    try:
        for _ in processes:
            ready.get(timeout=REPLY_TIMEOUT)
        t0 = time.time() + 0.3
        for _ in processes:
            start.put(t0)
        reports = [results.get(timeout=REPLY_TIMEOUT) for _ in processes]
    finally:
        for process in processes:
            process.join(timeout=10)
            if process.is_alive():
                process.kill()
    assert [r["errors"] for r in reports] == [[]] * procs
    admitted = sum(r["admitted"] for r in reports)
    ceiling = rate * duration + capacity
    assert admitted <= ceiling
    assert admitted >= 0.9 * ceiling
    assert all(r["admitted"] > 0 for r in reports)  # every process got a share


def test_a_breaker_opened_in_one_process_rejects_in_another_at_once(
    redis_server: RedisServer, start_guards: Any
) -> None:
    """Three failures in process A open the breaker; process B's very next call is rejected."""
    a, b = start_guards(redis_server.url, 2, failure_threshold=3)
    assert b.ask("ok", 1, 0.0) == ["ok"]
    assert a.ask("fail", 1, 0.0) == ["failed"]
    assert b.ask("fail", 1, 0.0) == ["failed"]  # failures count across processes
    assert a.ask("fail", 1, 0.0) == ["failed"]  # the third one trips it
    assert b.ask("ok", 1, 0.0) == ["rejected:open"]
    assert a.ask("ok", 1, 0.0) == ["rejected:open"]


def test_processes_configured_from_a_file_share_state_under_their_prefix_with_ttls(
    redis_binary: str, tmp_path: Path, start_guards: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two processes switched by configure() and [resilience.redis] (password from the environment) share one breaker; every key is under the prefix and expires."""
    server = RedisServer(redis_binary, tmp_path / "auth", password="pw-in-env-789")
    server.start()
    try:
        monkeypatch.setenv("OTELRES_TEST_REDIS_PW", "pw-in-env-789")  # inherited by the workers
        config_file = tmp_path / "config.toml"
        config_file.write_text(
            "[resilience.redis]\n"
            "enabled = true\n"
            f'url = "{server.url}"\n'
            'password_env = "OTELRES_TEST_REDIS_PW"\n'
            'key_prefix = "bots"\n'
            'fail_mode = "closed"\n',
            encoding="utf-8",
        )
        a, b = start_guards(server.url, 2, config=str(config_file), failure_threshold=2)
        assert a.ask("fail", 2, 0.0) == ["failed", "failed"]
        assert b.ask("ok", 1, 0.0) == ["rejected:open"]
        client = redis.Redis.from_url(server.url, password="pw-in-env-789")
        keys = sorted(key.decode() for key in client.scan_iter())
        assert keys == ["bots:breaker:shared", "bots:bucket:shared"]
        assert all(client.pttl(key) > 0 for key in keys)
        client.close()
    finally:
        server.stop()


def test_the_half_open_probe_limit_holds_across_processes(
    redis_server: RedisServer, start_guards: Any
) -> None:
    """With half_open_max_calls=2, 4 processes x 5 concurrent calls get exactly 2 probes through."""
    group = start_guards(
        redis_server.url,
        4,
        failure_threshold=1,
        reset_timeout=2.0,
        half_open_max_calls=2,
        success_threshold=2,
    )
    assert group[0].ask("fail", 1, 0.0) == ["failed"]
    assert group[1].ask("ok", 1, 0.0) == ["rejected:open"]
    time.sleep(2.1)
    for guards in group:
        guards.send("ok", 5, 2.5)  # probes take long enough for every call to arrive meanwhile
    outcomes = [outcome for guards in group for outcome in guards.reply()]
    assert sorted(outcomes) == ["ok"] * 2 + ["rejected:half_open"] * 18
    storage = RedisBreakerStorage("shared", RedisConnection(redis_server.url))
    assert storage.state is BreakerState.CLOSED  # two successful probes closed it


@pytest.mark.parametrize("fail_mode", ["open", "closed"])
def test_redis_killed_mid_run(own_redis_server: RedisServer, start_guards: Any, fail_mode: str) -> None:
    """Killing Redis mid-run applies the fail mode without long calls; after a restart, state is shared again."""
    socket_timeout = 0.2
    a, b = start_guards(
        own_redis_server.url,
        2,
        fail_mode=fail_mode,
        socket_timeout=socket_timeout,
        reconnect_interval=0.3,
        failure_threshold=2,
    )
    for guards in (a, b):
        guards.send("loop", 2.5)
    time.sleep(0.6)
    own_redis_server.kill()
    time.sleep(1.0)
    own_redis_server.start()
    reports = [a.reply(), b.reply()]
    for report in reports:
        counts = report["counts"]
        assert not [k for k in counts if k.startswith("error:")], counts
        assert report["longest"] < socket_timeout + 0.4, report  # redis-py retries: seconds
        assert counts.get("ok", 0) > 50  # before the kill and after the restart
        if fail_mode == "open":
            assert set(counts) == {"ok"}, counts  # the outage never stopped the calls
        else:
            rejected = counts.get("breaker_rejected", 0) + counts.get("limiter_rejected", 0)
            assert rejected > 10, counts  # during the outage nothing went out unguarded
    # Shared again: failures in A trip the breaker that B reads.
    assert a.ask("fail", 2, 0.0) == ["failed", "failed"]
    assert b.ask("ok", 1, 0.0) == ["rejected:open"]
