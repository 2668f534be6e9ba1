"""Fixtures of the RabbitMQ transport tests (test_amqp*.py)."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Awaitable
from typing import Protocol

import aio_pika
import pytest
from aio_pika.abc import AbstractChannel

from asyncjobs.brokers.base import TransportOptions
from asyncjobs.brokers.rabbitmq.broker import AmqpBroker
from example.processes import delete_amqp_queues

AMQP_QUEUES = ("default", "emails")  # the queues those tests configure


@pytest.fixture
async def admin(amqp_url: str, prefix: str) -> AsyncIterator[AbstractChannel]:
    """A plain channel for checks; deletes this test's queues and exchange afterwards."""
    connection = await aio_pika.connect(amqp_url)
    yield await connection.channel()
    await connection.close()
    await delete_amqp_queues(amqp_url, prefix, AMQP_QUEUES)


@pytest.fixture
def amqp_options(prefix: str) -> TransportOptions:
    """The queues AMQP_QUEUES under this test's prefix, "default" the default one."""
    return TransportOptions(
        queues=AMQP_QUEUES, default_queue="default", key_prefix=prefix, max_deliveries=5
    )


class MakeBroker(Protocol):
    def __call__(
        self,
        *,
        worker: bool = True,
        capacity: int | None = None,
        url: str | None = None,
        publish_timeout_s: float = 30.0,
        max_deliveries: int = 5,
    ) -> Awaitable[AmqpBroker]: ...


@pytest.fixture
async def make_broker(
    amqp_url: str, amqp_options: TransportOptions, admin: AbstractChannel
) -> AsyncIterator[MakeBroker]:
    """Starts brokers on amqp_options (a worker's unless ``worker=False``) and shuts them
    down after the test, before ``admin`` deletes its queues. The capacity is set only
    when given: unset, a worker's first fetch sets it."""
    started: list[AmqpBroker] = []

    async def make(
        *,
        worker: bool = True,
        capacity: int | None = None,
        url: str | None = None,
        publish_timeout_s: float = 30.0,
        max_deliveries: int = 5,
    ) -> AmqpBroker:
        options = dataclasses.replace(amqp_options, max_deliveries=max_deliveries)
        broker = AmqpBroker(url or amqp_url, options, publish_timeout_s=publish_timeout_s)
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
