"""The ack-merging logic on its own (a recording stand-in for the channel); the real
RabbitMQ checks are in test_amqp.py (``test_a_merged_ack_never_covers_...``)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, cast

from aio_pika.abc import AbstractIncomingMessage

from asyncjobs.brokers.rabbitmq.acks import AckMerger


@dataclass(eq=False)  # hashed by identity, as aiormq channels are
class Channel:
    frames: list[tuple[int, bool]] = field(default_factory=list)

    async def basic_ack(self, delivery_tag: int, multiple: bool = False) -> None:
        self.frames.append((delivery_tag, multiple))


@dataclass
class Message:
    delivery_tag: int
    channel: Channel
    acked_alone: bool = False

    async def ack(self) -> None:
        self.acked_alone = True
        await self.channel.basic_ack(self.delivery_tag)


def delivered(merger: AckMerger, channel: Channel, *tags: int) -> dict[int, Any]:
    messages = {tag: Message(tag, channel) for tag in tags}
    for message in messages.values():
        merger.delivered(cast(AbstractIncomingMessage, message))
    return messages


async def ack(merger: AckMerger, messages: dict[int, Any], *tags: int) -> None:
    await asyncio.gather(*(merger.ack(messages[tag]) for tag in tags))


async def test_the_oldest_run_goes_as_one_frame_the_rest_alone() -> None:
    merger, channel = AckMerger(), Channel()
    messages = delivered(merger, channel, 1, 2, 3, 4, 5)
    await ack(merger, messages, 1, 2, 4)
    assert channel.frames == [(2, True), (4, False)]  # 3 still runs: 4 goes alone
    await ack(merger, messages, 3)
    assert channel.frames[2:] == [(3, True)]  # covers 3 only (1, 2 and 4 were acked)
    await ack(merger, messages, 5)
    assert channel.frames[3:] == [(5, True)]
    assert merger.frames_sent == 4


async def test_acks_asked_in_different_steps_are_not_held_back() -> None:
    merger, channel = AckMerger(), Channel()
    messages = delivered(merger, channel, 1, 2)
    await ack(merger, messages, 2)
    assert channel.frames == [(2, False)]  # sent in its own step, not kept for 1


async def test_deliveries_seen_out_of_order_are_never_merged() -> None:
    merger, channel = AckMerger(), Channel()
    messages = delivered(merger, channel, 2, 1, 3)
    await ack(merger, messages, 1, 3)
    assert sorted(channel.frames) == [(1, False), (3, False)]
    assert messages[1].acked_alone and messages[3].acked_alone


async def test_each_channel_has_its_own_run() -> None:
    merger, old, new = AckMerger(), Channel(), Channel()
    first = delivered(merger, old, 1, 2)
    second = delivered(merger, new, 1)  # a reopened channel numbers from 1 again
    await asyncio.gather(ack(merger, first, 1, 2), ack(merger, second, 1))
    assert old.frames == [(2, True)] and new.frames == [(1, True)]
