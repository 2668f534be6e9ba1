"""Schedules and claims in Redis (``asyncjobs.brokers.stores.ScheduleStorage``).

- Dynamic schedules: one hash, ``{prefix}:schedules`` (field: the schedule id, value: its
  JSON). Read as bytes whatever the client decodes: one entry that is not UTF-8 (a
  planted pickle) must not fail the whole read; ``asyncjobs.schedules.store`` only ever
  parses entries as JSON.
- Claims: one key per (schedule id, tick), ``{prefix}:schedule:{id}:{tick_ms}``, taken,
  marked sent and released by atomic scripts; ``{prefix}:schedule:{id}:last`` keeps the
  newest tick sent. A claim value is ``state|owner|since ms``.
- Pauses: the set ``{prefix}:schedules:paused`` (schedule ids); a resume sets
  ``{prefix}:schedule:{id}:resumed`` to its time (ms), in the same script.
"""

from __future__ import annotations

import time
from typing import Any

from redis.asyncio import Redis
from redis.client import NEVER_DECODE

from asyncjobs.brokers.redis.connection import connection_pool
from asyncjobs.brokers.stores import ScheduleStorage
from asyncjobs.brokers.urls import redact_url

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


# KEYS[1] paused set, KEYS[2] resumed. ARGV: id, 1 pause / 0 resume, now ms, resumed ttl s.
PAUSE = """
if ARGV[2] == '1' then
  return redis.call('SADD', KEYS[1], ARGV[1])
end
local removed = redis.call('SREM', KEYS[1], ARGV[1])
if removed == 1 then
  redis.call('SET', KEYS[2], ARGV[3], 'EX', ARGV[4])
end
return removed
"""


def schedules_key(key_prefix: str) -> str:
    return f"{key_prefix}:schedules"


class RedisScheduleStorage(ScheduleStorage):
    def __init__(self, url: str, key_prefix: str) -> None:
        self._pool = connection_pool(url)
        self._client = Redis(connection_pool=self._pool)
        self.key = schedules_key(key_prefix)
        self._claims = f"{key_prefix}:schedule"
        self._paused = f"{self.key}:paused"
        self.location = f"Redis hash {self.key} at {redact_url(url)}"

    async def aclose(self) -> None:
        await self._pool.disconnect()

    # -- dynamic schedules -------------------------------------------------------
    async def put(self, schedule_id: str, body: bytes) -> None:
        await self._client.hset(self.key, schedule_id, body)

    async def delete(self, schedule_id: str) -> bool:
        return bool(await self._client.hdel(self.key, schedule_id))

    async def get(self, schedule_id: str) -> bytes | None:
        body: bytes | None = await self._raw("HGET", self.key, schedule_id)
        return body

    async def all(self) -> dict[str, bytes]:
        entries: dict[bytes, bytes] = await self._raw("HGETALL", self.key)
        return {field.decode(errors="replace"): body for field, body in entries.items()}

    async def _raw(self, *command: str) -> Any:
        options = {NEVER_DECODE: True}
        return await self._client.execute_command(*command, **options)  # type: ignore[no-untyped-call]

    # -- claims ------------------------------------------------------------------
    def _claim_key(self, schedule_id: str, tick_ms: int) -> str:
        return f"{self._claims}:{schedule_id}:{tick_ms}"

    def _last_key(self, schedule_id: str) -> str:
        return f"{self._claims}:{schedule_id}:last"

    async def claim(
        self, schedule_id: str, tick_ms: int, owner: str, ttl_ms: int, takeover_ms: int
    ) -> bool:
        key = self._claim_key(schedule_id, tick_ms)
        won = await self._client.eval(CLAIM, 1, key, owner, now_ms(), ttl_ms, takeover_ms)
        return bool(won)

    async def mark_sent(self, schedule_id: str, tick_ms: int, owner: str, last_ttl_s: int) -> None:
        keys = (self._claim_key(schedule_id, tick_ms), self._last_key(schedule_id))
        await self._client.eval(SENT, 2, *keys, owner, now_ms(), tick_ms, last_ttl_s)

    async def release(self, schedule_id: str, tick_ms: int, owner: str) -> None:
        await self._client.eval(RELEASE, 1, self._claim_key(schedule_id, tick_ms), owner)

    async def last_sent_ms(self, schedule_id: str) -> int | None:
        raw: Any = await self._client.get(self._last_key(schedule_id))
        return None if raw is None else int(raw)

    # -- pauses ------------------------------------------------------------------
    async def set_paused(self, schedule_id: str, paused: bool, resumed_ttl_s: int) -> bool:
        keys = (self._paused, f"{self._claims}:{schedule_id}:resumed")
        args = (schedule_id, int(paused), now_ms(), resumed_ttl_s)
        return bool(await self._client.eval(PAUSE, 2, *keys, *args))

    async def paused(self) -> set[str]:
        members: set[bytes] = await self._raw("SMEMBERS", self._paused)
        return {member.decode(errors="replace") for member in members}

    async def resumed_ms(self, schedule_id: str) -> int | None:
        raw: Any = await self._client.get(f"{self._claims}:{schedule_id}:resumed")
        return None if raw is None else int(raw)


def now_ms() -> int:
    return round(time.time() * 1000)
