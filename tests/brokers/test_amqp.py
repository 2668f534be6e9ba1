"""The RabbitMQ transport against the real server: routing, settlement, redelivery, drain."""

from __future__ import annotations

import asyncio
import logging
import time
import traceback
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Protocol

import aio_pika
import pytest
from aio_pika.abc import AbstractChannel
from taskiq.message import BrokerMessage

import brokers.amqp as amqp
from brokers.amqp import AmqpBroker, dead_letter_queue_name, queue_name
from brokers.base import Delivery, TransportOptions
from brokers.dead_letters import DeadLetter, Reason
from brokers.errors import BrokerConnectionError, BrokerError, UnknownQueueError

pytestmark = pytest.mark.rabbitmq

QUEUES = ("default", "emails")
WAIT_S = 10.0


class MakeBroker(Protocol):
    def __call__(
        self, *, worker: bool = True, capacity: int | None = None, url: str | None = None
    ) -> Awaitable[AmqpBroker]: ...


@pytest.fixture
def options(prefix: str) -> TransportOptions:
    return TransportOptions(
        queues=QUEUES, default_queue="default", key_prefix=prefix, max_deliveries=5
    )


@pytest.fixture
async def admin(amqp_url: str, prefix: str) -> AsyncIterator[AbstractChannel]:
    """A plain channel for checks; deletes this test's queues and exchange afterwards."""
    connection = await aio_pika.connect(amqp_url)
    channel = await connection.channel()
    yield channel
    channel = await connection.channel()  # a failed passive check may have closed it
    for queue in QUEUES:
        await channel.queue_delete(queue_name(prefix, queue))
        await channel.queue_delete(dead_letter_queue_name(prefix, queue))
    await channel.exchange_delete(prefix)
    await connection.close()


@pytest.fixture
async def make_broker(
    amqp_url: str, options: TransportOptions, admin: AbstractChannel
) -> AsyncIterator[MakeBroker]:
    started: list[AmqpBroker] = []

    async def make(
        *, worker: bool = True, capacity: int | None = None, url: str | None = None
    ) -> AmqpBroker:
        broker = AmqpBroker(url or amqp_url, options)
        broker.is_worker_process = worker
        broker.receiver_attached = True
        started.append(broker)
        await broker.startup()
        if capacity is not None:
            await broker.set_capacity(capacity)
        return broker

    yield make
    for broker in started:
        await broker.shutdown()


def message(body: bytes = b"payload", queue: str | None = None) -> BrokerMessage:
    labels = {"queue_name": queue} if queue else {}
    return BrokerMessage(
        task_id=uuid.uuid4().hex, task_name="tests:task", message=body, labels=labels
    )


async def eventually(condition: Callable[[], Awaitable[bool]], what: str) -> None:
    """Poll ``condition`` until it holds, failing after WAIT_S."""
    deadline = time.monotonic() + WAIT_S
    while not await condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def fetch_exactly(broker: AmqpBroker, count: int) -> list[Delivery]:
    deliveries: list[Delivery] = []
    deadline = time.monotonic() + WAIT_S
    while len(deliveries) < count and time.monotonic() < deadline:
        deliveries += await broker.fetch(count - len(deliveries), timeout_s=WAIT_S)
    assert len(deliveries) == count
    return deliveries


async def ready(broker: AmqpBroker, queue: str = "default") -> int:
    return (await broker.queue_depths())[queue][0]


async def test_publish_fetch_ack_removes_the_message(make_broker: MakeBroker) -> None:
    web = await make_broker(worker=False)
    worker = await make_broker(capacity=4)
    sent = message(b'{"x": 1}')
    await web.kick(sent)

    [delivery] = await fetch_exactly(worker, 1)
    assert (delivery.data, delivery.queue, delivery.delivery_count) == (sent.message, "default", 1)
    assert isinstance(delivery, amqp.AmqpDelivery)
    assert delivery.message.headers["task_id"] == sent.task_id
    await delivery.ack()
    await worker.shutdown()  # an unacked message would be ready again now

    assert await web.queue_depths() == {"default": (0, 0), "emails": (0, 0)}


async def test_routes_by_queue_label_to_a_queue_published_before_any_consumer(
    make_broker: MakeBroker,
) -> None:
    web = await make_broker(worker=False)
    await web.kick(message(b"mail", queue="emails"))
    assert await web.queue_depths() == {"default": (0, 0), "emails": (1, 0)}
    with pytest.raises(UnknownQueueError):
        await web.kick(message(queue="nope"))

    worker = await make_broker(capacity=1)
    [delivery] = await fetch_exactly(worker, 1)
    assert (delivery.data, delivery.queue) == (b"mail", "emails")
    await delivery.ack()
    assert await worker.queue_depths() == {"default": (0, 1), "emails": (0, 1)}


async def test_unroutable_publish_raises(make_broker: MakeBroker) -> None:
    web = await make_broker(worker=False)
    with pytest.raises(BrokerError, match="could not route"):
        await web.send(web.exchange_name, "not-bound", b"x", {})


async def test_dead_letter_stores_a_record_then_removes_the_original(
    make_broker: MakeBroker, admin: AbstractChannel, prefix: str
) -> None:
    worker = await make_broker(capacity=1)
    sent = message(b"not a taskiq message")
    await worker.kick(sent)
    [delivery] = await fetch_exactly(worker, 1)

    record = DeadLetter(
        body=delivery.data, queue=delivery.queue, reason=Reason.UNDECODABLE, task_id=sent.task_id
    )
    await delivery.dead_letter(record)
    dead = await (await admin.get_queue(dead_letter_queue_name(prefix, "default"))).get(
        no_ack=True, timeout=WAIT_S
    )
    assert dead is not None
    assert DeadLetter.from_json(dead.body).body == sent.message
    assert (dead.headers["reason"], dead.headers["task_id"]) == ("undecodable", sent.task_id)
    assert dead.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
    await worker.shutdown()
    assert await ready(await make_broker(worker=False)) == 0


async def test_hand_back_goes_to_another_worker_at_once(make_broker: MakeBroker) -> None:
    first = await make_broker(capacity=1)
    await first.kick(message(b"drained"))
    [delivery] = await fetch_exactly(first, 1)
    await first.stop_consuming()  # drain: no new deliveries, then hand back what is held

    second = await make_broker(capacity=1)
    await delivery.hand_back()
    [again] = await fetch_exactly(second, 1)
    assert (again.data, again.delivery_count) == (b"drained", 2)
    await again.ack()


async def test_unacked_delivery_returns_when_the_consumer_connection_dies(
    make_broker: MakeBroker,
) -> None:
    crashed = await make_broker(capacity=1)
    await crashed.kick(message(b"crash"))
    [delivery] = await fetch_exactly(crashed, 1)
    assert delivery.delivery_count == 1
    assert crashed.read_conn is not None
    await crashed.read_conn.close()  # no ack, no hand-back: as if the process died

    survivor = await make_broker(capacity=1)
    [redelivered] = await fetch_exactly(survivor, 1)
    assert (redelivered.data, redelivered.delivery_count) == (b"crash", 2)
    await redelivered.ack()


async def test_fetch_honours_prefetch_and_max_messages(make_broker: MakeBroker) -> None:
    worker = await make_broker(capacity=2)
    for i in range(5):
        await worker.kick(message(b"m%d" % i))

    held = await fetch_exactly(worker, 2)
    await eventually(lambda: _equals(ready(worker), 3), "3 ready messages")
    assert await worker.fetch(10, timeout_s=0.3) == []  # prefetch 2: nothing more arrives
    await held[0].ack()
    held[1:] += await fetch_exactly(worker, 1)

    await worker.set_capacity(10)  # re-subscribes with the larger prefetch
    await eventually(lambda: _equals(ready(worker), 0), "everything prefetched")
    assert len(await worker.fetch(1, timeout_s=WAIT_S)) == 1
    assert len(await worker.fetch(10, timeout_s=WAIT_S)) == 1
    for delivery in held[1:]:
        await delivery.ack()


async def test_cancelled_fetch_loses_nothing(make_broker: MakeBroker) -> None:
    worker = await make_broker(capacity=1)
    waiting = asyncio.create_task(worker.fetch(1, timeout_s=WAIT_S * 3))
    await eventually(lambda: _equals(_consumers(worker), 2), "consumers")
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    await worker.kick(message(b"kept"))
    [delivery] = await fetch_exactly(worker, 1)
    assert delivery.data == b"kept"
    await delivery.ack()


async def test_disconnect_hands_back_prefetched_and_held_messages(make_broker: MakeBroker) -> None:
    leaving = await make_broker(capacity=3)
    for i in range(3):
        await leaving.kick(message(b"m%d" % i))
    await fetch_exactly(leaving, 1)  # one handed out and never settled, two prefetched
    await eventually(lambda: _equals(ready(leaving), 0), "all prefetched")
    await leaving.shutdown()

    staying = await make_broker(capacity=3)
    deliveries = await fetch_exactly(staying, 3)
    assert sorted(d.data for d in deliveries) == [b"m0", b"m1", b"m2"]
    assert {d.delivery_count for d in deliveries} == {2}


async def test_republish_replaces_the_delivery(make_broker: MakeBroker) -> None:
    worker = await make_broker(capacity=1)
    sent = message(b"attempt 1")
    await worker.kick(sent)
    [delivery] = await fetch_exactly(worker, 1)
    await delivery.republish(b"attempt 2")
    [retry] = await fetch_exactly(worker, 1)
    assert (retry.data, retry.delivery_count) == (b"attempt 2", 1)
    assert isinstance(retry, amqp.AmqpDelivery)
    assert retry.message.headers["task_id"] == sent.task_id
    await retry.ack()


async def test_settling_after_a_reconnect_does_not_raise(
    make_broker: MakeBroker, caplog: pytest.LogCaptureFixture
) -> None:
    """Regression: taskiq-aio-pika crashes acking a message of a channel lost in a reconnect."""
    worker = await make_broker(capacity=2)
    await worker.kick(message(b"survives"))
    [stale] = await fetch_exactly(worker, 1)
    assert worker.read_conn is not None and worker.read_conn.transport is not None
    await worker.read_conn.transport.connection.close(ConnectionResetError("network blip"))

    # The robust connection comes back, consumes again, and RabbitMQ redelivers.
    [fresh] = await fetch_exactly(worker, 1)
    assert (fresh.data, fresh.delivery_count) == (b"survives", 2)
    with caplog.at_level(logging.WARNING, logger="asyncjobs.broker"):
        await stale.ack()
    assert "channel closed" in caplog.text
    assert "survives" not in caplog.text  # no payload in logs
    await fresh.ack()
    await worker.shutdown()
    assert await ready(await make_broker(worker=False)) == 0


@pytest.mark.parametrize(
    "url",
    ["amqp://guest:s3cretpw@127.0.0.1:5672/", "amqp://guest:s3cretpw@127.0.0.1:1/"],
    ids=["wrong-password", "refused"],
)
@pytest.mark.parametrize("worker", [False, True], ids=["web", "worker"])
async def test_connection_errors_never_show_the_password(
    make_broker: MakeBroker, caplog: pytest.LogCaptureFixture, url: str, worker: bool
) -> None:
    caplog.set_level(logging.DEBUG)
    with pytest.raises(BrokerConnectionError) as info:
        await make_broker(worker=worker, url=url)

    shown = [
        str(info.value),
        repr(info.value),
        "".join(traceback.format_exception(info.value)),
        caplog.text,
        *(_record_text(record) for record in caplog.records),
    ]
    assert not [text for text in shown if "s3cretpw" in text]
    assert "guest:***@127.0.0.1" in str(info.value)


def _record_text(record: logging.LogRecord) -> str:
    exc = "".join(traceback.format_exception(*record.exc_info)) if record.exc_info else ""
    return f"{record.getMessage()} {record.args!r} {exc}"


async def _equals(value: Awaitable[Any], expected: Any) -> bool:
    return await value == expected


async def _consumers(broker: AmqpBroker) -> int:
    return sum(consumers for _, consumers in (await broker.queue_depths()).values())
