"""RabbitMQ acknowledgements, merged where that cannot acknowledge anything early.

aio-pika sends one ``basic.ack`` frame per message: a write and a frame for RabbitMQ to
handle each, for a no-op task a sixth of the worker's CPU and more of RabbitMQ's. AMQP
can acknowledge "every delivery up to tag N" in one frame (``multiple``), but that also
covers messages still running, so it is used only for the oldest run of deliveries of a
channel that have *all* been asked to be acknowledged.

Each channel's delivered-but-unsettled tags are kept in delivery order (RabbitMQ numbers
them in that order per channel). One sender per channel writes the asked acks in
batches: the longest run at the front whose acks were all asked for as one ``multiple``
ack, other asked acks alone, ``BATCH_FRAMES`` frames at most. The first batch goes at
the end of the event-loop step of the first ack, each next one as soon as the frames of
the one before are written, with what was asked meanwhile. A message is never
acknowledged before its own ack was asked for, and never twice: ``ack()`` of a message
whose ack is under way waits for that frame, of one already acknowledged returns.
``ack()`` returns once its frame is written, as aio-pika's does (AMQP acks have no reply).

Why batches, one at a time: RabbitMQ closes the channel ("unknown delivery tag") on an
ack of a tag no longer unacknowledged, and a ``multiple`` ack covers every tag up to its
own. aiormq writes every frame of a connection through one queue of 10 frames; when it is
full, writers wait for room and a later one can take a freed slot first (asyncio.Queue
wakes one waiting writer per slot, and a new ``put`` that finds it free takes it). A
``multiple`` ack could so overtake an earlier lone ack of a tag it covers, or an earlier
``multiple`` ack: RabbitMQ refused the late one, closed the channel, and every
unacknowledged message of the channel ran again. A batch starts only once the frames
before it are written, and never fills the queue. A full queue also broke the recovery:
aiormq drops the ``channel.close-ok`` it owes RabbitMQ when the queue is full, so the
robust channel's reopen was refused ("second 'channel.open' seen") and RabbitMQ closed
the whole connection.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field
from itertools import islice
from typing import Any, NamedTuple
from weakref import WeakKeyDictionary

from asyncjobs.brokers.rabbitmq.inbound import Inbound

# Frames a channel's sender writes at once: below aiormq's write queue (FRAME_BUFFER_SIZE,
# 10 frames per connection), so they never wait for room and never fill it.
BATCH_FRAMES = 6


class _Frame(NamedTuple):
    tag: int
    multiple: bool
    waiting: list[tuple[int, asyncio.Future[None]]]  # (tag, its ack()'s future)


@dataclass(slots=True)
class _Channel:
    unsettled: deque[int] = field(default_factory=deque)  # delivery order
    recorded: set[int] = field(default_factory=set)  # the same tags, to look up
    asked: dict[int, asyncio.Future[None]] = field(default_factory=dict)  # no frame yet
    sent: dict[int, asyncio.Future[None]] = field(default_factory=dict)  # frame being written
    gone: set[int] = field(default_factory=set)  # acked alone, still in `unsettled`
    covered: int = 0  # the last tag taken off `unsettled`: acked, or being acked
    sender: asyncio.Task[None] | None = None
    # The run logic needs ``unsettled`` in tag order; seen out of order: no merging.
    ordered: bool = True


class AckMerger:
    def __init__(self) -> None:
        self._channels: WeakKeyDictionary[Any, _Channel] = WeakKeyDictionary()
        self.frames_sent = 0  # observable: how many ack frames the merging saved

    def delivered(self, message: Inbound) -> None:
        """Record a delivery (before anything can ack it)."""
        if message.delivery_tag is not None:
            state = self._state(message.channel)
            if state.unsettled and state.unsettled[-1] > message.delivery_tag:
                state.ordered = False
            if not state.ordered:
                return
            state.unsettled.append(message.delivery_tag)
            state.recorded.add(message.delivery_tag)

    async def ack(self, message: Inbound) -> None:
        tag = message.delivery_tag
        channel = message.channel
        state = self._channels.get(channel)
        if tag is None or state is None:
            await self._alone(message)
            return
        future = state.asked.get(tag) or state.sent.get(tag)
        if future is None:
            if tag in state.gone or (state.ordered and state.covered >= tag > 0):
                return  # acknowledged already (an ack asked again after a cancelled one)
            if tag not in state.recorded:  # not seen by ``delivered``, or out of order
                await self._alone(message)
                return
            future = state.asked[tag] = asyncio.get_running_loop().create_future()
            future.add_done_callback(_retrieve)  # its caller may have been cancelled
            if state.sender is None:  # it starts after this step: its acks go together
                state.sender = asyncio.ensure_future(self._send(channel, state))
        # Shielded: a cancelled caller does not take back an ack that may be on its way.
        await asyncio.shield(future)

    async def _alone(self, message: Inbound) -> None:
        await message.ack()  # as aio-pika would
        self.frames_sent += 1

    def _state(self, channel: Any) -> _Channel:
        state = self._channels.get(channel)
        if state is None:
            state = self._channels[channel] = _Channel()
        return state

    async def _send(self, channel: Any, state: _Channel) -> None:
        try:
            while state.asked:
                batch = _next_batch(state)
                await asyncio.gather(*(self._write(channel, state, frame) for frame in batch))
        finally:
            state.sender = None
            for future in state.asked.values():  # cancelled: the loop is closing
                future.cancel()
            state.asked.clear()

    async def _write(self, channel: Any, state: _Channel, frame: _Frame) -> None:
        self.frames_sent += 1
        try:
            await channel.basic_ack(delivery_tag=frame.tag, multiple=frame.multiple)
        except asyncio.CancelledError:  # the loop is closing
            _written(state, frame, None, cancelled=True)
            raise
        except Exception as exc:  # the channel is gone: its callers say so
            _written(state, frame, exc)
        else:
            _written(state, frame, None)


def _written(
    state: _Channel, frame: _Frame, error: Exception | None, *, cancelled: bool = False
) -> None:
    for tag, future in frame.waiting:
        del state.sent[tag]
        if future.done():
            continue
        if cancelled:
            future.cancel()
        elif error is not None:
            future.set_exception(error)
        else:
            future.set_result(None)


def _retrieve(future: asyncio.Future[None]) -> None:
    if not future.cancelled():
        future.exception()


def _next_batch(state: _Channel) -> list[_Frame]:
    """The frames to write next, from what was asked: the front run as one ``multiple``
    ack, then lone acks, oldest asked first."""
    asked, gone, unsettled = state.asked, state.gone, state.unsettled
    run_end: int | None = None
    while state.ordered and unsettled and (unsettled[0] in asked or unsettled[0] in gone):
        tag = state.covered = unsettled.popleft()
        state.recorded.discard(tag)
        if tag in gone:
            gone.discard(tag)
        else:
            run_end = tag
    batch: list[_Frame] = []
    if run_end is not None:
        in_run = [tag for tag in asked if tag <= run_end]
        batch.append(_Frame(run_end, True, [(tag, asked.pop(tag)) for tag in in_run]))
    for tag in list(islice(asked, BATCH_FRAMES - len(batch))):
        gone.add(tag)
        batch.append(_Frame(tag, False, [(tag, asked.pop(tag))]))
    for frame in batch:
        state.sent.update(frame.waiting)
    return batch
