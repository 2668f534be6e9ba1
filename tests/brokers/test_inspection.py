"""Queue figures (``asyncjobs.brokers.inspection``) against the real brokers.

Each test puts a known number of messages in each state in queue ``default`` (2 dead
letters, 2 fetched and not acknowledged, 3 waiting, 1 scheduled an hour ahead), then
checks the figures, and checks them against what the broker itself reports: Redis's
XINFO GROUPS / XPENDING / XLEN / ZCARD, RabbitMQ's passive declare and, on a private
node with the management plugin (``tests/faults/rabbitmq_node.py``), its HTTP API.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from typing import Any
from urllib.parse import quote

import pytest
from redis.asyncio import Redis
from taskiq.message import BrokerMessage

from asyncjobs.brokers.base import Delivery, ReliableBroker, TransportOptions
from asyncjobs.brokers.dead_letters import DeadLetter, Reason
from asyncjobs.brokers.errors import BrokerConnectionError, BrokerError, UnknownQueueError
from asyncjobs.brokers.inspection import QueueStats, inspect_queues
from asyncjobs.brokers.rabbitmq.broker import AmqpBroker, dead_letter_queue_name, queue_name
from asyncjobs.brokers.rabbitmq.delay import delay_bucket_ms, delay_queue_name
from asyncjobs.brokers.rabbitmq.inspection import AMQP_NOTE, list_queues, vhost_of
from asyncjobs.brokers.redis.broker import RedisStreamsBroker
from asyncjobs.brokers.redis.delayed import delayed_key
from asyncjobs.brokers.redis.inspection import LAG_UNKNOWN_NOTE
from asyncjobs.brokers.redis.streams import GROUP, dead_letter_key, stream_key
from example.processes import delete_amqp_queues
from tests.faults.rabbitmq_node import PrivateRabbit, rabbitmq_node  # noqa: F401 - fixture
from tests.support.helpers import fetch_n, wait_until

QUEUES = ("default", "other")
DELAY_S = 3600.0
# waiting, in_flight, scheduled, dead_letters, consumers, backlog after fill()
FILLED = (3, 2, 1, 2, 1, 5)


def message(body: str) -> BrokerMessage:
    return BrokerMessage(task_id=uuid.uuid4().hex, task_name="t", message=body.encode(), labels={})


def figures(stats: QueueStats) -> tuple[Any, ...]:
    return (
        stats.waiting,
        stats.in_flight,
        stats.scheduled,
        stats.dead_letters,
        stats.consumers,
        stats.backlog,
    )


async def fill(client: ReliableBroker, worker: ReliableBroker) -> list[Delivery]:
    """2 dead letters, 2 in flight (returned: keep them unsettled), 3 waiting, 1 scheduled
    in queue ``default``. The worker's capacity is 2, so it takes no more than that."""
    for i in range(2):
        await client.kick(message(f"dead {i}"))
    for delivery in await fetch_n(worker, 2):
        record = DeadLetter(body=delivery.data, queue=delivery.queue, reason=Reason.REJECTED)
        await delivery.dead_letter(record)
    for i in range(2):
        await client.kick(message(f"held {i}"))
    held = await fetch_n(worker, 2)
    for i in range(3):
        await client.kick(message(f"waiting {i}"))
    await client.publish_at("default", message("later"), time.time() + DELAY_S)
    return held


class Brokers:
    """The brokers a test built, shut down afterwards."""

    def __init__(self, make: Callable[[], ReliableBroker]) -> None:
        self.make = make
        self.built: list[ReliableBroker] = []

    def client(self) -> ReliableBroker:
        broker = self.make()
        self.built.append(broker)
        return broker

    async def started_client(self) -> ReliableBroker:
        """A client started in this loop, which holds it (the tests call its internals)."""
        broker = self.client()
        await broker.startup()
        return broker

    async def worker(self, capacity: int = 2) -> ReliableBroker:
        broker = self.client()
        broker.is_worker_process = True
        broker.receiver_attached = True
        await broker.startup()
        await broker.set_capacity(capacity)
        return broker

    async def close(self) -> None:
        for broker in self.built:
            if broker.started:
                await broker.shutdown()


def options(prefix: str) -> TransportOptions:
    # A long lease: fetched entries stay with their (live) worker throughout the test.
    return TransportOptions(queues=QUEUES, key_prefix=prefix, lease_timeout_s=60)


# -- Redis Streams -------------------------------------------------------------------
@pytest.fixture
async def redis_brokers(redis_url: str, prefix: str, redis_cleanup: None) -> AsyncIterator[Brokers]:
    brokers = Brokers(lambda: RedisStreamsBroker(redis_url, options(prefix)))
    yield brokers
    await brokers.close()


@pytest.fixture
async def redis_conn(redis_url: str) -> AsyncIterator[Redis]:
    conn = Redis.from_url(redis_url)
    yield conn
    await conn.aclose()


async def group_info(conn: Redis, stream: str) -> dict[str, Any]:
    [group] = [g for g in await conn.xinfo_groups(stream) if g["name"] in (GROUP, GROUP.encode())]
    return dict(group)


@pytest.mark.redis
async def test_redis_figures_are_what_redis_reports(
    redis_brokers: Brokers, redis_conn: Redis, prefix: str
) -> None:
    client, worker = await redis_brokers.started_client(), await redis_brokers.worker()
    await fill(client, worker)
    before = time.time()
    await client.kick(message("newest"))  # 4 waiting now; the age is the oldest's
    [default, other] = await inspect_queues(client, QUEUES)
    assert figures(default) == (4, 2, 1, 2, 1, 6)
    # Redis (7.0) adds a consumer to a group when it first reads an entry of that
    # stream: the worker listens to "other" too, but is not counted there yet.
    assert figures(other) == (0, 0, 0, 0, 0, 0)
    assert (
        other.consumers == (await group_info(redis_conn, stream_key(prefix, "other")))["consumers"]
    )
    assert default.notes == ()

    stream = stream_key(prefix, "default")
    group = await group_info(redis_conn, stream)
    assert default.waiting == group["lag"]
    assert (
        default.in_flight
        == group["pending"]
        == (await redis_conn.xpending(stream, GROUP))["pending"]
    )
    assert default.consumers == group["consumers"]
    assert default.backlog == await redis_conn.xlen(stream)  # KEDA's streamLength
    assert default.scheduled == await redis_conn.zcard(delayed_key(prefix, "default"))
    assert default.dead_letters == await redis_conn.xlen(dead_letter_key(prefix, "default"))

    # The oldest waiting entry is the first after the group's last-delivered-id.
    last = group["last-delivered-id"]
    [(first_id, _)] = await redis_conn.xrange(stream, b"(" + last, "+", count=1)
    seconds, micros = await redis_conn.time()
    expected = seconds + micros / 1e6 - int(first_id.split(b"-")[0]) / 1000
    assert default.oldest_waiting_age_s is not None
    assert default.oldest_waiting_age_s >= time.time() - before - 0.05  # older than "newest"
    assert 0 <= default.oldest_waiting_age_s <= expected + 0.01


@pytest.mark.redis
async def test_redis_lag_is_null_after_an_out_of_order_ack(
    redis_brokers: Brokers, redis_conn: Redis, prefix: str
) -> None:
    """Redis's weak spot: with an older entry still pending, acking and deleting a newer
    one makes XINFO GROUPS report the lag as NULL (KEDA's lagCount then reads 0 or -1).
    The figures fall back to XLEN - pending."""
    client, worker = await redis_brokers.started_client(), await redis_brokers.worker()
    for i in range(4):
        await client.kick(message(f"m{i}"))
    first, second = await fetch_n(worker, 2)
    await second.ack()  # XACK + XDEL, while the first is still running
    stream = stream_key(prefix, "default")
    assert (await group_info(redis_conn, stream))["lag"] is None
    [stats] = await inspect_queues(client, ["default"])
    assert (stats.waiting, stats.in_flight, stats.backlog) == (2, 1, 3)
    assert stats.backlog == await redis_conn.xlen(stream)
    assert stats.notes == (LAG_UNKNOWN_NOTE,)
    await first.ack()  # nothing deleted after the last delivered entry: the lag is back
    [stats] = await inspect_queues(client, ["default"])
    assert (await group_info(redis_conn, stream))["lag"] == stats.waiting == 2
    assert stats.notes == ()


@pytest.mark.redis
async def test_redis_stream_without_a_group_is_all_waiting(
    redis_brokers: Brokers, redis_conn: Redis, prefix: str
) -> None:
    # A raw taskiq producer can create the stream before any asyncjobs process ran.
    client = await redis_brokers.started_client()
    await client.ensure_started()  # declares the groups of every queue...
    stream = stream_key(prefix, "default")
    await redis_conn.xgroup_destroy(stream, GROUP)  # ...so remove this one again
    for i in range(2):
        await redis_conn.xadd(stream, {"data": f"raw {i}"})
    [stats] = await inspect_queues(client, ["default"])
    assert figures(stats) == (2, 0, 0, 0, 0, 2)
    assert stats.oldest_waiting_age_s is not None
    assert "no worker has consumed" in stats.notes[0]


@pytest.mark.redis
async def test_redis_unreachable_is_a_connection_error_without_password(free_port: int) -> None:
    broker = RedisStreamsBroker(f"redis://:s3cret@127.0.0.1:{free_port}/0", options("unreachable"))
    with pytest.raises(BrokerConnectionError) as caught:
        await inspect_queues(broker, ["default"])
    assert "s3cret" not in str(caught.value) and "***" in str(caught.value)


async def test_an_unknown_queue_is_refused_before_connecting() -> None:
    broker = RedisStreamsBroker("redis://127.0.0.1:1/0", options("x"))
    with pytest.raises(UnknownQueueError, match="nope"):
        await inspect_queues(broker, ["nope"])


# -- RabbitMQ ------------------------------------------------------------------------
async def declared(url: str, name: str) -> tuple[int, int]:
    """(message_count, consumer_count) of a passive declare, straight from RabbitMQ."""
    import aio_pika

    connection = await aio_pika.connect(url, timeout=10)
    try:
        channel = await connection.channel()
        result = (await channel.declare_queue(name, passive=True)).declaration_result
        return result.message_count or 0, result.consumer_count or 0
    finally:
        await connection.close()


def amqp_brokers(url: str, prefix: str, management_url: str | None = None) -> Brokers:
    settings = replace(options(prefix), management_url=management_url)
    return Brokers(lambda: AmqpBroker(url, settings))


async def delete_queues(url: str, prefix: str, brokers: Brokers) -> None:
    delays = {
        name
        for broker in brokers.built
        for name in broker.delay_queues.names  # type: ignore[attr-defined]
    }
    await delete_amqp_queues(url, prefix, QUEUES, also=sorted(delays))


@pytest.mark.rabbitmq
async def test_amqp_figures_without_the_management_api(amqp_url: str, prefix: str) -> None:
    brokers = amqp_brokers(amqp_url, prefix)
    try:
        client, worker = await brokers.started_client(), await brokers.worker()
        await fill(client, worker)

        async def settled() -> list[QueueStats] | None:
            found = await inspect_queues(client, QUEUES)
            return found if found[0].waiting == 3 and found[0].dead_letters == 2 else None

        default, other = await wait_until(settled, what="3 ready and 2 dead letters")
        # Unknown over AMQP: unacknowledged and delayed messages; backlog = ready only.
        assert figures(default) == (3, None, None, 2, 1, 3)
        assert figures(other) == (0, None, None, 0, 1, 0)
        assert default.oldest_waiting_age_s is None
        assert AMQP_NOTE in default.notes
        ready, consumers = await declared(amqp_url, queue_name(prefix, "default"))
        assert (default.waiting, default.consumers) == (ready, consumers)  # KEDA's amqp mode
        dead, _ = await declared(amqp_url, dead_letter_queue_name(prefix, "default"))
        assert default.dead_letters == dead
    finally:
        await brokers.close()
        await delete_queues(amqp_url, prefix, brokers)


@pytest.mark.rabbitmq
async def test_amqp_figures_from_the_management_api(
    rabbitmq_node: PrivateRabbit,  # noqa: F811 - the fixture imported above
    prefix: str,
) -> None:
    node = rabbitmq_node
    brokers = amqp_brokers(node.amqp_url, prefix, node.management_url)
    try:
        client, worker = await brokers.started_client(), await brokers.worker()
        await fill(client, worker)

        async def settled() -> list[QueueStats] | None:
            found = await inspect_queues(client, QUEUES)
            return found if figures(found[0]) == FILLED else None

        # The API's figures are statistics, refreshed every 0.5 s on this node.
        default, other = await wait_until(settled, what=f"the figures {FILLED}")
        assert figures(other) == (0, 0, 0, 0, 1, 0)
        assert default.oldest_waiting_age_s is None

        def api(name: str) -> dict[str, Any]:
            found = node.api(f"/api/queues/%2F/{quote(name, safe='')}")
            assert isinstance(found, dict)
            return found

        main = api(queue_name(prefix, "default"))
        assert (default.waiting, default.in_flight, default.consumers) == (
            main["messages_ready"],
            main["messages_unacknowledged"],
            main["consumers"],
        )
        assert default.backlog == main["messages"]  # KEDA's QueueLength over http
        delay = delay_queue_name(prefix, "default", delay_bucket_ms(DELAY_S))
        assert default.scheduled == api(delay)["messages"]
        assert default.dead_letters == api(dead_letter_queue_name(prefix, "default"))["messages"]
        ready, consumers = await declared(node.amqp_url, queue_name(prefix, "default"))
        assert (default.waiting, default.consumers) == (ready, consumers)
    finally:
        await brokers.close()
        await delete_queues(node.amqp_url, prefix, brokers)


@pytest.mark.rabbitmq
async def test_management_api_errors_name_no_password(
    rabbitmq_node: PrivateRabbit,  # noqa: F811 - the fixture imported above
    free_port: int,
) -> None:
    node = rabbitmq_node
    wrong = f"http://guest:n0tit@127.0.0.1:{node.management_port}/"
    with pytest.raises(BrokerError, match="401") as caught:
        await list_queues(wrong, "/", "x.")
    assert "n0tit" not in str(caught.value)
    with pytest.raises(BrokerError, match="404"):
        await list_queues(node.management_url, "no-such-vhost", "x.")
    with pytest.raises(BrokerConnectionError) as unreachable:
        await list_queues(f"http://guest:n0tit@127.0.0.1:{free_port}/", "/", "x.")
    assert "n0tit" not in str(unreachable.value)


def test_the_vhost_comes_from_the_broker_url_path() -> None:
    assert vhost_of("amqp://u:p@h:5672/") == "/"
    assert vhost_of("amqp://u:p@h:5672") == "/"
    assert vhost_of("amqp://u:p@h:5672/%2F") == "/"
    assert vhost_of("amqp://u:p@h/jobs") == "jobs"
    assert vhost_of("amqps://u:p@h/a%2Fb") == "a/b"
