"""Merged acknowledgements against the real RabbitMQ under load: the order their frames
reach it in, a channel error while many are on their way, an ack asked twice
(asyncjobs/brokers/rabbitmq/acks.py)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Iterable
from typing import Any

import pytest

from asyncjobs.brokers.base import Delivery
from asyncjobs.brokers.rabbitmq.broker import AmqpBroker, queue_name
from tests.brokers.conftest import MakeBroker
from tests.brokers.test_amqp import fetch_exactly, message
from tests.support.helpers import wait_until

pytestmark = pytest.mark.rabbitmq

WAIT_S = 10.0


async def loaded(make_broker: MakeBroker, count: int) -> tuple[AmqpBroker, list[Delivery]]:
    """A worker holding ``count`` deliveries (one channel, tags 1..count)."""
    web = await make_broker(worker=False)
    worker = await make_broker(capacity=count)
    await asyncio.gather(*(web.kick(message(b"%d" % i)) for i in range(count)))
    return worker, await fetch_exactly(worker, count)


async def all_done(acks: Iterable[Awaitable[None]]) -> bool:
    """Whether every ack returned within WAIT_S (before the fix some hung for good)."""
    tasks = [asyncio.ensure_future(ack) for ack in acks]
    _, pending = await asyncio.wait(tasks, timeout=WAIT_S)
    for task in pending:
        task.cancel()
    return not pending


async def still_open(worker: AmqpBroker, channel: Any) -> None:
    """A round trip on ``channel`` after the acks: RabbitMQ handled them all by then, and
    this raises if one of them made it close the channel."""
    await channel.queue_declare(queue_name(worker.options.key_prefix, "default"), passive=True)


async def test_a_multiple_ack_never_overtakes_an_earlier_ack_it_covers(
    make_broker: MakeBroker, caplog: pytest.LogCaptureFixture
) -> None:
    """In groups of 20: every second delivery acked first (alone: the one before it still
    runs), 150 lone acks; then the rest of one group per step, whose ``multiple`` ack
    covers lone acks that may still wait for room in aiormq's write queue. Before, it
    could reach RabbitMQ ahead of them: RabbitMQ refused a lone one ("unknown delivery
    tag"), closed the channel, and every unacknowledged message came back."""
    worker, deliveries = await loaded(make_broker, 300)
    channel = await worker._reader().get_underlay_channel()
    groups = [deliveries[i : i + 20] for i in range(0, 300, 20)]

    with caplog.at_level(logging.WARNING, logger="asyncjobs.broker"):
        acks = [asyncio.ensure_future(d.ack()) for group in groups for d in group[1::2]]
        for group in groups:
            await asyncio.sleep(0)  # a group per step: each meets the writer elsewhere
            acks += [asyncio.ensure_future(d.ack()) for d in group[0::2]]
        assert await all_done(acks)
        await still_open(worker, channel)
    assert "could not ack" not in caplog.text
    assert worker.acks.frames_sent < 300  # still merged
    await worker.shutdown()  # anything left unacknowledged would be ready again now
    assert (await worker.queue_depths())["default"] == (0, 0)


async def test_a_channel_error_under_ack_load_keeps_the_connection(
    make_broker: MakeBroker,
) -> None:
    """A channel error (here an ack of a tag RabbitMQ never gave; in production e.g. a
    delivery past ``consumer_timeout``) while 299 acks are on their way: the channel is
    reopened on the same connection and the redelivered messages can be acked. Before,
    the acks filled aiormq's write queue, aiormq dropped the ``channel.close-ok`` it owed,
    and RabbitMQ closed the whole connection at the reopen ("second 'channel.open'
    seen")."""
    worker, deliveries = await loaded(make_broker, 300)
    assert worker.read_conn is not None
    connection = worker.read_conn.transport.connection
    old = await worker._reader().get_underlay_channel()

    refused = asyncio.ensure_future(old.basic_ack(delivery_tag=10**9))
    await all_done(d.ack() for d in deliveries[1:])
    await asyncio.gather(refused, return_exceptions=True)

    async def reopened() -> bool:
        channel = await worker._reader().get_underlay_channel()
        return channel is not old and not channel.is_closed

    await wait_until(reopened, timeout=WAIT_S, what="the consumer channel to reopen")
    assert worker.read_conn.transport.connection is connection
    assert not connection.is_closed
    again = await fetch_exactly(worker, 300)  # requeued by the channel's close
    assert await all_done(d.ack() for d in again)
    await worker.shutdown()
    assert (await worker.queue_depths())["default"] == (0, 0)


async def test_an_ack_asked_again_after_a_cancelled_one_sends_no_second_frame(
    make_broker: MakeBroker, caplog: pytest.LogCaptureFixture
) -> None:
    """A worker cut off at the drain deadline while its ack waits for the frame hands the
    delivery back, which acks it again: a second frame for the tag (acked alone, since
    the first delivery still runs) made RabbitMQ close the channel."""
    worker, [first, second, third] = await loaded(make_broker, 3)
    channel = await worker._reader().get_underlay_channel()

    with caplog.at_level(logging.WARNING, logger="asyncjobs.broker"):
        acking = asyncio.ensure_future(second.ack())
        await asyncio.sleep(0)  # asked: its frame goes at the end of this step
        acking.cancel()
        await asyncio.gather(acking, return_exceptions=True)
        await second.hand_back()  # a copy, then the ack asked again
        await asyncio.gather(first.ack(), third.ack())
        [copy] = await fetch_exactly(worker, 1)
        await copy.ack()
        await still_open(worker, channel)
    assert "could not ack" not in caplog.text
    await worker.shutdown()
    assert (await worker.queue_depths())["default"] == (0, 0)
