"""Finding a task's message in a Redis queue by its task id (``ReliableBroker.locate``).

The stream ``{prefix}:{queue}`` holds exactly the unfinished work (acknowledged entries
are deleted): an entry the consumer group delivered and nobody acknowledged yet (in its
pending entries list) is running, any other is waiting. The delayed set
``{prefix}:{queue}:delayed`` holds what is scheduled (``delay``/``eta`` sends, retries
waiting for their backoff). Each is read oldest first, in pages, at most ``scan``
entries; a substring test on the raw body skips decoding the others. Nothing is
changed, and no page is held between reads: a message that moves from the delayed set
to the stream during the search may be missed (the caller may look again).
"""

from __future__ import annotations

from typing import Any, cast

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from asyncjobs.brokers.locating import Located, names_task
from asyncjobs.brokers.redis.delayed import delayed_key
from asyncjobs.brokers.redis.streams import DATA, GROUP, EntryList, stream_key

PAGE = 1000


async def locate_in_redis(
    conn: Redis, prefix: str, queue: str, task_id: str, scan: int
) -> Located | None:
    stream = stream_key(prefix, queue)
    found = await _in_stream(conn, stream, task_id, scan)
    if found is not None:
        entry_id, body = found
        running = await _pending(conn, stream, entry_id)
        return Located("running" if running else "waiting", body)
    delayed = await _in_delayed(conn, delayed_key(prefix, queue), task_id, scan)
    return None if delayed is None else Located("scheduled", delayed)


async def _in_stream(
    conn: Redis, stream: str, task_id: str, scan: int
) -> tuple[bytes, bytes] | None:
    start, seen = b"-", 0
    while seen < scan:
        count = min(PAGE, scan - seen)
        entries = cast(EntryList, await conn.xrange(stream, min=start, count=count))
        for entry_id, fields in entries:
            body = fields.get(DATA) or b""
            if names_task(body, task_id):
                return entry_id, body
        if len(entries) < count:
            return None
        seen += len(entries)
        start = b"(" + entries[-1][0]
    return None


async def _pending(conn: Redis, stream: str, entry_id: bytes) -> bool:
    """Whether the group delivered ``entry_id`` and it is not acknowledged."""
    try:
        reply: list[Any] = await conn.xpending_range(
            stream, GROUP, min=entry_id, max=entry_id, count=1
        )
    except ResponseError as exc:
        if "NOGROUP" in str(exc):  # no worker ever read this queue: nothing runs
            return False
        raise
    return bool(reply)


async def _in_delayed(conn: Redis, key: str, task_id: str, scan: int) -> bytes | None:
    seen = 0
    while seen < scan:
        count = min(PAGE, scan - seen)
        members = cast(list[bytes], await conn.zrange(key, seen, seen + count - 1))
        for member in members:
            body = _body_of(member)
            if names_task(body, task_id):
                return body
        if len(members) < count:
            return None
        seen += len(members)
    return None


def _body_of(member: bytes) -> bytes:
    """The message of a delayed member, ``<32 hex id>:<deliveries>:<data>`` (see
    ``delayed_member``); a member that is not ours, as it is."""
    sep = member.find(b":", 33)
    return member[sep + 1 :] if len(member) > 33 and member[32:33] == b":" and sep > 0 else member
