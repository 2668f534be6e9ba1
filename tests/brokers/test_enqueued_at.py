"""``Delivery.enqueued_at``, part of the transport contract (Redis Streams, RabbitMQ).

A delivery knows when its message became deliverable: when it was sent, or, for a
delayed message or a scheduled retry, when it became due (not when it was sent). The
worker's ``asyncjobs.task.queue_wait`` metric is measured from it. Resolution: 1 ms on
Redis (stream entry ids), 1 s on RabbitMQ (AMQP timestamps are whole seconds).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest

from example.processes import delete_amqp_queues
from tests.brokers.test_contract import Transport, fetch_one, message, transport

__all__ = ["transport"]  # the parametrised fixture, shared with the contract suite

CLOCK_SKEW_S = 0.05  # Redis stamps entries with its own clock; same host in tests


@pytest.fixture
async def stamped(transport: Transport) -> AsyncIterator[Transport]:
    """The contract's transport; also removes the RabbitMQ delay queues a test created."""
    yield transport
    if transport.name == "rabbitmq":
        names = {n for b in transport.brokers for n in b.delay_queues.names}  # type: ignore[attr-defined]
        await delete_amqp_queues(transport.url, transport.options.key_prefix, (), also=names)


def resolution_s(transport: Transport) -> float:
    return 1.0 if transport.name == "rabbitmq" else 0.001


def assert_between(value: float | None, earliest: float, latest: float) -> None:
    assert value is not None, "the transport did not tell when the message was enqueued"
    assert earliest <= value <= latest, (
        f"enqueued_at {value:.3f} is {earliest - value:.3f} s before / "
        f"{value - latest:.3f} s after the window"
    )


async def test_a_sent_message_is_stamped_when_sent(stamped: Transport) -> None:
    client, worker = stamped.broker(), await stamped.worker()
    await client.startup()  # this loop holds the client: the test calls its internals
    before = time.time()
    await client.kick(message(b"now"))
    after = time.time()
    delivery = await fetch_one(worker)
    assert_between(
        delivery.enqueued_at,
        before - resolution_s(stamped) - CLOCK_SKEW_S,
        after + CLOCK_SKEW_S,
    )
    await delivery.ack()


async def test_a_delayed_message_is_stamped_when_it_became_due(stamped: Transport) -> None:
    # 2 s: with RabbitMQ's whole seconds, the send time (< due - 1 s) cannot pass for
    # the due time.
    client, worker = stamped.broker(), await stamped.worker()
    await client.startup()  # this loop holds the client: the test calls its internals
    due = time.time() + 2.0
    await client.publish_at("default", message(b"later"), due)
    delivery = await fetch_one(worker)
    fetched = time.time()
    assert_between(
        delivery.enqueued_at, due - resolution_s(stamped) - CLOCK_SKEW_S, fetched + CLOCK_SKEW_S
    )
    await delivery.ack()


async def test_a_scheduled_retry_is_stamped_when_it_became_due(stamped: Transport) -> None:
    client, worker = stamped.broker(), await stamped.worker()
    await client.kick(message(b"attempt 1"))
    first = await fetch_one(worker)
    due = time.time() + 2.0
    await first.retry_at(b"attempt 2", due)
    retry = await fetch_one(worker)
    fetched = time.time()
    assert retry.data == b"attempt 2"
    assert_between(
        retry.enqueued_at, due - resolution_s(stamped) - CLOCK_SKEW_S, fetched + CLOCK_SKEW_S
    )
    await retry.ack()
