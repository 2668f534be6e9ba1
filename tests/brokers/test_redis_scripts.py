"""The Redis transport's Lua scripts read fields that whoever wrote the entry chose: they
never delete an entry without writing its copy first, whatever the fields say."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from redis.asyncio import Redis

from asyncjobs.brokers.redis.delayed import DelayedPromoter
from asyncjobs.brokers.redis.leases import LeaseKeeper
from asyncjobs.brokers.redis.streams import GROUP, stream_key
from tests.support.helpers import wait_until

pytestmark = pytest.mark.redis

Fields = dict[bytes, bytes]


async def held_by_a_dead_worker(conn: Redis, stream: str, fields: Fields) -> None:
    """``fields`` as an entry that a worker named ``dead:1`` read and never settled."""
    await conn.xgroup_create(stream, GROUP, id="0", mkstream=True)
    await conn.xadd(stream, fields)  # type: ignore[arg-type]
    await conn.xreadgroup(GROUP, "dead:1", {stream: ">"}, count=10)


def keeper(conn: Redis, stream: str, consumer: str = "alive:2") -> LeaseKeeper:
    return LeaseKeeper(lambda: conn, [stream], GROUP, consumer, lease_s=0.001, held=list)


async def entries(conn: Redis, stream: str) -> list[Fields]:
    return [fields for _, fields in await conn.xrange(stream)]


async def reclaimed(conn: Redis, stream: str) -> Callable[[], object]:
    lease = keeper(conn, stream)

    async def probe() -> bool:
        return await lease.reclaim(conn) > 0

    return probe


@pytest.mark.parametrize(
    ("fields", "copy"),
    [
        # A count: + 1, and no hand-back flag any more (a crash suspect now).
        (
            {b"data": b"d", b"deliveries": b"2", b"handed_back": b"1"},
            {b"data": b"d", b"deliveries": b"3"},
        ),
        ({b"data": b"d"}, {b"data": b"d", b"deliveries": b"1"}),  # a raw taskiq producer
        # Not a count: copied as it is, for the worker to dead-letter with a reason (the
        # script once failed on it after deleting the entry).
        ({b"data": b"d", b"deliveries": b"abc"}, {b"data": b"d", b"deliveries": b"abc"}),
        ({b"data": b"d", b"deliveries": b"-1000"}, {b"data": b"d", b"deliveries": b"-1000"}),
        # No data: copied too (dead-lettered as undecodable), not deleted silently.
        ({b"other": b"x"}, {b"other": b"x", b"deliveries": b"1"}),
    ],
)
async def test_reclaim_copies_every_expired_entry_before_removing_it(
    conn: Redis, prefix: str, fields: Fields, copy: Fields
) -> None:
    stream = stream_key(prefix, "default")
    await held_by_a_dead_worker(conn, stream, fields)
    await wait_until(await reclaimed(conn, stream), what="the expired entry to be reclaimed")
    assert await entries(conn, stream) == [copy]
    assert (await conn.xpending(stream, GROUP))["pending"] == 0


async def test_release_on_shutdown_gives_back_entries_unchanged(conn: Redis, prefix: str) -> None:
    stream = stream_key(prefix, "default")
    fields = {b"data": b"d", b"deliveries": b"2", b"handed_back": b"1"}
    await held_by_a_dead_worker(conn, stream, fields)
    assert await keeper(conn, stream, consumer="dead:1").release(conn) == 1
    assert await entries(conn, stream) == [fields]  # not run here: count and flag kept
    assert await conn.xinfo_consumers(stream, GROUP) == []


async def test_a_delayed_member_that_is_not_ours_is_delivered_not_dropped(
    conn: Redis, prefix: str
) -> None:
    zset, stream = f"{prefix}:default:delayed", stream_key(prefix, "default")
    await conn.zadd(zset, {b"written by hand": 0})
    moved, _, _ = await DelayedPromoter.promote(conn, zset, stream)
    assert moved == 1
    assert await entries(conn, stream) == [{b"data": b"written by hand", b"deliveries": b"0"}]
    assert await conn.zcard(zset) == 0
