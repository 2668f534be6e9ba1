"""RabbitMQ acknowledgements, merged where that cannot acknowledge anything early.

aio-pika sends one ``basic.ack`` frame per message: a write and a frame for RabbitMQ to
handle each, for a no-op task a sixth of the worker's CPU and more of RabbitMQ's. AMQP
can acknowledge "every delivery up to tag N" in one frame (``multiple``), but that also
covers messages still running, so it is used only for the oldest run of deliveries of a
channel that have *all* been asked to be acknowledged.

Each channel's delivered-but-unsettled tags are kept in delivery order (RabbitMQ numbers
them in that order per channel). Acks asked for in one event-loop step are sent at the
end of that step: the longest run at the front whose acks were all asked for goes as one
``multiple`` ack, every other one alone. Nothing waits longer than the step, and a
message is never acknowledged before its own ack was asked for. ``ack()`` returns once
its frame is written, as aio-pika's does (AMQP acks have no reply).
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field
from typing import Any
from weakref import WeakKeyDictionary

from aio_pika.abc import AbstractIncomingMessage


@dataclass(slots=True)
class _Channel:
    unsettled: deque[int] = field(default_factory=deque)  # delivery order
    recorded: set[int] = field(default_factory=set)  # the same tags, to look up
    asked: dict[int, asyncio.Future[None]] = field(default_factory=dict)
    gone: set[int] = field(default_factory=set)  # acked alone, still in `unsettled`
    flushing: bool = False
    # The run logic needs ``unsettled`` in tag order; seen out of order: no merging.
    ordered: bool = True


class AckMerger:
    def __init__(self) -> None:
        self._channels: WeakKeyDictionary[Any, _Channel] = WeakKeyDictionary()
        self.frames_sent = 0  # observable: how many ack frames the merging saved

    def delivered(self, message: AbstractIncomingMessage) -> None:
        """Record a delivery (before anything can ack it)."""
        if message.delivery_tag is not None:
            state = self._state(message.channel)
            if state.unsettled and state.unsettled[-1] > message.delivery_tag:
                state.ordered = False
            if not state.ordered:
                return
            state.unsettled.append(message.delivery_tag)
            state.recorded.add(message.delivery_tag)

    async def ack(self, message: AbstractIncomingMessage) -> None:
        tag = message.delivery_tag
        channel = message.channel
        state = self._channels.get(channel)
        if tag is None or state is None or tag not in state.recorded or not state.ordered:
            # Not seen by ``delivered`` (or not in order): alone, as aio-pika would.
            await message.ack()
            self.frames_sent += 1
            return
        future = asyncio.get_running_loop().create_future()
        state.asked[tag] = future
        if not state.flushing:
            state.flushing = True
            asyncio.get_running_loop().call_soon(self._flush, channel, state)
        await future

    def _state(self, channel: Any) -> _Channel:
        state = self._channels.get(channel)
        if state is None:
            state = self._channels[channel] = _Channel()
        return state

    def _flush(self, channel: Any, state: _Channel) -> None:
        state.flushing = False
        asked, state.asked = state.asked, {}
        unsettled, gone = state.unsettled, state.gone
        run_end: int | None = None
        while unsettled and (unsettled[0] in asked or unsettled[0] in gone):
            tag = unsettled.popleft()
            state.recorded.discard(tag)
            if tag in gone:
                gone.discard(tag)
            else:
                run_end = tag
        sends: list[tuple[int, bool, list[asyncio.Future[None]]]] = []
        in_run = [f for t, f in asked.items() if run_end is not None and t <= run_end]
        if run_end is not None:
            sends.append((run_end, True, in_run))
        for tag, future in asked.items():
            if run_end is None or tag > run_end:
                gone.add(tag)
                sends.append((tag, False, [future]))
        for tag, multiple, futures in sends:
            task = asyncio.ensure_future(channel.basic_ack(delivery_tag=tag, multiple=multiple))
            self.frames_sent += 1
            task.add_done_callback(lambda done, waiting=futures: _settle(done, waiting))


def _settle(done: asyncio.Future[Any], waiting: list[asyncio.Future[None]]) -> None:
    error = None if done.cancelled() else done.exception()
    for future in waiting:
        if future.done():
            continue
        if done.cancelled():
            future.cancel()
        elif error is not None:
            future.set_exception(error)
        else:
            future.set_result(None)
