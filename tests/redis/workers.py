"""Worker processes for the cross-process tests (run with the ``spawn`` start method).

Each worker is a separate interpreter that builds its guards through the public API, the
way a bot process would, and reports back over multiprocessing queues.
"""

from __future__ import annotations

import threading
import time
from multiprocessing.queues import Queue
from typing import Any


def budget_worker(
    url: str,
    name: str,
    rate: float,
    capacity: float,
    threads: int,
    duration: float,
    ready: Queue[Any],
    start: Queue[Any],
    results: Queue[Any],
) -> None:
    """Acquire tokens from a shared Redis bucket in *threads* threads until ``t0 + duration``.

    Reports how many acquisitions returned (were admitted) before the end of the window.
    """
    from otelres.resilience import RateLimiter, RedisConnection, RedisTokenBucket

    conn = RedisConnection(url, socket_timeout=2.0, connect_timeout=2.0)
    bucket = RedisTokenBucket(name, conn, rate=rate, capacity=capacity, fail_mode="closed")
    limiter = RateLimiter(name, backend=bucket, mode="wait", max_wait=None)
    bucket.available()  # connect and load the script before the window opens
    ready.put(True)
    t0: float = start.get()
    end = t0 + duration
    admitted = [0] * threads
    errors: list[str] = []

    def run(index: int) -> None:
        time.sleep(max(0.0, t0 - time.time()))
        try:
            while time.time() < end:
                limiter.acquire()
                if time.time() <= end:
                    admitted[index] += 1
        except Exception as exc:  # reported to the test, which fails on it
            errors.append(repr(exc))

    workers = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    results.put({"admitted": sum(admitted), "errors": errors})
    conn.close()


def guard_worker(url: str, options: dict[str, Any], commands: Queue[Any], results: Queue[Any]) -> None:
    """Serve commands against one breaker and one limiter shared through Redis.

    Commands are tuples; each gets one reply on *results*:

    * ``("ok", n_threads, sleep)`` / ``("fail", ...)``: that many concurrent calls through
      the breaker, each sleeping *sleep* seconds and then returning or raising; replies the
      outcomes (``"ok"``, ``"failed"``, ``"rejected:<state>"``);
    * ``("loop", seconds)``: calls through the limiter and the breaker back to back for
      *seconds*; replies the outcome counts and the longest single call;
    * ``("stop",)``.

    With ``options["config"]`` (the path of a ``config.toml``) the process switches to Redis
    the way an application does, through ``otelres.configure()`` and ``[resilience.redis]``;
    otherwise through ``use_redis()`` with a connection built from *url* and *options*.
    """
    from otelres.resilience import (
        CircuitBreaker,
        CircuitBreakerOpenError,
        RateLimiter,
        RateLimitExceededError,
        use_redis,
    )
    from otelres.resilience._redis_client import RedisConnection

    conn: RedisConnection | None = None
    if "config" in options:
        import otelres

        otelres.configure(options["config"])
    else:
        conn = RedisConnection(
            url,
            fail_mode=options.get("fail_mode", "open"),
            socket_timeout=options.get("socket_timeout", 0.25),
            connect_timeout=options.get("socket_timeout", 0.25),
            reconnect_interval=options.get("reconnect_interval", 0.5),
        )
        use_redis(conn)
    breaker = CircuitBreaker(
        options.get("breaker", "shared"),
        failure_threshold=options.get("failure_threshold", 3),
        reset_timeout=options.get("reset_timeout", 30.0),
        half_open_max_calls=options.get("half_open_max_calls", 1),
        success_threshold=options.get("success_threshold", 1),
    )
    limiter = RateLimiter.from_config(
        options.get("limiter", "shared"), rate=options.get("rate", 10_000.0), mode="reject"
    )
    limiter.acquire()  # connect and load the scripts before the test starts timing calls
    breaker.call(lambda: None)
    results.put(("ready", type(breaker.storage).__name__, type(limiter.backend).__name__))

    def one_call(fail: bool, sleep: float) -> str:
        def fn() -> str:
            if sleep:
                time.sleep(sleep)
            if fail:
                raise ConnectionError("exchange down")
            return "ok"

        try:
            return breaker.call(fn)
        except CircuitBreakerOpenError as exc:
            return f"rejected:{exc.state}"
        except ConnectionError:
            return "failed"

    while True:
        command = commands.get()
        if command[0] == "stop":
            if conn is not None:
                conn.close()
            return
        if command[0] in ("ok", "fail"):
            _, count, sleep = command
            outcomes: list[str] = [""] * count

            def call(index: int, out: list[str], fail: bool, sleep: float) -> None:
                out[index] = one_call(fail, sleep)

            threads = [
                threading.Thread(target=call, args=(i, outcomes, command[0] == "fail", sleep))
                for i in range(count)
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            results.put(outcomes)
        elif command[0] == "loop":
            end = time.monotonic() + command[1]
            counts: dict[str, int] = {}
            longest = 0.0
            while time.monotonic() < end:
                start = time.monotonic()
                try:
                    limiter.acquire()
                    outcome = breaker.call(lambda: "ok")
                except CircuitBreakerOpenError:
                    outcome = "breaker_rejected"
                except RateLimitExceededError:
                    outcome = "limiter_rejected"
                except Exception as exc:
                    outcome = f"error:{type(exc).__name__}"
                longest = max(longest, time.monotonic() - start)
                counts[outcome] = counts.get(outcome, 0) + 1
                time.sleep(0.002)
            results.put({"counts": counts, "longest": longest})
