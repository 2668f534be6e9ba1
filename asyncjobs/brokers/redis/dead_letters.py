"""The Redis dead-letter stream ``{prefix}:{queue}:dead``: snapshots in pages, replay by id.

A dead letter is added with an automatic id (``<ms>-<seq>``), so ids only grow: the
letters present at some moment are the entries up to the last id at that moment. A
snapshot reads that id once, then pages through the stream up to it (``XRANGE`` from an
exclusive start), never the whole stream at once; letters dead-lettered meanwhile, a
replayed letter failing again included, get larger ids and stay out of it.

A replay is one Lua script per batch: for each id still in the stream, ``XADD`` its body
to the queue's stream and ``XDEL`` it, atomically; ids already gone (another operator
replayed or deleted them) are returned and nothing is sent for them.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from typing import Any, cast

from redis.asyncio import Redis

from asyncjobs.brokers.dead_letters import DeadLetter

# KEYS[1] dead-letter stream, KEYS[2] the queue's stream. ARGV: id, body, id, body, ...
# Returns the ids that were not in the dead-letter stream.
REPLAY = """
local gone = {}
for i = 1, #ARGV, 2 do
  if #redis.call('XRANGE', KEYS[1], ARGV[i], ARGV[i]) == 0 then
    gone[#gone + 1] = ARGV[i]
  else
    redis.call('XADD', KEYS[2], '*', 'data', ARGV[i + 1], 'deliveries', '0')
    redis.call('XDEL', KEYS[1], ARGV[i])
  end
end
return gone
"""

# One script runs while Redis serves nobody else: keep each batch short.
REPLAY_BATCH = 200
REPLAY_BATCH_BYTES = 1 << 20
STREAM_ID = re.compile(r"\d+(-\d+)?")  # anything else is no entry (and an error in XRANGE)

EntryList = list[tuple[bytes, dict[bytes, bytes]]]


async def snapshot(
    redis: Callable[[], Redis], key: str, page_size: int
) -> AsyncIterator[list[DeadLetter]]:
    """The dead letters in ``key`` when this starts, oldest first, ``page_size`` at a time."""
    async with redis() as conn:
        newest = cast(EntryList, await conn.xrevrange(key, count=1))
    if not newest:
        return
    last, start = newest[0][0], b"-"
    while True:
        # No connection is held between pages: the caller replays with its own.
        async with redis() as conn:
            entries = cast(EntryList, await conn.xrange(key, start, last, count=page_size))
        if entries:
            yield letters(entries)
        if len(entries) < page_size:
            return
        start = b"(" + entries[-1][0]


async def replay(
    redis: Callable[[], Redis], dead_key: str, stream: str, bodies: Mapping[str, bytes]
) -> set[str]:
    """Move each listed dead letter still there to ``stream`` with its new body; the ids
    that were gone."""
    gone = {letter_id for letter_id in bodies if not STREAM_ID.fullmatch(letter_id)}
    wanted = [(letter_id, body) for letter_id, body in bodies.items() if letter_id not in gone]
    async with redis() as conn:
        for batch in _batches(wanted):
            args = [part for pair in batch for part in pair]
            reply: list[Any] = await conn.eval(REPLAY, 2, dead_key, stream, *args)
            gone.update(_text(letter_id) for letter_id in reply)
    return gone


def _batches(items: list[tuple[str, bytes]]) -> Iterator[list[tuple[str, bytes]]]:
    batch: list[tuple[str, bytes]] = []
    size = 0
    for item in items:
        if batch and (len(batch) >= REPLAY_BATCH or size + len(item[1]) > REPLAY_BATCH_BYTES):
            yield batch
            batch, size = [], 0
        batch.append(item)
        size += len(item[1])
    if batch:
        yield batch


def letters(entries: EntryList) -> list[DeadLetter]:
    return [DeadLetter.from_json(fields[b"record"], _text(id_)) for id_, fields in entries]


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
