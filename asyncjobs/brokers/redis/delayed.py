"""Delayed delivery for Redis Streams: a sorted set of due messages per queue.

``{prefix}:{queue}:delayed`` holds one member per delayed message, scored by its due time
in milliseconds (Redis's clock decides when it is due, so every worker agrees). A member
is ``<32 hex id>:<deliveries>:<data>``: the random id keeps two identical bodies apart
and makes a retried ``ZADD`` (a reply lost in a reconnect) idempotent.

Every worker runs a ``DelayedPromoter`` for the queues it listens to: one Lua script per
queue moves every due member to the stream (``XADD`` + ``ZREM``, atomically, so a member
is moved exactly once however many workers race and whenever one dies), then returns the
earliest score still waiting so the loop can sleep until then (capped at ``poll_s``, the
lateness bound for a message scheduled by another process while the loop sleeps).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable, Iterable
from typing import Any

from redis.asyncio import Redis

from asyncjobs.brokers.background import BackgroundLoop

logger = logging.getLogger("asyncjobs.broker.redis")

# KEYS[1] delayed set, KEYS[2] stream. ARGV: batch size.
# Returns {moved, earliest remaining score in ms or -1}.
PROMOTE = """
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now_ms, 'LIMIT', 0, tonumber(ARGV[1]))
for _, member in ipairs(due) do
  local sep = string.find(member, ':', 34, true)
  if sep then
    redis.call('XADD', KEYS[2], '*', 'data', string.sub(member, sep + 1),
               'deliveries', string.sub(member, 34, sep - 1))
  else  -- not ours (written by hand?): delivered as it is, to be dead-lettered, not lost
    redis.call('XADD', KEYS[2], '*', 'data', member, 'deliveries', '0')
  end
  redis.call('ZREM', KEYS[1], member)
end
local nxt = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
local earliest = -1
if nxt[2] then earliest = tonumber(nxt[2]) end
return {#due, tostring(earliest), tostring(now_ms)}
"""

PROMOTE_BATCH = 500
MIN_SLEEP_S = 0.005


def delayed_key(prefix: str, queue: str) -> str:
    return f"{prefix}:{queue}:delayed"


def delayed_member(data: bytes, deliveries: int = 0) -> bytes:
    """A sorted-set member for ``data``; build it once per message (idempotent ZADD)."""
    return b"%s:%d:%s" % (uuid.uuid4().hex.encode(), deliveries, data)


def due_score(due_unix_s: float) -> int:
    return int(due_unix_s * 1000)


class DelayedPromoter(BackgroundLoop):
    task_name = "asyncjobs-delayed"

    """A worker's loop that moves due delayed messages into their streams."""

    def __init__(
        self,
        redis: Callable[[], Redis],
        pairs: Iterable[tuple[str, str]],  # (delayed set, stream)
        poll_s: float = 0.2,
    ) -> None:
        super().__init__()
        self._redis = redis
        self._pairs = tuple(pairs)
        self._poll_s = poll_s
        self._wake = asyncio.Event()

    def _starting(self) -> None:
        self._wake = asyncio.Event()  # an Event belongs to the loop it is used in

    def wake(self) -> None:
        """Something was scheduled by this process: look again now, not at the next poll."""
        self._wake.set()

    async def _run(self) -> None:
        while not self._stopping:
            sleep_s = self._poll_s
            try:
                sleep_s = await self.tick()
            except Exception as exc:  # Redis restarting: keep trying, quietly
                logger.warning(
                    "moving due delayed messages failed (%s: %s)", type(exc).__name__, exc
                )
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), max(MIN_SLEEP_S, sleep_s))

    async def tick(self) -> float:
        """Move what is due; how long to sleep before the next look (<= ``poll_s``)."""
        sleep_s = self._poll_s
        async with self._redis() as conn:
            for zset, stream in self._pairs:
                moved, earliest, now = await self.promote(conn, zset, stream)
                if moved >= PROMOTE_BATCH:
                    sleep_s = 0.0  # more may be due: at once
                elif earliest >= 0:
                    sleep_s = min(sleep_s, (earliest - now) / 1000)
        return sleep_s

    @staticmethod
    async def promote(conn: Redis, zset: str, stream: str) -> tuple[int, int, int]:
        reply: list[Any] = await conn.eval(PROMOTE, 2, zset, stream, PROMOTE_BATCH)
        moved, earliest, now = int(reply[0]), int(reply[1]), int(reply[2])
        if moved:
            logger.debug("moved %d due delayed messages into %s", moved, stream)
        return moved, earliest, now
