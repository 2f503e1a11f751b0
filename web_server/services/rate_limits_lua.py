"""The Redis side of the shared rate limiter: two Lua scripts, run atomically by Redis.

Both read the time from Redis itself (``TIME``), so every process on every host paces against
one clock, whatever the hosts' clocks say. Times are seconds (floats); each budget keeps its
theoretical arrival time (TAT) under ``<prefix>tat:<key>`` and a ban's end under
``<prefix>ban:<key>``. The algorithm is GCRA, described in :mod:`web_server.services.rate_limits`.
"""

from __future__ import annotations

__all__ = ["OBSERVE_SCRIPT", "RESERVE_SCRIPT"]

#: Reserve one slot on every budget at once, or nothing.
#:
#: KEYS: n TAT keys, then n ban keys. ARGV: n, max_wait, then per budget: increment (cost × T),
#: capacity (τ + T), period. Returns ``{status, wait_or_retry, index}`` as strings: status
#: ``ok`` (wait = seconds until the reserved slot), ``later`` (the slot is ``wait`` away, more than
#: max_wait: nothing reserved) or ``banned`` (for ``wait`` seconds; index = which budget).
RESERVE_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local n = tonumber(ARGV[1])
local max_wait = tonumber(ARGV[2])
for i = 1, n do
  local ban = redis.call('GET', KEYS[n + i])
  if ban and tonumber(ban) > now then
    return {'banned', tostring(tonumber(ban) - now), tostring(i)}
  end
end
local send_at = now
local tats = {}
for i = 1, n do
  local tat = tonumber(redis.call('GET', KEYS[i]) or '0')
  if tat < now then tat = now end
  tats[i] = tat
  local inc = tonumber(ARGV[3 * i])
  local capacity = tonumber(ARGV[3 * i + 1])
  local earliest = tat + inc - capacity
  if earliest > send_at then send_at = earliest end
end
local wait = send_at - now
if wait > max_wait then
  return {'later', tostring(wait), '0'}
end
for i = 1, n do
  local inc = tonumber(ARGV[3 * i])
  local period = tonumber(ARGV[3 * i + 2])
  local tat = tats[i]
  if send_at > tat then tat = send_at end
  tat = tat + inc
  local ttl = math.ceil((tat - now + period) * 1000)
  redis.call('SET', KEYS[i], tostring(tat), 'PX', ttl)
end
return {'ok', tostring(wait), '0'}
"""

#: Follow what the broker reports, and bans.
#:
#: KEYS: the TAT key, the ban key. ARGV: mode (``used`` or ``ban``), then for ``used``: used × T,
#: period; for ``ban``: seconds. ``used``: the TAT is raised to at least ``now - period + used×T``
#: (as if the broker's count had been spent evenly over its window); never lowered.
OBSERVE_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
if ARGV[1] == 'ban' then
  local seconds = tonumber(ARGV[2])
  local current = tonumber(redis.call('GET', KEYS[2]) or '0')
  local untl = now + seconds
  if untl > current then
    redis.call('SET', KEYS[2], tostring(untl), 'PX', math.ceil(seconds * 1000) + 1000)
  end
  return tostring(untl)
end
local spent = tonumber(ARGV[2])
local period = tonumber(ARGV[3])
local floor = now - period + spent
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if floor > tat then
  redis.call('SET', KEYS[1], tostring(floor), 'PX', math.ceil((floor - now + period) * 1000))
  return tostring(floor)
end
return tostring(tat)
"""
