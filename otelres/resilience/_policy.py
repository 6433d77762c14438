"""Policy: one name, every guard a call needs, composed in one fixed order.

::

    from otelres.resilience import Policy, Retry, RateLimiter, Timeout, get_breaker

    kraken = Policy(
        "kraken",
        breaker=get_breaker("kraken"),
        retry=Retry("kraken", max_attempts=3),
        limiter=RateLimiter("kraken", rate=10),
        timeout=Timeout("kraken", 5.0),
    )

    @kraken
    async def fetch_ticker(symbol): ...

    # or, with everything taken from config.toml:
    from otelres.resilience import policy
    ticker = await policy("kraken").call_async(exchange.fetch_ticker, "BTC/USD")

The order, outermost first, and why:

1. **fallback** — outermost, so it can answer for *every* failure below it: exhausted
   retries, an open breaker, a full bulkhead, a rate-limit rejection.
2. **bulkhead** — one slot per logical call, held across its retries and backoff sleeps,
   so an outage cannot multiply the calls in flight; it refuses before any work is done.
3. **retry** — around everything that is per attempt, so each attempt is admitted by the
   breaker, pays its tokens and gets a fresh timeout.
4. **circuit breaker** — inside retry so that every attempt is counted and a rejection
   (:class:`CircuitBreakerOpenError`) ends the retrying at once; outside the limiter so
   that an open breaker fails fast without spending or waiting for tokens.
5. **rate limiter** — each attempt is one request the server counts, so each pays. A
   limiter rejection is not a failure of the service: the breaker does not count it, and
   the retry around it honours its ``retry_after``. (A limiter *wait* does count towards
   the breaker's slow-call duration when one is configured.)
6. **timeout** — innermost, per attempt, around the function only: the limiter's wait does
   not eat into it, and the breaker sees a timeout (:class:`CallTimeoutError`) as the
   failure it is.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from otelres import _otel
from otelres.resilience import _telemetry as tel
from otelres.resilience._calls import decorate, direct, direct_async
from otelres.resilience._checks import Checker
from otelres.resilience._errors import RateLimitExceededError

if TYPE_CHECKING:
    from opentelemetry.trace import TracerProvider

    from otelres._otel import SpanMode
    from otelres.config import Config
    from otelres.resilience._breaker import CircuitBreaker
    from otelres.resilience._bulkhead import Bulkhead
    from otelres.resilience._fallback import Fallback
    from otelres.resilience._rate_limiter import RateLimiter
    from otelres.resilience._retry import Retry
    from otelres.resilience._timeout import Timeout

__all__ = ["ORDER", "Policy", "policy"]

T = TypeVar("T")
Invoke = Callable[[Callable[..., Any], tuple[Any, ...], dict[str, Any]], Any]

ORDER = ("fallback", "bulkhead", "retry", "breaker", "limiter", "timeout")
"""The order in which a :class:`Policy` applies its guards, outermost first."""


class _Rejected(BaseException):
    """Carries a limiter rejection through the breaker, which must not count it.

    The request was never sent, so it says nothing about the service; the breaker
    ignores ``BaseException`` subclasses that are not ``Exception`` (and gives a half-open
    probe permit back), and the policy re-raises the original error outside it.
    """

    def __init__(self, error: RateLimitExceededError) -> None:
        super().__init__(error)
        self.error = error
        self._otelres_carried = error  # what telemetry names (error.type) instead of _Rejected


class Policy:
    """Composes any of breaker, retry, limiter, fallback, timeout and bulkhead.

    The guards apply in the order of :data:`ORDER` whatever order they are passed in
    (see the module documentation for why). Each call through the limiter takes
    ``cost`` tokens. Usable as a decorator on sync and async functions, and through
    :meth:`call` / :meth:`call_async`. The chain of guards is assembled once, here: a
    call through the policy allocates nothing beyond what each guard needs.

    With span mode ``always`` each call gets an ``otelres.policy`` span (``policy.name``),
    parent of the retry and attempt spans.
    """

    __slots__ = (
        "__weakref__",
        "_invoke",
        "_invoke_async",
        "_mode",
        "_tracer",
        "breaker",
        "bulkhead",
        "cost",
        "fallback",
        "limiter",
        "name",
        "retry",
        "timeout",
    )

    def __init__(
        self,
        name: str,
        *,
        breaker: CircuitBreaker | None = None,
        retry: Retry | None = None,
        limiter: RateLimiter | None = None,
        fallback: Fallback | None = None,
        timeout: Timeout | None = None,
        bulkhead: Bulkhead | None = None,
        cost: float = 1.0,
        span_mode: SpanMode | None = None,
        tracer_provider: TracerProvider | None = None,
    ) -> None:
        _check_guards(
            name,
            breaker=breaker,
            retry=retry,
            limiter=limiter,
            fallback=fallback,
            timeout=timeout,
            bulkhead=bulkhead,
        )
        cost = Checker("Policy", name).positive("cost", cost)
        if limiter is not None and not 0 < cost <= limiter.capacity:
            raise ValueError(
                f"Policy {name!r}: cost must be > 0 and <= the limiter's capacity "
                f"{limiter.capacity:g}; got {cost!r}"
            )
        self.name = name
        self.breaker = breaker
        self.retry = retry
        self.limiter = limiter
        self.fallback = fallback
        self.timeout = timeout
        self.bulkhead = bulkhead
        self.cost = cost
        self._mode: SpanMode | None = span_mode
        self._tracer = _otel.get_tracer(tracer_provider)
        self._invoke = self._build_sync()
        self._invoke_async = self._build_async()

    def replace(self, **changes: Any) -> Policy:
        """A new policy with some guards (or ``cost``) replaced; the others are shared.

        For example the same breaker and limiter, without retries, for placing orders::

            orders = policy("kraken").replace(retry=None)
        """
        params: dict[str, Any] = {
            "breaker": self.breaker,
            "retry": self.retry,
            "limiter": self.limiter,
            "fallback": self.fallback,
            "timeout": self.timeout,
            "bulkhead": self.bulkhead,
            "cost": self.cost,
            "span_mode": self._mode,
        }
        unknown = set(changes) - set(params)
        if unknown:
            raise TypeError(f"Policy.replace(): unknown argument(s) {', '.join(sorted(unknown))}")
        params.update(changes)
        return Policy(self.name, **params)

    def __repr__(self) -> str:
        parts = [f"{key}={getattr(self, key)!r}" for key in ORDER if getattr(self, key) is not None]
        return f"Policy({self.name!r}{', ' if parts else ''}{', '.join(parts)})"

    # ------------------------------------------------------------------ assembly
    def _build_sync(self) -> Invoke:
        invoke: Invoke = direct
        if self.timeout is not None:
            timeout_call = self.timeout.call

            def timed(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
                return timeout_call(fn, *args, **kwargs)

            invoke = timed
        if self.limiter is not None:
            acquire, cost, under_limiter = self.limiter.acquire, self.cost, invoke
            smuggle, innermost = self.breaker is not None, self.timeout is None

            def limited(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
                try:
                    acquire(cost)
                except RateLimitExceededError as exc:
                    if smuggle:
                        raise _Rejected(exc) from None
                    raise
                if innermost:
                    return fn(*args, **kwargs)
                return under_limiter(fn, args, kwargs)

            invoke = limited
        if self.breaker is not None:
            breaker_call, under_breaker = self.breaker.call, invoke

            def broken(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
                try:
                    return breaker_call(under_breaker, fn, args, kwargs)
                except _Rejected as rejected:
                    raise rejected.error from None

            invoke = broken
        if self.retry is not None:
            invoke = functools.partial(self.retry._run, invoke)
        if self.bulkhead is not None:
            bulkhead, under_bulkhead = self.bulkhead, invoke

            def walled(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
                bulkhead.acquire()
                try:
                    return under_bulkhead(fn, args, kwargs)
                finally:
                    bulkhead.release()

            invoke = walled
        if self.fallback is not None:
            invoke = functools.partial(self.fallback._run, invoke)
        return invoke

    def _build_async(self) -> Callable[..., Awaitable[Any]]:
        invoke: Callable[..., Awaitable[Any]] = direct_async
        if self.timeout is not None:
            timeout_run = self.timeout._run_async
            invoke = timeout_run
        if self.limiter is not None:
            acquire, cost, under_limiter = self.limiter.acquire_async, self.cost, invoke
            take_now, smuggle = self.limiter._take_now, self.breaker is not None
            innermost = self.timeout is None

            async def limited(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
                if not take_now(cost):
                    try:
                        await acquire(cost)
                    except RateLimitExceededError as exc:
                        if smuggle:
                            raise _Rejected(exc) from None
                        raise
                if innermost:
                    return await fn(*args, **kwargs)
                return await under_limiter(fn, args, kwargs)

            invoke = limited
        if self.breaker is not None:
            breaker_call, under_breaker = self.breaker.call_async, invoke

            async def broken(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
                try:
                    return await breaker_call(under_breaker, fn, args, kwargs)
                except _Rejected as rejected:
                    raise rejected.error from None

            invoke = broken
        if self.retry is not None:
            invoke = functools.partial(self.retry._run_async, invoke)
        if self.bulkhead is not None:
            bulkhead, under_bulkhead = self.bulkhead, invoke

            async def walled(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
                await bulkhead.acquire_async()
                try:
                    return await under_bulkhead(fn, args, kwargs)
                finally:
                    bulkhead.release()

            invoke = walled
        if self.fallback is not None:
            invoke = functools.partial(self.fallback._run_async, invoke)
        return invoke

    # ------------------------------------------------------------------ public calls
    def __call__(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """Decorate a sync or async function so that every call goes through this policy."""
        return decorate(fn, self.call, self.call_async)

    def call(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """``fn(*args, **kwargs)`` through every guard of this policy."""
        if (self._mode or _otel._span_mode) == "always":
            with tel.guarded_span(self._tracer, "otelres.policy", {"policy.name": self.name}):
                traced: T = self._invoke(fn, args, kwargs)
                return traced
        result: T = self._invoke(fn, args, kwargs)
        return result

    async def call_async(self, fn: Callable[..., Awaitable[T]], /, *args: Any, **kwargs: Any) -> T:
        """``await fn(*args, **kwargs)`` through every guard of this policy."""
        if (self._mode or _otel._span_mode) == "always":
            with tel.guarded_span(self._tracer, "otelres.policy", {"policy.name": self.name}):
                traced: T = await self._invoke_async(fn, args, kwargs)
                return traced
        result: T = await self._invoke_async(fn, args, kwargs)
        return result


def _check_guards(name: str, **guards: object) -> None:
    """Raise a TypeError naming the argument when a guard is not of its kind (``retry=`` a
    ``Breaker``), instead of failing on the first call."""
    from otelres.resilience._breaker import CircuitBreaker
    from otelres.resilience._bulkhead import Bulkhead
    from otelres.resilience._fallback import Fallback
    from otelres.resilience._rate_limiter import RateLimiter
    from otelres.resilience._retry import Retry
    from otelres.resilience._timeout import Timeout

    kinds: dict[str, type] = {
        "breaker": CircuitBreaker,
        "retry": Retry,
        "limiter": RateLimiter,
        "fallback": Fallback,
        "timeout": Timeout,
        "bulkhead": Bulkhead,
    }
    Checker("Policy", name)
    for arg, guard in guards.items():
        kind = kinds[arg]
        if guard is not None and not isinstance(guard, kind):
            raise TypeError(
                f"Policy({name!r}): {arg}= must be a {kind.__name__} or None, got {guard!r}"
            )


# --------------------------------------------------------------------------- from config
_cache: dict[str, tuple[Config, Policy]] = {}
_cache_lock = threading.Lock()


def policy(name: str) -> Policy:
    """The policy ``config.toml`` describes for *name*, built once per configuration.

    * breaker: ``get_breaker(name)`` (``[resilience.circuit_breaker.<name>]`` or the
      ``[resilience]`` defaults), unless ``circuit_breaker_enabled = false``;
    * retry: ``[resilience.retry.<name>]`` or ``[resilience.retry]`` (always present;
      use ``policy(name).replace(retry=None)`` for calls that must not be repeated);
    * rate limiter: when ``[resilience.rate_limits]`` has *name* or ``default``;
    * timeout: when ``[resilience.timeouts]`` has *name* or ``default``;
    * bulkhead: when ``[resilience.bulkheads.<name>]`` exists.

    The same object is returned for the same name until the current configuration
    changes (``otelres.configure()``, ``otelres.config.set_current()``).
    """
    from otelres import config

    current = config.current()
    with _cache_lock:
        cached = _cache.get(name)
        if cached is not None and cached[0] is current:
            return cached[1]
        built = _from_config(name, current)
        _cache[name] = (current, built)
        return built


def _from_config(name: str, current: Config) -> Policy:
    from otelres.resilience._bulkhead import Bulkhead
    from otelres.resilience._rate_limiter import RateLimiter
    from otelres.resilience._retry import Retry
    from otelres.resilience._timeout import Timeout

    settings = current.resilience
    breaker = None
    if settings.circuit_breaker_enabled:
        from otelres.resilience._breaker import get_breaker

        breaker = get_breaker(name)
    limiter = RateLimiter.from_config(name) if settings.rate_limit(name) is not None else None
    seconds = settings.timeout(name)
    bulkhead_settings = settings.bulkheads.get(name)
    return Policy(
        name,
        breaker=breaker,
        retry=Retry.from_settings(name, settings.retry_for(name)),
        limiter=limiter,
        timeout=None if seconds is None else Timeout(name, seconds),
        bulkhead=None if bulkhead_settings is None else Bulkhead.from_settings(name, bulkhead_settings),
    )
