"""Publishing (``asyncjobs.brokers.rabbitmq.publisher``): on a stand-in for aiormq's
channel (numbering, one write per step, taking back, timeouts, a closed channel), then
against the real server (a gathered burst in one write, an unroutable one among them)."""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, cast

import aiormq
import pytest
from aio_pika.abc import AbstractChannel
from aiormq.abc import ChannelFrame
from aiormq.exceptions import ChannelClosed, ChannelInvalidStateError
from pamqp import commands as spec
from pamqp import frame as pamqp_frame

from asyncjobs.brokers.base import TransportOptions
from asyncjobs.brokers.errors import BrokerError
from asyncjobs.brokers.rabbitmq import publisher as publisher_module
from asyncjobs.brokers.rabbitmq.broker import AmqpBroker, queue_name
from asyncjobs.brokers.rabbitmq.publisher import Publisher
from tests.support.helpers import wait_until

LONG_S = 30.0


async def _true(value: bool) -> bool:
    return value


@dataclass(eq=False)  # hashed by identity, as aiormq channels are
class Channel:
    """What the publisher uses of an ``aiormq.Channel``; frames are written when the
    test lets them (``write``)."""

    loop: asyncio.AbstractEventLoop
    number: int = 1
    publisher_confirms: bool = True
    max_content_size: int = 131_064
    delivery_tag: int = 0
    confirmations: OrderedDict[int, asyncio.Future[Any]] = field(default_factory=OrderedDict)
    message_id_delivery_tag: dict[str, int] = field(default_factory=dict)
    write_queue: asyncio.Queue[ChannelFrame] = field(default_factory=lambda: asyncio.Queue(10))
    tracked: list[asyncio.Future[Any]] = field(default_factory=list)
    closing: asyncio.Future[Any] = field(init=False)

    def __post_init__(self) -> None:
        self.closing = self.loop.create_future()
        self._lock = asyncio.Lock()

    @property
    @asynccontextmanager
    async def lock(self) -> AsyncIterator[None]:
        if self.closing.done():
            raise ChannelInvalidStateError("closed")
        async with self._lock:
            yield

    def create_future(self) -> asyncio.Future[Any]:
        future = self.loop.create_future()
        self.tracked.append(future)
        return future

    def close(self, error: Exception) -> None:
        """As aiormq: every future it tracks fails with the error, ``closing`` too."""
        for future in [*self.tracked, self.closing]:
            if not future.done():
                future.set_exception(error)

    async def write(self) -> list[tuple[str, int]]:
        """Write the next queued frame: its publishes as (routing key, message id)."""
        frame = await self.write_queue.get()
        assert frame.drain_future is not None
        frame.drain_future.set_result(None)
        return routing_keys(frame.payload)

    def ack(self, *tags: int) -> None:
        for tag in tags:
            self.confirmations.pop(tag).set_result(spec.Basic.Ack(tag))


def routing_keys(payload: bytes) -> list[tuple[str, int]]:
    """(routing key, body size) of each publish in a written payload."""
    found: list[tuple[str, int]] = []
    while payload:
        used, _, frame = pamqp_frame.unmarshal(payload)
        payload = payload[used:]
        if isinstance(frame, spec.Basic.Publish):
            found.append((frame.routing_key, -1))
        elif hasattr(frame, "body_size"):
            found[-1] = (found[-1][0], frame.body_size)
    return found


def publish(publisher: Publisher, channel: Channel, key: str, timeout_s: float = LONG_S) -> Any:
    underlay = cast(aiormq.Channel, channel)
    return publisher.publish(underlay, "ex", key, key.encode(), {"task_id": key}, timeout_s)


async def test_the_publishes_of_one_step_are_one_write_numbered_in_order() -> None:
    publisher, channel = Publisher(), Channel(asyncio.get_running_loop())
    confirms = [publish(publisher, channel, f"q{i}") for i in range(20)]
    assert await channel.write() == [(f"q{i}", 2 if i < 10 else 3) for i in range(20)]
    assert list(channel.confirmations) == list(range(1, 21))
    assert sorted(channel.message_id_delivery_tag.values()) == list(range(1, 21))

    channel.ack(*range(1, 21))
    assert len(await asyncio.gather(*confirms)) == 20
    # Forgotten once settled: by a callback the writer adds after the write, which may
    # run after the caller's await returned (Python 3.12 schedules it a step later).
    await wait_until(lambda: _true(channel.message_id_delivery_tag == {}), what="forgotten")
    assert publisher.writes == 1


async def test_what_is_asked_while_a_write_is_under_way_goes_next_as_one() -> None:
    publisher, channel = Publisher(), Channel(asyncio.get_running_loop())
    publish(publisher, channel, "first")
    await asyncio.sleep(0)  # the writer handed it over and waits until it is written
    later = [publish(publisher, channel, f"then{i}") for i in range(5)]
    assert await channel.write() == [("first", 5)]
    assert [key for key, _ in await channel.write()] == [f"then{i}" for i in range(5)]
    assert list(channel.confirmations) == [1, 2, 3, 4, 5, 6]
    channel.ack(*range(1, 7))
    await asyncio.gather(*later)


async def test_a_publish_taken_back_before_its_write_is_never_written() -> None:
    publisher, channel = Publisher(), Channel(asyncio.get_running_loop())
    publish(publisher, channel, "gone").cancel()  # its caller stopped waiting
    kept = publish(publisher, channel, "kept")
    assert await channel.write() == [("kept", 4)]
    assert list(channel.confirmations) == [1]  # "gone" took no delivery tag
    channel.ack(1)
    await kept


async def test_an_unconfirmed_publish_times_out_and_a_late_confirm_finds_it_given_up() -> None:
    publisher, channel = Publisher(), Channel(asyncio.get_running_loop())
    late = publish(publisher, channel, "late", timeout_s=0.01)
    await channel.write()
    with pytest.raises(TimeoutError):
        await late
    assert channel.confirmations[1].cancelled()  # aiormq ignores a confirm of it quietly
    assert channel.message_id_delivery_tag == {}


async def test_a_publish_waiting_for_room_times_out() -> None:
    publisher, channel = Publisher(), Channel(asyncio.get_running_loop())
    for _ in range(10):  # the connection's queue is full: nothing is written meanwhile
        channel.write_queue.put_nowait(ChannelFrame(b"", should_close=False))
    stuck = publish(publisher, channel, "stuck", timeout_s=0.01)
    with pytest.raises(TimeoutError):
        await stuck
    for _ in range(10):
        channel.write_queue.get_nowait()
    # Numbered while it waited for room, so written then (its sender was told the
    # outcome is unknown); its confirm finds it given up.
    assert await channel.write() == [("stuck", 5)]
    assert channel.confirmations[1].cancelled()


async def test_a_shorter_timeout_after_longer_ones_keeps_its_own() -> None:
    publisher, channel = Publisher(), Channel(asyncio.get_running_loop())
    patient = publish(publisher, channel, "patient")
    hasty = publish(publisher, channel, "hasty", timeout_s=0.01)
    await channel.write()
    with pytest.raises(TimeoutError):
        await hasty
    assert not patient.done()
    channel.ack(1)
    await patient


async def test_a_closed_channel_fails_what_is_open_and_publishes_no_more() -> None:
    publisher, channel = Publisher(), Channel(asyncio.get_running_loop())
    written = [publish(publisher, channel, f"w{i}") for i in range(3)]
    await channel.write()
    channel.ack(2)
    error = ChannelClosed(320, "CONNECTION_FORCED")
    channel.close(error)
    outcomes = await asyncio.gather(*written, return_exceptions=True)
    assert outcomes[0] is error and outcomes[2] is error
    assert isinstance(outcomes[1], spec.Basic.Ack)
    assert publisher._channels == {}  # its state is not kept once it closed

    with pytest.raises(ChannelInvalidStateError):
        await publish(publisher, channel, "after")


# -- against RabbitMQ -----------------------------------------------------------------


@pytest.fixture
async def broker(amqp_url: str, prefix: str, admin: AbstractChannel) -> AsyncIterator[AmqpBroker]:
    options = TransportOptions(
        queues=("default", "emails"), default_queue="default", key_prefix=prefix
    )
    broker = AmqpBroker(amqp_url, options)
    await broker.startup()
    yield broker
    await broker.shutdown()


@pytest.mark.rabbitmq
async def test_a_gathered_burst_is_one_write_and_arrives_in_order(
    broker: AmqpBroker, admin: AbstractChannel, prefix: str
) -> None:
    exchange = broker.exchange_name
    await broker.send(exchange, "default", b"warm", {})  # the channel is looked up once
    writes = broker.publisher.writes
    await asyncio.gather(
        *(broker.send(exchange, "default", b"%d" % i, {"i": i}) for i in range(200))
    )
    assert broker.publisher.writes == writes + 1

    queue = await admin.declare_queue(queue_name(prefix, "default"), passive=True)
    bodies = []
    async with queue.iterator(no_ack=True) as messages:
        async for message in messages:
            bodies.append(message.body)
            if len(bodies) == 201:
                break
    assert bodies == [b"warm", *(b"%d" % i for i in range(200))]


@pytest.mark.rabbitmq
async def test_an_unroutable_publish_in_a_burst_fails_alone(
    broker: AmqpBroker, admin: AbstractChannel, prefix: str
) -> None:
    exchange = broker.exchange_name
    keys = ["default"] * 5 + ["not-bound"] + ["emails"] * 5
    sends = (broker.send(exchange, key, key.encode(), {}) for key in keys)
    outcomes = await asyncio.gather(*sends, return_exceptions=True)
    assert [o for o in outcomes if o is not None] == [outcomes[5]]
    assert isinstance(outcomes[5], BrokerError)
    assert "could not route" in str(outcomes[5])
    for queue in ("default", "emails"):
        declared = await admin.declare_queue(queue_name(prefix, queue), passive=True)
        assert declared.declaration_result.message_count == 5


@pytest.mark.rabbitmq
async def test_another_aiormq_falls_back_to_aio_pikas_publish(
    broker: AmqpBroker, admin: AbstractChannel, prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(publisher_module, "supports", lambda channel: False)
    await broker.send(broker.exchange_name, "default", b"x", {"task_id": "t"})
    with pytest.raises(BrokerError, match="could not route"):
        await broker.send(broker.exchange_name, "not-bound", b"x", {})
    assert broker.publisher.writes == 0
    declared = await admin.declare_queue(queue_name(prefix, "default"), passive=True)
    assert declared.declaration_result.message_count == 1
