"""Queue figures for the Redis Streams transport, read in one atomic script per queue.

Per queue: the stream ``{prefix}:{queue}`` with its consumer group ``asyncjobs``, the
delayed set ``{prefix}:{queue}:delayed`` and the dead-letter stream
``{prefix}:{queue}:dead``. Acknowledged entries are deleted (``XACK`` + ``XDEL``), so the
stream holds exactly the unfinished work: ``XLEN = waiting + in_flight``.

- ``in_flight``: the group's ``pending`` (delivered, unacknowledged; XPENDING's count).
- ``waiting``: the group's ``lag`` from ``XINFO GROUPS`` (entries after its
  last-delivered-id). Redis answers NULL for the lag when entries after the oldest one
  still pending were deleted out of order, which is routine here (tasks finish in any
  order): measured, 4 entries, 2 read, the second acked and deleted -> ``lag`` NULL while
  2 wait. Then ``XLEN - pending`` is used, exact because acked entries are deleted.
  Without a group (no worker ever started) everything in the stream is waiting.
- ``oldest_waiting_age_s``: Redis's ``TIME`` minus the millisecond part of the id of the
  first entry after the last-delivered-id. A message handed back, reclaimed after a
  lease expired, or promoted from the delayed set is a new entry: its age counts from
  then, not from the first ``kiq``.
- ``scheduled``: ``ZCARD`` of the delayed set, including members already due that no
  worker has moved yet (none runs for that queue).
- ``consumers``: the group's consumers. Redis (7.0, measured) adds a consumer to a
  group when it first *receives* an entry of that stream, so a worker listening to an
  idle queue is not counted there yet; one that shut down cleanly has left, one that
  crashed stays until another worker prunes it (idle for long, holding nothing).
- ``backlog``: ``waiting + in_flight``, which is ``XLEN`` of the stream. It is exactly
  what KEDA's ``redis-streams`` trigger reads with ``streamLength`` (and no
  ``consumerGroup``): ``XLEN``. KEDA's ``lagCount`` reads the group's ``lag`` alone (our
  ``waiting``; NULL becomes 0 or -1 in its Go client) and ``pendingEntriesCount`` the
  ``pending`` alone (our ``in_flight``), so neither counts both.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from asyncjobs.brokers.errors import AsyncJobsError, BrokerConnectionError
from asyncjobs.brokers.failures import broker_failure, library_errors
from asyncjobs.brokers.inspection import QueueStats
from asyncjobs.brokers.redis.delayed import delayed_key
from asyncjobs.brokers.redis.streams import GROUP, dead_letter_key, stream_key

if TYPE_CHECKING:
    from asyncjobs.brokers.redis.broker import RedisStreamsBroker

# KEYS: stream, delayed set, dead-letter stream. ARGV: group.
# Returns {now ms, XLEN, ZCARD delayed, XLEN dead, group found 0/1, consumers, pending,
# lag (-1: NULL, Redis cannot tell), id of the first waiting entry or nil}.
SNAPSHOT = """
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local length = redis.call('XLEN', KEYS[1])
local scheduled = redis.call('ZCARD', KEYS[2])
local dead = redis.call('XLEN', KEYS[3])
local found, consumers, pending, lag, after = 0, 0, 0, -1, '-'
if redis.call('EXISTS', KEYS[1]) == 1 then
  for _, group in ipairs(redis.call('XINFO', 'GROUPS', KEYS[1])) do
    local fields = {}
    for i = 1, #group, 2 do fields[group[i]] = group[i + 1] end
    if fields['name'] == ARGV[1] then
      found, consumers, pending = 1, fields['consumers'], fields['pending']
      if fields['lag'] then lag = fields['lag'] end
      after = '(' .. fields['last-delivered-id']
    end
  end
end
local first = redis.call('XRANGE', KEYS[1], after, '+', 'COUNT', 1)
local first_id = false
if first[1] then first_id = first[1][1] end
return {tostring(now_ms), length, scheduled, dead, found, consumers, pending, lag, first_id}
"""

LAG_UNKNOWN_NOTE = (
    "Redis reports no consumer-group lag right now (entries were deleted out of order); "
    "waiting = XLEN - pending"
)


async def inspect_redis(broker: RedisStreamsBroker, queues: Sequence[str]) -> list[QueueStats]:
    """One atomic snapshot per queue (a script: the figures of one queue agree)."""
    prefix = broker.options.key_prefix
    try:
        await broker.ensure_started()  # connects: declares the consumer groups
        async with broker.redis() as conn:
            replies = [
                await conn.eval(
                    SNAPSHOT,
                    3,
                    stream_key(prefix, queue),
                    delayed_key(prefix, queue),
                    dead_letter_key(prefix, queue),
                    GROUP,
                )
                for queue in queues
            ]
    except BrokerConnectionError as exc:  # connecting failed: it says where and why
        raise BrokerConnectionError(f"cannot read queue figures from Redis: {exc}") from None
    except AsyncJobsError:
        raise
    except library_errors() as exc:  # e.g. an ACL without EVAL: one line, not a traceback
        raise broker_failure("reading queue figures from Redis", broker.url, exc) from None
    return [_stats(queue, reply) for queue, reply in zip(queues, replies, strict=True)]


def _stats(queue: str, reply: list[Any]) -> QueueStats:
    now_ms, length, scheduled, dead, found, consumers, pending, lag = (
        int(value) for value in reply[:8]
    )
    first_id = reply[8] if len(reply) > 8 else None
    notes: list[str] = []
    if not found:
        waiting, pending, consumers = length, 0, 0
        if length:
            notes.append("no worker has consumed this queue yet: every message is waiting")
    elif lag >= 0:
        waiting = lag
    else:
        waiting = max(0, length - pending)
        notes.append(LAG_UNKNOWN_NOTE)
    age: float | None = None
    if waiting and first_id:
        added_ms = int(_text(first_id).split("-", 1)[0])
        age = max(0.0, (now_ms - added_ms) / 1000)
    return QueueStats(
        queue=queue,
        transport="redis",
        waiting=waiting,
        in_flight=pending,
        scheduled=scheduled,
        dead_letters=dead,
        oldest_waiting_age_s=age,
        consumers=consumers,
        backlog=waiting + pending,
        notes=tuple(notes),
    )


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
