"""The Lua scripts that keep shared breaker and limiter state atomic inside Redis.

Each script touches exactly one key (so the layout suits Redis Cluster), reads the time
from the Redis server (``TIME``) so that the clocks of the client hosts never matter,
writes numbers with full precision (``%.17g``; Redis would otherwise round Lua numbers
to 14 digits), and sets a TTL so that abandoned state disappears by itself.

Scripts run with ``EVALSHA``; a server that does not know one yet (first use, a restart,
``SCRIPT FLUSH``) gets it through ``EVAL`` once, which also caches it there
(:meth:`LuaScript.run`).
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from redis import Redis
    from redis.asyncio import Redis as AsyncRedis

__all__ = ["BREAKER_SCRIPT", "BUCKET_SCRIPT", "LuaScript"]


class LuaScript:
    """A Lua script identified by its SHA-1, run with ``EVALSHA`` and loaded on demand."""

    __slots__ = ("name", "sha", "source")

    def __init__(self, name: str, source: str) -> None:
        self.name = name
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()

    def run(self, client: Redis, key: str, *args: Any) -> Any:
        """Run the script on *key* with *args* (one round trip, two the first time)."""
        try:
            return client.evalsha(self.sha, 1, key, *args)
        except Exception as exc:
            # Imported here, not per call: the hot path is one evalsha and nothing else.
            from redis.exceptions import NoScriptError

            if not isinstance(exc, NoScriptError):
                raise
            return client.eval(self.source, 1, key, *args)

    async def run_async(self, client: AsyncRedis, key: str, *args: Any) -> Any:
        """:meth:`run` on an asyncio client."""
        try:
            return await client.evalsha(self.sha, 1, key, *args)
        except Exception as exc:
            from redis.exceptions import NoScriptError

            if not isinstance(exc, NoScriptError):
                raise
            return await client.eval(self.source, 1, key, *args)

    def __repr__(self) -> str:
        return f"LuaScript({self.name!r}, sha={self.sha[:12]})"


# Redis < 5 replicates scripts verbatim and refuses writes after TIME unless effects
# replication is asked for; Redis >= 5 does this already and 7 made it a no-op.
_PREAMBLE = """
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
"""

BUCKET_SCRIPT = LuaScript(
    "otelres.bucket",
    _PREAMBLE
    + """
-- KEYS[1]: the bucket hash {t = tokens, ts = microseconds of the last update}
-- ARGV: rate (tokens/s), capacity, cost, max_wait (microseconds; -1: no limit)
--   cost > 0: take cost tokens, into debt when the wait they need is <= max_wait
--             (max_wait 0 is a plain try: nothing is taken unless the tokens are there)
--   cost < 0: give -cost tokens back (never above capacity)
--   cost = 0: only report the tokens; nothing is written
-- Returns {granted 0/1, wait in microseconds, tokens after the operation as a string}.
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local key = KEYS[1]
local rate = tonumber(ARGV[1])
local capacity = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local max_wait = tonumber(ARGV[4])
local state = redis.call('HMGET', key, 't', 'ts')
local tokens = tonumber(state[1])
local ts = tonumber(state[2])
if tokens == nil or ts == nil then
  tokens = capacity
elseif now > ts then
  tokens = math.min(capacity, tokens + (now - ts) * rate / 1000000)
end
if cost == 0 then
  return {1, 0, string.format('%.17g', tokens)}
end
local wait = 0
if cost > 0 and tokens < cost then
  wait = math.ceil((cost - tokens) * 1000000 / rate)
  if max_wait >= 0 and wait > max_wait then
    return {0, wait, string.format('%.17g', tokens)}
  end
end
tokens = math.min(capacity, tokens - cost)
redis.call('HSET', key, 't', string.format('%.17g', tokens), 'ts', string.format('%d', now))
-- Once the bucket would be full again its state equals "no key": let it expire then.
redis.call('PEXPIRE', key, math.ceil((capacity - tokens) * 1000 / rate) + 1000)
return {1, wait, string.format('%.17g', tokens)}
""",
)

BREAKER_SCRIPT = LuaScript(
    "otelres.breaker",
    _PREAMBLE
    + """
-- KEYS[1]: the breaker hash:
--   state       closed | open | half_open | forced_open | disabled (no key: closed)
--   gen         generation, +1 on every state change (compare-and-set token)
--   failures    consecutive failures of the current closed period
--   trips       openings in a row without closing in between
--   open_until  end of the open period, server milliseconds
--   open_ms     length of that open period (also the lifetime of a probe permit)
--   probes      half-open probes in flight;  probe_ok  successful probes
--   lease_until when the permits in flight are considered lost (a process died mid-probe)
-- ARGV[1]: operation; ARGV[2]: TTL in milliseconds for written keys; then per operation:
--   snap                                    -> snapshot
--   fail                                    -> new failure count (0 unless closed)
--   reset                                   -> 1
--   trans  from to gen open_ms              -> snapshot, or 0 when the CAS failed
--   force  to                               -> snapshot
--   probe  gen limit                        -> 1 permit taken, 0 refused
--   release gen success(0/1)                -> successful probes of the period, 0 if stale
-- A snapshot is {state, gen, failures, trips, retry_after_ms, probes, probe_ok}.
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local key = KEYS[1]
local op = ARGV[1]
local ttl = tonumber(ARGV[2])
local h = redis.call('HMGET', key, 'state', 'gen', 'failures', 'trips', 'open_until',
                     'open_ms', 'probes', 'probe_ok', 'lease_until')
local state = h[1] or 'closed'
local gen = tonumber(h[2]) or 0
local failures = tonumber(h[3]) or 0
local trips = tonumber(h[4]) or 0
local open_until = tonumber(h[5]) or 0
local open_ms = tonumber(h[6]) or 0
local probes = tonumber(h[7]) or 0
local probe_ok = tonumber(h[8]) or 0
local lease_until = tonumber(h[9]) or 0

local function snapshot()
  local retry_after = 0
  if state == 'open' and open_until > now then retry_after = open_until - now end
  return {state, gen, failures, trips, retry_after, probes, probe_ok}
end

local function save()
  redis.call('HSET', key, 'state', state, 'gen', gen, 'failures', failures, 'trips', trips,
             'open_until', string.format('%d', open_until), 'open_ms', open_ms,
             'probes', probes, 'probe_ok', probe_ok,
             'lease_until', string.format('%d', lease_until))
  if state == 'forced_open' or state == 'disabled' then
    -- set by hand: kept until changed by hand
    redis.call('PERSIST', key)
  elseif state == 'open' or state == 'half_open' then
    redis.call('PEXPIRE', key, math.max(ttl, 2 * open_ms + 1000))
  else
    redis.call('PEXPIRE', key, ttl)
  end
end

local function enter(to)
  gen = gen + 1
  failures = 0
  probes = 0
  probe_ok = 0
  lease_until = 0
  state = to
end

if op == 'snap' then
  return snapshot()
elseif op == 'fail' then
  if state ~= 'closed' then return 0 end
  failures = failures + 1
  redis.call('HSET', key, 'state', state, 'gen', gen, 'failures', failures)
  redis.call('PEXPIRE', key, ttl)
  return failures
elseif op == 'reset' then
  if failures ~= 0 and state == 'closed' then
    redis.call('HSET', key, 'failures', 0)
  end
  return 1
elseif op == 'trans' then
  if state ~= ARGV[3] or gen ~= tonumber(ARGV[5]) then return 0 end
  local to = ARGV[4]
  if to == 'open' then
    trips = trips + 1
    open_ms = tonumber(ARGV[6])
    open_until = now + open_ms
  elseif to == 'closed' then
    trips = 0
  end
  enter(to)
  save()
  return snapshot()
elseif op == 'force' then
  trips = 0
  enter(ARGV[3])
  save()
  return snapshot()
elseif op == 'probe' then
  if state ~= 'half_open' or gen ~= tonumber(ARGV[3]) then return 0 end
  if probes >= tonumber(ARGV[4]) then
    if now < lease_until then return 0 end
    -- every permit in flight outlived its lease: their holders are gone
    probes = 0
  end
  probes = probes + 1
  lease_until = now + math.max(open_ms, 1000)
  redis.call('HSET', key, 'probes', probes, 'lease_until', string.format('%d', lease_until))
  return 1
elseif op == 'release' then
  if state ~= 'half_open' or gen ~= tonumber(ARGV[3]) then return 0 end
  if probes > 0 then probes = probes - 1 end
  if ARGV[4] == '1' then probe_ok = probe_ok + 1 end
  redis.call('HSET', key, 'probes', probes, 'probe_ok', probe_ok)
  return probe_ok
end
return redis.error_reply('otelres.breaker: unknown operation ' .. tostring(op))
""",
)
