"""Batched settling on Redis: fewer round trips, and still never an early acknowledgement."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from asyncjobs.brokers.redis.batch import PipelineBatcher
from asyncjobs.brokers.redis.streams import GROUP, stream_key
from tests.brokers.test_redis_streams import message, worker, worker_on_private_redis
from tests.support.freeze import frozen

pytestmark = pytest.mark.redis


async def test_acks_finished_in_one_step_share_a_round_trip(
    redis_url: str, prefix: str, conn: Redis
) -> None:
    broker = await worker(redis_url, prefix)
    try:
        for i in range(200):
            await broker.publish("default", message(b"%d" % i))
        deliveries = await broker.fetch(200, 1.0)
        assert len(deliveries) == 200
        await asyncio.gather(*(d.ack() for d in deliveries))
        # Each ack returned after Redis had it: nothing pending, nothing left.
        stream = stream_key(prefix, "default")
        assert (await conn.xpending(stream, GROUP))["pending"] == 0
        assert await conn.xlen(stream) == 0
        # 200 acks: not 200 round trips, and one XACK + one XDEL per round trip.
        assert broker.settler.pipelines_sent <= 2
        assert broker.settler.commands_sent == 2 * broker.settler.pipelines_sent
        assert broker.held == {}
    finally:
        await broker.shutdown()


async def test_an_ack_does_not_return_before_redis_has_it(prefix: str, tmp_path: Path) -> None:
    async with worker_on_private_redis(tmp_path, prefix) as (server, broker):
        await broker.publish("default", message(b"1"))
        [delivery] = await broker.fetch(1, 1.0)
        assert server.process is not None
        with frozen(server.process.popen.pid):  # connected, but nothing answers
            ack = asyncio.create_task(delivery.ack())
            done, _ = await asyncio.wait({ack}, timeout=0.5)
            assert not done, "ack returned while Redis could not have acknowledged it"
        await asyncio.wait_for(ack, 10)
        async with Redis.from_url(server.url) as check:
            stream = stream_key(prefix, "default")
            assert (await check.xpending(stream, GROUP))["pending"] == 0


@pytest.fixture
async def batcher(redis_url: str) -> AsyncIterator[PipelineBatcher]:
    client = Redis.from_url(redis_url)
    batcher = PipelineBatcher(lambda: client, retry_for_s=1.0)
    yield batcher
    await batcher.close(1.0)
    await client.aclose()


async def test_a_commands_error_fails_only_its_caller(
    batcher: PipelineBatcher, prefix: str, conn: Redis
) -> None:
    not_a_stream = f"{prefix}:string"
    await conn.set(not_a_stream, "x")
    good, bad = await asyncio.gather(
        batcher.execute(("SET", f"{prefix}:k", "v")),
        batcher.execute(("XACK", not_a_stream, GROUP, "0-1")),
        return_exceptions=True,
    )
    assert good == [b"OK"]
    assert isinstance(bad, ResponseError) and "WRONGTYPE" in str(bad)
    assert batcher.pipelines_sent == 1
    assert await conn.get(f"{prefix}:k") == b"v"


async def test_a_cancelled_caller_does_not_drop_the_others(
    batcher: PipelineBatcher, prefix: str, conn: Redis
) -> None:
    calls = [asyncio.create_task(batcher.execute(("SET", f"{prefix}:{i}", i))) for i in range(10)]
    await asyncio.sleep(0)  # one step: every call has handed its command over
    calls[3].cancel()
    results = await asyncio.gather(*calls, return_exceptions=True)
    assert isinstance(results[3], asyncio.CancelledError)
    assert [r for i, r in enumerate(results) if i != 3] == [[b"OK"]] * 9
    # The cancelled caller's command was already handed over: it went out too.
    assert await conn.mget([f"{prefix}:{i}" for i in range(10)]) == [
        str(i).encode() for i in range(10)
    ]


async def test_merged_acks_fail_only_for_the_stream_that_failed(
    batcher: PipelineBatcher, prefix: str, conn: Redis
) -> None:
    good, not_a_stream = f"{prefix}:good", f"{prefix}:string"
    await conn.xgroup_create(good, GROUP, id="0", mkstream=True)
    ids = [await conn.xadd(good, {"data": b"%d" % i}) for i in range(3)]
    await conn.xreadgroup(GROUP, "c", {good: ">"})
    await conn.set(not_a_stream, "x")
    results = await asyncio.gather(
        *(batcher.acknowledge(good, GROUP, entry_id) for entry_id in ids),
        batcher.acknowledge(not_a_stream, GROUP, b"0-1"),
        return_exceptions=True,
    )
    assert results[:3] == [None, None, None]
    assert isinstance(results[3], ResponseError)
    assert batcher.pipelines_sent == 1 and batcher.commands_sent == 4
    assert await conn.xlen(good) == 0
    assert (await conn.xpending(good, GROUP))["pending"] == 0


def test_batches_are_packed_as_redis_py_packs_them() -> None:
    from redis.asyncio.connection import Connection

    from asyncjobs.brokers.redis.link import packed

    commands = [
        ("SET", "asyncjobs:result:é", b'{"return_value": null}', "EX", 86_400),
        ("XACK", "asyncjobs:stream:default", "asyncjobs", b"1-0", b"1700000000000-12"),
        ("XDEL", "s", b"1-0"),
        ("SET", "k", 1.5),
        ("SET", "empty", b""),
    ]
    assert packed(commands) == b"".join(Connection().pack_commands(commands))
    with pytest.raises(TypeError):
        packed([("SET", "k", True)])
