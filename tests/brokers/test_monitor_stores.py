"""The monitor store (``brokers.stores.MonitorStore``): the same semantics on the real
Redis and in memory: expiring worker documents, per-minute counts, one backlog sample
per minute, everything under ``{KEY_PREFIX}:monitor:`` and expiring."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from asyncjobs.brokers.memory.server import discard_server
from asyncjobs.brokers.stores import MonitorStore
from asyncjobs.brokers.transport import transport_for
from tests.support.helpers import wait_until

MEMORY = "memory://monitor"


@pytest.fixture(params=["redis", "memory"])
async def store(
    request: pytest.FixtureRequest, prefix: str, redis_url: str, redis_cleanup: None
) -> AsyncIterator[MonitorStore]:
    url = redis_url if request.param == "redis" else MEMORY
    build = transport_for(url).build_monitor_store
    assert build is not None
    made = build(url, prefix)
    yield made
    await made.aclose()
    discard_server(MEMORY, prefix)


async def test_a_worker_document_lives_as_long_as_its_ttl(store: MonitorStore) -> None:
    await store.register("h:1:a", b'{"id": "h:1:a"}', ttl_s=0.4)
    await store.register("h:2:b", b"\xff not utf-8", ttl_s=30)
    assert await store.workers() == {"h:1:a": b'{"id": "h:1:a"}', "h:2:b": b"\xff not utf-8"}

    async def expired() -> bool:
        return "h:1:a" not in await store.workers()

    await wait_until(expired, timeout=5, what="the first document to expire")
    await store.register("h:2:b", b"again", ttl_s=30)  # the heartbeat replaces it
    assert await store.workers() == {"h:2:b": b"again"}
    await store.unregister("h:2:b")
    assert await store.workers() == {}


async def test_counts_add_up_per_queue_and_minute(store: MonitorStore) -> None:
    await store.add_counts(600, {("default", "succeeded"): 3, ("default", "failed"): 1}, 60)
    await store.add_counts(600, {("default", "succeeded"): 2, ("other", "dead_lettered"): 4}, 60)
    await store.add_counts(720, {("default", "failed"): 5}, 60)
    await store.add_backlog(660, "default", 17, 60)
    assert await store.counts(["default", "other", "idle"], 600, 720) == {
        "default": {
            600: {"succeeded": 5, "failed": 1},
            660: {"backlog": 17},
            720: {"failed": 5},
        },
        "other": {600: {"dead_lettered": 4}},
        "idle": {},
    }
    assert await store.counts(["default"], 660, 660) == {"default": {660: {"backlog": 17}}}


async def test_one_owner_samples_each_minute(store: MonitorStore) -> None:
    assert await store.claim_sample(600, "w1", 60)
    assert not await store.claim_sample(600, "w2", 60)
    assert not await store.claim_sample(600, "w1", 60)
    assert await store.claim_sample(660, "w2", 60)


async def test_redis_keys_live_under_the_prefix_and_all_expire(
    prefix: str, redis_url: str, conn: Redis
) -> None:
    build = transport_for(redis_url).build_monitor_store
    assert build is not None
    store = build(redis_url, prefix)
    try:
        await store.register("h:1:a", b"{}", 15)
        await store.add_counts(600, {("default", "succeeded"): 1}, 7200)
        await store.add_backlog(600, "default", 3, 7200)
        await store.claim_sample(600, "h:1:a", 120)
        keys = sorted([key.decode() async for key in conn.scan_iter(match=f"{prefix}*")])
        assert keys == [
            f"{prefix}:monitor:minute:default:600",
            f"{prefix}:monitor:sample:600",
            f"{prefix}:monitor:worker:h:1:a",
            f"{prefix}:monitor:workers",
        ]
        for key in keys:
            assert await conn.ttl(key) > 0, key
        # A field some other writer left that is not a number is not one of ours.
        await conn.hset(f"{prefix}:monitor:minute:default:600", "failed", "lots")
        assert await store.counts(["default"], 600, 600) == {
            "default": {600: {"succeeded": 1, "backlog": 3}}
        }
    finally:
        await store.aclose()


async def test_the_redis_store_works_from_any_event_loop(prefix: str, redis_url: str) -> None:
    """A worker's loop writes, the broker's home loop (another thread) and a command's
    ``asyncio.run`` read: each gets connections of its own loop."""
    build = transport_for(redis_url).build_monitor_store
    assert build is not None
    store = build(redis_url, prefix)
    try:
        await store.register("h:1:a", b"{}", 15)
        seen: list[dict[str, bytes]] = []

        async def read_elsewhere() -> None:
            seen.append(await store.workers())
            await store.aclose()  # what the app does as its home loop ends

        thread = threading.Thread(target=lambda: asyncio.run(read_elsewhere()))
        thread.start()
        await asyncio.to_thread(thread.join, 10)
        assert seen == [{"h:1:a": b"{}"}]
        assert await store.workers() == {"h:1:a": b"{}"}  # and back in this loop
        await store.unregister("h:1:a")
    finally:
        await store.aclose()


def test_rabbitmq_keeps_no_monitor() -> None:
    assert transport_for("amqp://guest:guest@127.0.0.1:5672/").build_monitor_store is None
