"""RabbitMQ delay queues: their arguments, their expiry, and publishing after one expired."""

from __future__ import annotations

import time

import pytest
from aio_pika.abc import AbstractChannel

from asyncjobs.brokers.rabbitmq.delay import (
    REDECLARE_EVERY_S,
    delay_bucket_ms,
    delay_queue_arguments,
    delay_queue_name,
)
from tests.brokers.conftest import MakeBroker
from tests.brokers.test_amqp import fetch_exactly, message

pytestmark = pytest.mark.rabbitmq


def test_delay_queue_dead_letters_back_and_outlives_the_redeclare_period() -> None:
    arguments = delay_queue_arguments("px", "emails", 2000)
    assert arguments["x-message-ttl"] == 2000
    assert arguments["x-dead-letter-exchange"] == "px"
    assert arguments["x-dead-letter-routing-key"] == "emails"
    assert arguments["x-dead-letter-strategy"] == "at-least-once"
    assert arguments["x-overflow"] == "reject-publish"  # at-least-once needs it
    assert arguments["x-queue-type"] == "quorum"
    # RabbitMQ counts a queue without consumers as unused even when it holds messages:
    # it must outlive its TTL plus the time between two declarations by a publisher.
    expires = arguments["x-expires"]
    assert isinstance(expires, int) and expires > 2000 + REDECLARE_EVERY_S * 1000


async def test_publishing_after_the_delay_queue_vanished_declares_it_again(
    make_broker: MakeBroker, admin: AbstractChannel, prefix: str
) -> None:
    web, worker = await make_broker(worker=False), await make_broker()
    name = delay_queue_name(prefix, "default", delay_bucket_ms(0.5))
    try:
        await web.publish_at("default", message(b"first"), time.time() + 0.5)
        [first] = await fetch_exactly(worker, 1)
        await first.ack()
        await admin.queue_delete(name)  # as if it had expired; web still thinks it exists
        await web.publish_at("default", message(b"second"), time.time() + 0.5)
        [second] = await fetch_exactly(worker, 1)
        assert second.data == b"second"
        await second.ack()
    finally:
        await admin.queue_delete(name)
