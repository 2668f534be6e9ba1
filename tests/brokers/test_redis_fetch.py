"""A worker's fetch: XREADGROUP on a connection of its own, its raw reply read directly
(``asyncjobs.brokers.redis.link``), in either protocol's shape, and a connection Redis
closed while idle (a restart) replaced without a failed fetch."""

from __future__ import annotations

from pathlib import Path

from asyncjobs.brokers.redis.streams import stream_entries
from tests.brokers.test_redis_streams import message, worker, worker_on_private_redis


def test_both_protocols_replies_read_the_same() -> None:
    resp2 = [[b"s", [[b"1-0", [b"data", b"x", b"deliveries", b"2"]], [b"2-0", None]]]]
    resp3 = {b"s": [[b"1-0", [b"data", b"x", b"deliveries", b"2"]], [b"2-0", None]]}
    expected = [(b"s", [(b"1-0", {b"data": b"x", b"deliveries": b"2"}), (b"2-0", {})])]
    assert stream_entries(resp2) == stream_entries(resp3) == expected
    assert stream_entries(None) == []  # the block ran out


async def test_fetch_reads_what_was_published_and_answers_a_missing_group(
    redis_url: str, prefix: str
) -> None:
    broker = await worker(redis_url, prefix)
    try:
        await broker.publish("default", message(b"one"))
        [delivery] = await broker.fetch(10, 1.0)
        assert delivery.data == b"one" and delivery.delivery_count == 1
        await delivery.ack()
        assert await broker.fetch(10, 0.05) == []  # nothing more: the block runs out
        async with broker.redis() as conn:
            await conn.delete(f"{prefix}:default")  # the stream and its group gone
        assert await broker.fetch(10, 0.05) == []  # declared again, read later
        await broker.publish("default", message(b"two"))
        [again] = await broker.fetch(10, 1.0)
        assert again.data == b"two"
        await again.ack()
    finally:
        await broker.shutdown()


async def test_a_restart_of_redis_costs_no_failed_fetch(prefix: str, tmp_path: Path) -> None:
    async with worker_on_private_redis(tmp_path, prefix) as (server, broker):
        assert await broker.fetch(10, 0.05) == []  # the fetch's connection is open
        server.restart()  # it keeps its data (AOF), closes every connection
        await broker.publish("default", message(b"after"))
        [delivery] = await broker.fetch(10, 1.0)  # on a new connection, no error
        assert delivery.data == b"after"
        await delivery.ack()
