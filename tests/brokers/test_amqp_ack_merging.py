"""The ack-merging logic on its own (a recording stand-in for the channel); the real
RabbitMQ checks are in test_amqp.py (``test_a_merged_ack_never_covers_...``) and
test_amqp_acks.py (frame order under load, a channel error, an ack asked twice)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, cast

from aio_pika.abc import AbstractIncomingMessage

from asyncjobs.brokers.rabbitmq.acks import BATCH_FRAMES, AckMerger


@dataclass(eq=False)  # hashed by identity, as aiormq channels are
class Channel:
    frames: list[tuple[int, bool]] = field(default_factory=list)

    async def basic_ack(self, delivery_tag: int, multiple: bool = False) -> None:
        self.frames.append((delivery_tag, multiple))


@dataclass(eq=False)
class SlowChannel(Channel):
    """Each frame takes a step to be written; records which were on their way at once."""

    writing: list[tuple[int, bool]] = field(default_factory=list)
    overlaps: list[list[tuple[int, bool]]] = field(default_factory=list)

    async def basic_ack(self, delivery_tag: int, multiple: bool = False) -> None:
        self.writing.append((delivery_tag, multiple))
        self.overlaps.append(list(self.writing))
        await asyncio.sleep(0)
        self.writing.remove((delivery_tag, multiple))
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
    async with asyncio.timeout(5):  # an ack whose frame was never written hangs
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


async def test_frames_go_in_batches_each_once_the_one_before_is_written() -> None:
    merger, channel = AckMerger(), SlowChannel()
    messages = delivered(merger, channel, *range(1, 42))
    lone = asyncio.gather(*(merger.ack(messages[tag]) for tag in range(2, 41, 2)))
    await asyncio.sleep(0)  # 20 lone acks asked (1 still runs): their first batch goes
    await ack(merger, messages, *range(1, 40, 2))  # every run up to 40 closed meanwhile
    await lone
    # Never more at once than BATCH_FRAMES, and the multiple ack alone after them: it
    # covers lone acks of the batch before, and must not reach RabbitMQ ahead of them.
    assert max(len(on_the_way) for on_the_way in channel.overlaps) == BATCH_FRAMES
    lone_first = [(tag, False) for tag in range(2, 2 * BATCH_FRAMES + 1, 2)]
    assert channel.frames == [*lone_first, (40, True)]  # the rest merged into it
    assert channel.overlaps[-1] == [(40, True)]
    await ack(merger, messages, 41)
    assert channel.frames[-1] == (41, True)


async def test_an_ack_asked_again_sends_no_second_frame() -> None:
    merger, channel = AckMerger(), Channel()
    messages = delivered(merger, channel, 1, 2, 3)
    await ack(merger, messages, 2, 2)  # twice in a step: one frame
    await ack(merger, messages, 2)  # acked already (alone: 1 still runs)
    await ack(merger, messages, 1, 3)
    await ack(merger, messages, 1)  # acked already (by the multiple ack)
    assert channel.frames == [(2, False), (3, True)]


async def test_a_cancelled_ack_still_goes_and_is_not_sent_again() -> None:
    merger, channel = AckMerger(), SlowChannel()
    messages = delivered(merger, channel, 1, 2)
    first = asyncio.ensure_future(merger.ack(messages[2]))
    await asyncio.sleep(0)  # asked
    first.cancel()
    await asyncio.gather(first, return_exceptions=True)
    await ack(merger, messages, 2)  # asked again (a hand-back after the cancel)
    assert channel.frames == [(2, False)]
