"""Exactly-once firing: each (schedule id, tick) is claimed in Redis before it is sent.

A claim is one key, ``{prefix}:schedule:{id}:{tick_ms}``, taken atomically (Lua): the
first scheduler to claim a tick sends it, every other replica and every restart sees the
claim and does not. Claims expire (a few periods of the schedule, at least a day), so
nothing piles up.

A claim is ``pending`` until its message is sent, then ``sent``. A scheduler that dies
between claiming and sending leaves a pending claim; once it is older than
``TAKEOVER_S`` another scheduler takes it over and sends. A scheduler that dies after
sending but before marking it sent is the one case that sends twice (at least once,
never lost); the message's task id is the same both times (``{id}:{tick_ms}``), so a task
can tell.

``{prefix}:schedule:{id}:last`` keeps the newest tick sent: after an outage of every
scheduler, a schedule with ``catch_up`` sends the missed ticks since then.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from redis.asyncio import Redis

TAKEOVER_S = 30.0
MIN_CLAIM_TTL_S = 86_400.0
LAST_TTL_S = 90 * 86_400  # a removed schedule's last tick is forgotten after 90 days

# KEYS[1] claim. ARGV: owner, now ms, ttl ms, takeover ms. 1: claimed, 2: taken over, 0: not.
CLAIM = """
local v = redis.call('GET', KEYS[1])
local mine = 'pending|' .. ARGV[1] .. '|' .. ARGV[2]
if not v then
  redis.call('SET', KEYS[1], mine, 'PX', ARGV[3])
  return 1
end
local state, owner, since = string.match(v, '^(%a+)|(.*)|(%d+)$')
if state == 'pending' and tonumber(ARGV[2]) - tonumber(since) > tonumber(ARGV[4]) then
  redis.call('SET', KEYS[1], mine, 'PX', ARGV[3])
  return 2
end
return 0
"""

# KEYS[1] claim, KEYS[2] last. ARGV: owner, now ms, tick ms, last ttl s.
SENT = """
local v = redis.call('GET', KEYS[1])
if v and string.match(v, '^pending|(.*)|') == ARGV[1] then
  redis.call('SET', KEYS[1], 'sent|' .. ARGV[1] .. '|' .. ARGV[2], 'KEEPTTL')
end
local last = tonumber(redis.call('GET', KEYS[2]) or '0')
if tonumber(ARGV[3]) > last then
  redis.call('SET', KEYS[2], ARGV[3], 'EX', ARGV[4])
else
  redis.call('EXPIRE', KEYS[2], ARGV[4])
end
return 1
"""

# KEYS[1] claim. ARGV: owner. Gives up a pending claim of ours (the send failed).
RELEASE = """
local v = redis.call('GET', KEYS[1])
if v and string.match(v, '^pending|(.*)|') == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


def tick_ms(tick: datetime) -> int:
    return round(tick.timestamp() * 1000)


class ClaimStore:
    def __init__(self, redis: Callable[[], Redis], key_prefix: str, owner: str) -> None:
        self._redis = redis
        self._prefix = f"{key_prefix}:schedule"
        self.owner = owner.replace("|", "/")

    def claim_key(self, schedule_id: str, tick: datetime) -> str:
        return f"{self._prefix}:{schedule_id}:{tick_ms(tick)}"

    def last_key(self, schedule_id: str) -> str:
        return f"{self._prefix}:{schedule_id}:last"

    async def claim(self, schedule_id: str, tick: datetime, period_s: float) -> bool:
        """True if this scheduler is to send ``tick`` of the schedule."""
        ttl_ms = int(max(MIN_CLAIM_TTL_S, 3 * period_s) * 1000)
        async with self._redis() as conn:
            won = await conn.eval(
                CLAIM,
                1,
                self.claim_key(schedule_id, tick),
                self.owner,
                _now_ms(),
                ttl_ms,
                int(TAKEOVER_S * 1000),
            )
        return bool(won)

    async def sent(self, schedule_id: str, tick: datetime) -> None:
        async with self._redis() as conn:
            await conn.eval(
                SENT,
                2,
                self.claim_key(schedule_id, tick),
                self.last_key(schedule_id),
                self.owner,
                _now_ms(),
                tick_ms(tick),
                LAST_TTL_S,
            )

    async def release(self, schedule_id: str, tick: datetime) -> None:
        async with self._redis() as conn:
            await conn.eval(RELEASE, 1, self.claim_key(schedule_id, tick), self.owner)

    async def last_sent(self, schedule_id: str) -> datetime | None:
        async with self._redis() as conn:
            raw: Any = await conn.get(self.last_key(schedule_id))
        if raw is None:
            return None
        return datetime.fromtimestamp(int(raw) / 1000, UTC)


def _now_ms() -> int:
    return round(datetime.now(UTC).timestamp() * 1000)
