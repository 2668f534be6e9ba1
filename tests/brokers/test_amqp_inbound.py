"""Deliveries taken straight off aiormq's channel (``asyncjobs.brokers.rabbitmq.inbound``),
against the real server: the worker's deliveries skip aio-pika's consumer, also on the
channel a reconnect opens; another consumer on that channel is left to aiormq; with an
aiormq lacking the internals, aio-pika's callback delivers."""

from __future__ import annotations

import asyncio
import uuid

import aio_pika
import pytest
from aio_pika.abc import AbstractIncomingMessage
from aio_pika.exceptions import MessageProcessError
from taskiq.message import BrokerMessage

from asyncjobs.brokers.base import Delivery
from asyncjobs.brokers.rabbitmq import inbound
from asyncjobs.brokers.rabbitmq.broker import AmqpBroker, dead_letter_queue_name
from asyncjobs.brokers.rabbitmq.inbound import Received
from tests.brokers.conftest import MakeBroker

pytestmark = pytest.mark.rabbitmq


def message(body: bytes) -> BrokerMessage:
    return BrokerMessage(task_id=uuid.uuid4().hex, task_name="tests:task", message=body, labels={})


async def fetch(broker: AmqpBroker, count: int) -> list[Delivery]:
    deliveries: list[Delivery] = []
    async with asyncio.timeout(10):
        while len(deliveries) < count:
            deliveries += await broker.fetch(count - len(deliveries), timeout_s=10)
    return deliveries


async def test_deliveries_come_straight_off_the_channel(make_broker: MakeBroker) -> None:
    web, worker = await make_broker(worker=False), await make_broker(capacity=10)
    sent = [message(b"%d" % i) for i in range(5)]
    for each in sent:
        await web.kick(each)

    deliveries = await fetch(worker, 5)
    assert all(type(d.message) is Received for d in deliveries)  # type: ignore[attr-defined]
    assert [d.data for d in deliveries] == [m.message for m in sent]
    first = deliveries[0].message  # type: ignore[attr-defined]
    assert first.headers["task_id"] == sent[0].task_id
    assert deliveries[0].enqueued_at is not None  # the AMQP timestamp, read back
    await asyncio.gather(*(d.ack() for d in deliveries))
    assert worker.acks.frames_sent == 1  # merged as before: delivery order is kept
    await worker.shutdown()
    assert await web.queue_depths() == {"default": (0, 0), "emails": (0, 0)}


async def test_the_channel_a_reconnect_opens_is_taken_over_too(make_broker: MakeBroker) -> None:
    web, worker = await make_broker(worker=False), await make_broker(capacity=10)
    await web.kick(message(b"before"))
    [before] = await fetch(worker, 1)
    await before.ack()
    assert worker.read_conn is not None and worker.read_conn.transport is not None
    await worker.read_conn.transport.connection.close(ConnectionResetError("network blip"))

    for i in range(5):
        await web.kick(message(b"after %d" % i))
    after = await fetch(worker, 5)
    assert all(type(d.message) is Received for d in after)  # type: ignore[attr-defined]
    sent_before = worker.acks.frames_sent
    await asyncio.gather(*(d.ack() for d in after))
    assert worker.acks.frames_sent == sent_before + 1  # in delivery order: one merged ack


async def test_another_consumer_on_that_channel_is_left_to_aiormq(
    make_broker: MakeBroker, prefix: str
) -> None:
    worker = await make_broker(capacity=10)
    assert worker.read_channel is not None
    dead = await worker.read_channel.declare_queue(
        dead_letter_queue_name(prefix, "default"), passive=True
    )
    got: asyncio.Queue[AbstractIncomingMessage] = asyncio.Queue()
    await dead.consume(got.put)
    await worker.send("", dead.name, b"a letter", {})

    async with asyncio.timeout(10):
        letter = await got.get()
    assert isinstance(letter, aio_pika.IncomingMessage)
    assert letter.body == b"a letter"
    await letter.ack()


async def test_without_aiormqs_internals_aio_pikas_callback_delivers(
    make_broker: MakeBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(inbound, "can_take_over", lambda channel: False)
    web, worker = await make_broker(worker=False), await make_broker(capacity=10)
    for i in range(3):
        await web.kick(message(b"%d" % i))

    deliveries = await fetch(worker, 3)
    assert all(isinstance(d.message, aio_pika.IncomingMessage) for d in deliveries)  # type: ignore[attr-defined]
    await asyncio.gather(*(d.ack() for d in deliveries))
    await worker.shutdown()
    assert await web.queue_depths() == {"default": (0, 0), "emails": (0, 0)}


async def test_a_received_delivery_is_acked_once(make_broker: MakeBroker) -> None:
    web, worker = await make_broker(worker=False), await make_broker(capacity=10)
    await web.kick(message(b"once"))
    [delivery] = await fetch(worker, 1)
    received = delivery.message  # type: ignore[attr-defined]
    await received.ack()
    with pytest.raises(MessageProcessError):  # as aio-pika's IncomingMessage
        await received.ack()
    await worker.shutdown()
    assert await web.queue_depths() == {"default": (0, 0), "emails": (0, 0)}
