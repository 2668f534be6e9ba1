"""Leases for Redis Streams: renew what we run, reclaim what dead workers held.

taskiq-redis reclaims a dead consumer's entries (XAUTOCLAIM) only after a read that
returned something, with a 10-minute idle timeout and no renewal, so an orphaned task on
an idle stream waits forever and a task longer than the timeout runs twice. Here:

- every worker renews the entries it is running every ``lease/3`` (``XCLAIM ... JUSTID``
  to itself resets their idle time without counting a delivery);
- every worker, on a timer and whatever the traffic, moves entries idle for longer than
  the lease back to the end of their stream in one atomic script (claim, XADD a copy with
  the delivery count + 1, XACK, XDEL), where any worker takes them with a normal read;
- consumers that hold nothing and were idle for long are removed from the group.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from redis.asyncio import Redis

from asyncjobs.brokers.background import BackgroundLoop

if TYPE_CHECKING:
    from asyncjobs.brokers.redis.delivery import RedisDelivery

logger = logging.getLogger("asyncjobs.broker.redis")

# KEYS[1] stream. ARGV: group, consumer (the reclaimer), min idle ms, count.
# Each expired entry goes back to the end of the stream with its delivery count + 1 and
# no hand-back flag (it is a crash suspect now). The copy is written before the original
# is removed: a script that fails midway (Redis applies what ran) keeps the original.
# Fields are whatever the entry's writer put there: a count that is not a plain number
# is copied unchanged, for the worker that fetches it to dead-letter it with a reason, and
# an entry without data is copied too (dead-lettered as undecodable): nothing is deleted
# here without its copy.
RECLAIM = """
local claimed = redis.call(
  'XAUTOCLAIM', KEYS[1], ARGV[1], ARGV[2], ARGV[3], '0-0', 'COUNT', ARGV[4])
local moved = 0
for _, entry in ipairs(claimed[2]) do
  local id, fields = entry[1], entry[2]
  if fields then
    local copy, count = {}, '1'
    for i = 1, #fields, 2 do
      local name, value = fields[i], fields[i + 1]
      if name == 'deliveries' then
        if string.match(value, '^%d+$') and #value <= 9 then
          count = tostring(tonumber(value) + 1)
        else
          count = value
        end
      elseif name ~= 'handed_back' then
        copy[#copy + 1] = name
        copy[#copy + 1] = value
      end
    end
    copy[#copy + 1] = 'deliveries'
    copy[#copy + 1] = count
    redis.call('XADD', KEYS[1], '*', unpack(copy))
    moved = moved + 1
  end
  redis.call('XACK', KEYS[1], ARGV[1], id)
  redis.call('XDEL', KEYS[1], id)
end
return moved
"""

# KEYS[1] stream. ARGV: group, consumer. Hands back everything the consumer still holds
# (replies it never read: its reads were cut short; settlements it gave up on), each a
# verbatim copy (count and flags unchanged: this worker did not crash on them), then
# removes the consumer.
RELEASE = """
local pending = redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', 10000, ARGV[2])
local moved = 0
for _, item in ipairs(pending) do
  local id = item[1]
  local entry = redis.call('XRANGE', KEYS[1], id, id)[1]
  if entry then
    redis.call('XADD', KEYS[1], '*', unpack(entry[2]))
    moved = moved + 1
  end
  redis.call('XACK', KEYS[1], ARGV[1], id)
  redis.call('XDEL', KEYS[1], id)
end
redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[2])
return moved
"""

RECLAIM_BATCH = 100
PRUNE_EVERY_S = 60.0


class LeaseKeeper(BackgroundLoop):
    """The background loop of a Redis worker: renew, reclaim, prune."""

    task_name = "asyncjobs-leases"

    def __init__(
        self,
        redis: Callable[[], Redis],
        streams: Iterable[str],
        group: str,
        consumer: str,
        lease_s: float,
        held: Callable[[], Iterable[RedisDelivery]],
        prune_after_s: float | None = None,
    ) -> None:
        super().__init__()
        self._redis = redis
        self._streams = tuple(streams)
        self._group = group
        self._consumer = consumer
        self._lease_ms = max(1, int(lease_s * 1000))
        self._period_s = max(0.05, lease_s / 3)
        self._held = held
        # Consumers idle this long and holding nothing are removed (dead workers' names).
        self._prune_after_ms = (
            int(1000 * prune_after_s) if prune_after_s else max(10 * self._lease_ms, 300_000)
        )
        self._last_prune = 0.0

    async def _run(self) -> None:
        while not self._stopping:
            try:
                await self.tick()
            except Exception as exc:  # Redis restarting: keep trying, quietly
                logger.warning("lease upkeep failed (%s: %s); retrying", type(exc).__name__, exc)
            await asyncio.sleep(self._period_s)

    async def tick(self) -> None:
        async with self._redis() as conn:
            await self.renew(conn)
            await self.reclaim(conn)
            if time.monotonic() - self._last_prune > PRUNE_EVERY_S:
                self._last_prune = time.monotonic()
                await self.prune(conn)

    async def renew(self, conn: Redis) -> None:
        by_stream: dict[str, list[RedisDelivery]] = {}
        for delivery in self._held():
            by_stream.setdefault(delivery.stream, []).append(delivery)
        for stream, deliveries in by_stream.items():
            ids: list[int | bytes | str | memoryview] = [d.entry_id for d in deliveries]
            kept = await conn.xclaim(stream, self._group, self._consumer, 0, ids, justid=True)
            renewed = {_as_bytes(i) for i in kept}
            for delivery in deliveries:
                # One settled meanwhile (acked while XCLAIM was under way) is done, not lost.
                if delivery.closed or _as_bytes(delivery.entry_id) in renewed:
                    continue
                logger.warning(
                    "lost the lease on %s %s (the event loop was blocked for longer than the "
                    "lease?): another worker may run it too",
                    stream,
                    delivery.entry_id.decode(),
                )

    async def reclaim(self, conn: Redis) -> int:
        moved = 0
        for stream in self._streams:
            moved += int(
                await conn.eval(
                    RECLAIM, 1, stream, self._group, self._consumer, self._lease_ms, RECLAIM_BATCH
                )
            )
        if moved:
            logger.info("reclaimed %d messages from workers whose lease expired", moved)
        return moved

    async def prune(self, conn: Redis) -> None:
        """Remove consumers that hold nothing and have been idle for long."""
        idle_limit_ms = self._prune_after_ms
        for stream in self._streams:
            for consumer in await conn.xinfo_consumers(stream, self._group):
                name = _as_str(consumer["name"])
                if (
                    name != self._consumer
                    and consumer["pending"] == 0
                    and consumer["idle"] > idle_limit_ms
                ):
                    await conn.xgroup_delconsumer(stream, self._group, name)

    async def release(self, conn: Redis) -> int:
        """On shutdown: hand back whatever this consumer still holds; leave the group."""
        moved = 0
        for stream in self._streams:
            moved += int(await conn.eval(RELEASE, 1, stream, self._group, self._consumer))
        return moved


def _as_bytes(value: Any) -> bytes:
    return value if isinstance(value, bytes) else str(value).encode()


def _as_str(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
