"""The Redis Streams transport against the real Redis (each test under its own prefix)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from redis.asyncio import Redis
from taskiq.message import BrokerMessage
from taskiq_redis import RedisStreamBroker

from asyncjobs.brokers.base import TransportOptions
from asyncjobs.brokers.dead_letters import DeadLetter, Reason
from asyncjobs.brokers.errors import UnknownQueueError
from asyncjobs.brokers.redis.broker import RedisStreamsBroker
from asyncjobs.brokers.redis.streams import GROUP, dead_letter_key, stream_key
from tests.faults.redis_server import PrivateRedis
from tests.support.helpers import wait_until

pytestmark = pytest.mark.redis


def options(prefix: str) -> TransportOptions:
    return TransportOptions(queues=("default", "other"), default_queue="default", key_prefix=prefix)


def message(body: bytes = b"{}", queue: str | None = None) -> BrokerMessage:
    labels = {"queue_name": queue} if queue else {}
    return BrokerMessage(task_id=uuid.uuid4().hex, task_name="t", message=body, labels=labels)


async def worker(url: str, prefix: str) -> RedisStreamsBroker:
    broker = RedisStreamsBroker(url, options(prefix))
    broker.is_worker_process = True
    broker.receiver_attached = True
    await broker.startup()
    return broker


@asynccontextmanager
async def worker_on_private_redis(
    tmp_path: Path, prefix: str
) -> AsyncIterator[tuple[PrivateRedis, RedisStreamsBroker]]:
    """A worker's broker on a Redis of the test's own (to freeze or restart), shut down
    after the block."""
    with PrivateRedis(tmp_path / "redis") as server:
        broker = await worker(server.url, prefix)
        try:
            yield server, broker
        finally:
            await broker.shutdown()


@pytest.fixture
async def client(
    redis_url: str, prefix: str, redis_cleanup: None
) -> AsyncIterator[RedisStreamsBroker]:
    broker = RedisStreamsBroker(redis_url, options(prefix))
    yield broker
    await broker.shutdown()


async def test_ack_deletes_the_entry(
    client: RedisStreamsBroker, redis_url: str, prefix: str, conn: Redis
) -> None:
    await client.kick(message(b"hello"))
    w = await worker(redis_url, prefix)
    try:
        [delivery] = await w.fetch(10, 0.5)
        assert (
            delivery.data == b"hello"
            and delivery.queue == "default"
            and delivery.delivery_count == 1
        )
        await delivery.ack()
        assert await conn.xlen(stream_key(prefix, "default")) == 0
        assert await conn.xpending(stream_key(prefix, "default"), GROUP) == {
            "pending": 0,
            "min": None,
            "max": None,
            "consumers": [],
        }
    finally:
        await w.shutdown()


async def test_message_sent_before_any_worker_is_delivered(
    client: RedisStreamsBroker, redis_url: str, prefix: str
) -> None:
    await client.kick(message(b"early"))  # no consumer group exists yet
    w = await worker(redis_url, prefix)
    try:
        deliveries = await w.fetch(10, 0.5)
        assert [d.data for d in deliveries] == [b"early"]
    finally:
        await w.shutdown()


async def test_taskiq_redis_default_group_misses_early_messages(
    redis_url: str, prefix: str, conn: Redis
) -> None:
    """The upstream weak spot: the group is created at '$', after the early message."""
    stream = f"{prefix}:upstream"
    await conn.xadd(stream, {b"data": b"early"})
    upstream = RedisStreamBroker(redis_url, queue_name=stream, xread_block=200)
    await upstream.startup()
    try:
        fetched = await conn.xreadgroup("taskiq", "c", {stream: ">"}, count=10, block=200)
        assert fetched == []
    finally:
        await upstream.shutdown()


async def test_routes_by_queue_label_and_refuses_unknown_queues(
    client: RedisStreamsBroker, redis_url: str, prefix: str, conn: Redis
) -> None:
    await client.kick(message(b"o", queue="other"))
    assert await conn.xlen(stream_key(prefix, "other")) == 1
    assert await conn.xlen(stream_key(prefix, "default")) == 0
    with pytest.raises(UnknownQueueError, match="nope"):
        await client.kick(message(queue="nope"))


async def test_fetch_over_several_streams_hands_back_the_surplus(
    client: RedisStreamsBroker, redis_url: str, prefix: str, conn: Redis
) -> None:
    for queue in ("default", "other"):
        for _ in range(2):
            await client.kick(message(queue.encode(), queue=queue))
    w = await worker(redis_url, prefix)
    try:
        got = await w.fetch(2, 0.5)
        assert len(got) == 2
        pending = await conn.xpending(stream_key(prefix, "default"), GROUP)
        other = await conn.xpending(stream_key(prefix, "other"), GROUP)
        assert pending["pending"] + other["pending"] == 2
        assert len(await w.fetch(10, 0.5)) == 2
    finally:
        await w.shutdown()


async def test_dead_letter_moves_atomically(
    client: RedisStreamsBroker, redis_url: str, prefix: str, conn: Redis
) -> None:
    await client.kick(message(b"poison"))
    w = await worker(redis_url, prefix)
    try:
        [delivery] = await w.fetch(1, 0.5)
        await delivery.dead_letter(
            DeadLetter(body=delivery.data, queue="default", reason=Reason.UNDECODABLE)
        )
        assert await conn.xlen(stream_key(prefix, "default")) == 0
        [(entry_id, fields)] = await conn.xrange(dead_letter_key(prefix, "default"))
        record = DeadLetter.from_json(fields[b"record"], entry_id.decode())
        assert record.body == b"poison" and record.reason is Reason.UNDECODABLE
    finally:
        await w.shutdown()


async def test_sends_from_loops_that_come_and_go(
    redis_url: str, prefix: str, redis_cleanup: None
) -> None:
    """Sends from loops that come and go (one asyncio.run per shell command, in another
    thread) are handed to the loop the client lives in; shutdown closes it there."""
    broker = RedisStreamsBroker(redis_url, options(prefix))

    def send() -> None:
        asyncio.run(broker.kick(message(b"x")))

    await asyncio.to_thread(send)
    await asyncio.to_thread(send)
    await broker.kick(message(b"x"))
    conn = Redis.from_url(redis_url)
    try:
        assert await conn.xlen(stream_key(prefix, "default")) == 3
    finally:
        await conn.aclose()
        await broker.shutdown()


async def test_lazy_start_happens_once_under_concurrent_first_calls(
    redis_url: str, prefix: str, redis_cleanup: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    broker = RedisStreamsBroker(redis_url, options(prefix))
    await broker.home.claim()  # this loop holds the client, as a server's does
    starts = 0
    gate = asyncio.Event()
    original = broker.connect

    async def slow_connect() -> None:
        nonlocal starts
        starts += 1
        await gate.wait()  # every other first call arrives while this one connects
        await original()

    monkeypatch.setattr(broker, "connect", slow_connect)
    kicks = asyncio.gather(*(broker.kick(message(b"x")) for _ in range(20)))

    async def connecting() -> bool:
        return starts == 1

    await wait_until(connecting, what="the first start")
    gate.set()
    await kicks
    assert starts == 1
    await broker.shutdown()


def test_consumer_names_are_stable_and_meaningful() -> None:
    import os
    import socket

    from asyncjobs.brokers.redis.streams import consumer_name

    assert consumer_name() == consumer_name() == f"{socket.gethostname()}:{os.getpid()}"


async def test_dead_consumers_are_pruned_and_a_clean_shutdown_leaves_the_group(
    client: RedisStreamsBroker, redis_url: str, prefix: str, conn: Redis
) -> None:
    from asyncjobs.brokers.redis.leases import LeaseKeeper

    stream = stream_key(prefix, "default")
    await client.kick(message(b"x"))
    w = await worker(redis_url, prefix)
    ghost = "ghost-host:1"
    await conn.xgroup_createconsumer(stream, GROUP, ghost)  # a dead worker's name, holding nothing
    [delivery] = await w.fetch(1, 0.5)  # ours holds one entry
    keeper = LeaseKeeper(
        w.redis, [stream], GROUP, w.consumer_name, 15, lambda: [], prune_after_s=0.01
    )

    async def ghost_gone() -> bool:
        await keeper.prune(conn)
        names = {c["name"] for c in await conn.xinfo_consumers(stream, GROUP)}
        return ghost.encode() not in names and w.consumer_name.encode() in names

    await wait_until(ghost_gone, what="the idle consumer to be pruned")
    await w.shutdown()  # hands back what it held, then leaves the group
    assert await conn.xinfo_consumers(stream, GROUP) == []
    [(_, fields)] = await conn.xrange(stream)
    assert fields[b"data"] == b"x" and delivery.data == b"x"


async def test_one_client_object_serves_every_command(
    client: RedisStreamsBroker, redis_url: str, prefix: str
) -> None:
    """taskiq-redis builds a ``Redis`` per command, and each copies ~300 response
    callbacks: a quarter of a worker's CPU. Ours is built once per connection pool."""
    from asyncjobs.brokers.redis.results import JsonRedisResultBackend

    assert client.redis() is client.redis()
    client.forget_connections()  # a new pool (a new event loop): a new client on it
    assert client.redis().connection_pool is client.connection_pool
    backend = JsonRedisResultBackend(redis_url, 60, prefix)
    assert backend.client() is backend.client()
    await backend.shutdown()
