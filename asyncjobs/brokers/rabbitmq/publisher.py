"""Publishing with publisher confirms, the publishes of one event-loop step written as one.

aio-pika's ``exchange.publish`` takes the channel's lock, hands its three frames to the
connection's writer and waits until they are written (one socket write, one drain and
a few event-loop steps each) before the next publish may start; with 100 concurrent
``kiq()`` that cost more CPU than the rest of a send. Here every publish asked in one
event-loop step is packed (``frames``) and a writer task of the channel writes them
together: under the channel's lock (as aiormq's own ``basic_publish``: delivery tags
follow the order frames are written, also beside aiormq's RPCs), it numbers each
publish and registers its confirmation future with aiormq as ``basic_publish`` does,
then hands them all to the connection's writer as one frame (aiormq's writer still
honours ``connection.blocked`` and drains) and waits until it is written; what was
asked meanwhile goes next.

Confirms are aiormq's: a confirmation resolves on RabbitMQ's ``basic.ack`` (single or
``multiple``) and raises ``PublishError`` for a returned (unroutable, mandatory)
message and ``DeliveryError`` for a nack. It is a plain future, not one of aiormq's
tracked ones (their bookkeeping cost more than the publish): when the channel closes,
``_on_close`` fails every confirmation still open with the channel's error, as aiormq
would have. A confirmation not settled by its deadline fails with ``TimeoutError``
(one timer per channel for all publishes: a timer per publish costs ~10 µs on uvloop);
one taken back before it was written (deadline, cancelled caller) is never written.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import partial
from random import getrandbits
from typing import Any, cast

import aiormq
from aio_pika import DeliveryMode, Message
from aio_pika.abc import AbstractChannel
from aiormq.abc import ChannelFrame
from aiormq.channel import Returning
from aiormq.exceptions import ChannelInvalidStateError, DeliveryError, PublishError

from asyncjobs.brokers.errors import AsyncJobsError, BrokerError, SendOutcomeUnknownError
from asyncjobs.brokers.rabbitmq.frames import content_frames, publish_method

MAX_METHOD_FRAMES = 512  # cached Basic.Publish frames per channel (exchange, routing key)


@dataclass(slots=True, eq=False)
class _Publish:
    frames: bytes
    message_id: str
    confirmation: asyncio.Future[Any]
    tag: int = 0  # its delivery tag once numbered


@dataclass(slots=True)
class _Channel:
    channel: aiormq.Channel
    pending: list[_Publish] = field(default_factory=list)
    writer: asyncio.Task[None] | None = None
    methods: dict[tuple[str, str], bytes] = field(default_factory=dict)
    # Open publishes by deadline; one timer for the earliest.
    deadlines: deque[tuple[float, _Publish]] = field(default_factory=deque)
    timer: asyncio.TimerHandle | None = None


class Publisher:
    """Confirmed publishes on aiormq channels (one state per channel: a reconnect's new
    channel starts afresh)."""

    def __init__(self) -> None:
        self._channels: dict[aiormq.Channel, _Channel] = {}  # until each closes
        self._last: _Channel | None = None  # the state of the channel used last (a lookup less)
        self._underlay: aiormq.Channel | None = None  # the robust channel's, as last seen
        self._supported = False  # whether ``publish`` can use it
        self.writes = 0  # observable: how many writes the publishes took

    async def send(
        self,
        channel: AbstractChannel,
        exchange: str,
        routing_key: str,
        body: bytes,
        headers: Mapping[str, Any],
        timeout_s: float,
        message_id: str | None = None,
    ) -> None:
        """Publish on aio-pika's (robust) ``channel`` and wait for the confirm, at most
        ``timeout_s``; raises as aio-pika's ``exchange.publish`` (and ``TimeoutError``)."""
        underlay = self._underlay
        if underlay is None or underlay.is_closed:  # the first send, or reconnected
            async with asyncio.timeout(timeout_s):
                underlay = cast(aiormq.Channel, await channel.get_underlay_channel())
            self._underlay, self._supported = underlay, supports(underlay)
        if not self._supported:  # another aiormq than the one this was written for
            message = Message(
                body,
                headers=dict(headers),
                delivery_mode=DeliveryMode.PERSISTENT,
                message_id=message_id,
                timestamp=time.time(),
            )
            async with asyncio.timeout(timeout_s):
                target = await channel.get_exchange(exchange, ensure=False)
                await target.publish(message, routing_key=routing_key, mandatory=True)
            return
        await self.publish(underlay, exchange, routing_key, body, headers, timeout_s, message_id)

    def publish(
        self,
        channel: aiormq.Channel,
        exchange: str,
        routing_key: str,
        body: bytes,
        headers: Mapping[str, Any],
        timeout_s: float,
        message_id: str | None = None,
    ) -> asyncio.Future[Any]:
        """Queue a persistent, mandatory publish; the future is its confirmation (see the
        module), failed with ``TimeoutError`` after ``timeout_s``."""
        state = self._last
        if state is None or state.channel is not channel:
            state = self._last = self._channels.get(channel) or self._start(channel)
        method = state.methods.get((exchange, routing_key))
        if method is None:
            if len(state.methods) >= MAX_METHOD_FRAMES:
                state.methods.clear()
            method = state.methods[exchange, routing_key] = publish_method(
                channel.number, exchange, routing_key
            )
        # aiormq matches a returned message to its publish by message id: one is needed.
        message_id = message_id or f"{getrandbits(128):032x}"
        # The timestamp is read back as Delivery.enqueued_at (whole seconds).
        content = content_frames(
            channel.number, body, headers, message_id, int(time.time()), channel.max_content_size
        )
        loop = channel.loop
        publish = _Publish(method + content, message_id, loop.create_future())
        state.pending.append(publish)
        if state.writer is None:  # it starts after this step: this step's publishes go together
            state.writer = loop.create_task(self._write(state))
        _time_out_at(state, publish, loop.time() + timeout_s)
        return publish.confirmation

    def _start(self, channel: aiormq.Channel) -> _Channel:
        if not channel.publisher_confirms:
            raise ValueError("Publisher needs a channel with publisher confirms")
        state = self._channels[channel] = _Channel(channel)
        channel.closing.add_done_callback(partial(_on_close, state, self._channels))
        return state

    async def _write(self, state: _Channel) -> None:
        channel = state.channel
        try:
            while state.pending:
                async with channel.lock:  # raises once the channel is closed
                    batch, state.pending = state.pending, []
                    await self._write_batch(channel, batch)
        except Exception as exc:  # the channel closed
            _fail_pending(state, exc)
        except BaseException as exc:  # cancelled: the loop is closing
            _fail_pending(state, exc)
            raise
        finally:
            state.writer = None

    async def _write_batch(self, channel: aiormq.Channel, batch: list[_Publish]) -> None:
        numbered: list[_Publish] = []
        for publish in batch:
            if publish.confirmation.done():  # timed out or its caller gone: not written
                continue
            channel.delivery_tag += 1
            publish.tag = channel.delivery_tag
            channel.confirmations[publish.tag] = publish.confirmation
            channel.message_id_delivery_tag[publish.message_id] = publish.tag
            numbered.append(publish)
        if not numbered:
            return
        written = channel.create_future()  # aiormq's: failed when the channel closes
        payload = b"".join([publish.frames for publish in numbered])
        try:
            await channel.write_queue.put(
                ChannelFrame(payload=payload, should_close=False, drain_future=written)
            )
        except BaseException as exc:
            # Never handed to the writer: RabbitMQ has not seen these numbers.
            channel.delivery_tag -= len(numbered)
            for publish in numbered:
                channel.confirmations.pop(publish.tag, None)
                _forget(channel, publish)
                _fail(publish.confirmation, exc)
            raise
        self.writes += 1
        for publish in numbered:
            publish.frames = b""  # written: no need to keep it until the confirm
            publish.confirmation.add_done_callback(partial(_forgotten, channel, publish))
        await written  # written and drained: the next batch waits for the socket


def send_error(
    exc: BaseException, where: str, task_id: str, queue: str, timeout_s: float
) -> AsyncJobsError:
    """What a failed ``send`` to ``where`` raises: RabbitMQ refused it (returned as
    unroutable, or nacked: nothing was stored), or its outcome is unknown (no confirm in
    time, the channel closed). A publish can also fail before its frames were written
    (aiormq knows, but does not tell): it is said to be unknown then too, never a false
    "nothing was sent"."""
    if isinstance(exc, PublishError):  # returned: no queue bound (the confirm came after it)
        return BrokerError(
            f"RabbitMQ could not route a message to {where}: {exc}; nothing was stored"
        )
    if isinstance(exc, DeliveryError):  # nacked
        return BrokerError(f"RabbitMQ refused a message to {where}: {exc}; nothing was stored")
    if isinstance(exc, TimeoutError):
        reason = f"no publisher confirm within {timeout_s:g} s"
    else:
        reason = f"the channel closed before the confirm: {type(exc).__name__}"
    return SendOutcomeUnknownError.unconfirmed(
        task_id=task_id, queue=queue, where=where, reason=reason
    )


def supports(channel: Any) -> bool:
    """Whether ``channel`` has the aiormq internals ``publish`` relies on (aiormq 7.x)."""
    kind = type(channel)  # properties looked up on the class: reading them has effects
    return (
        isinstance(getattr(channel, "confirmations", None), dict)
        and isinstance(getattr(channel, "message_id_delivery_tag", None), dict)
        and isinstance(getattr(channel, "delivery_tag", None), int)
        and isinstance(getattr(channel, "write_queue", None), asyncio.Queue)
        and isinstance(getattr(channel, "max_content_size", None), int)
        and all(hasattr(kind, name) for name in ("lock", "closing", "create_future"))
        and "drain_future" in getattr(ChannelFrame, "__dataclass_fields__", {})
    )


def _time_out_at(state: _Channel, publish: _Publish, deadline: float) -> None:
    queue = state.deadlines
    while queue and queue[0][1].confirmation.done():
        queue.popleft()
    if queue and deadline < queue[-1][0]:
        # Shorter than those before it (another timeout): a timer of its own.
        loop = state.channel.loop
        timer = loop.call_at(deadline, _expire, state, publish)
        publish.confirmation.add_done_callback(lambda _: timer.cancel())
        return
    queue.append((deadline, publish))
    if state.timer is None:
        state.timer = state.channel.loop.call_at(deadline, _on_deadline, state)


def _on_deadline(state: _Channel) -> None:
    state.timer = None
    queue, now = state.deadlines, state.channel.loop.time()
    while queue and (queue[0][0] <= now or queue[0][1].confirmation.done()):
        _expire(state, queue.popleft()[1])
    if queue:
        state.timer = state.channel.loop.call_at(queue[0][0], _on_deadline, state)


def _expire(state: _Channel, publish: _Publish) -> None:
    if publish.confirmation.done():
        return
    confirmations = state.channel.confirmations
    if publish.tag and confirmations.get(publish.tag) is publish.confirmation:
        # A confirm that comes later finds a cancelled one, as after aiormq's own
        # timeout (logged at debug level), not an unknown tag.
        given_up = state.channel.loop.create_future()
        given_up.cancel()
        confirmations[publish.tag] = given_up
    publish.confirmation.set_exception(TimeoutError())


def _on_close(
    state: _Channel, channels: dict[aiormq.Channel, _Channel], closing: asyncio.Future[Any]
) -> None:
    """The channel closed: what is open fails as aiormq fails its own futures then."""
    channels.pop(state.channel, None)
    if state.timer is not None:
        state.timer.cancel()
        state.timer = None
    state.deadlines.clear()
    if closing.cancelled():
        error: BaseException = asyncio.CancelledError()
    else:
        error = closing.exception() or ChannelInvalidStateError(f"{state.channel!r} closed")
    _fail_pending(state, error)
    for confirmation in list(state.channel.confirmations.values()):
        if not isinstance(confirmation, Returning):  # aiormq's placeholder
            _fail(confirmation, error)


def _fail_pending(state: _Channel, error: BaseException) -> None:
    failed, state.pending = state.pending, []
    for publish in failed:
        _fail(publish.confirmation, error)


def _forgotten(channel: aiormq.Channel, publish: _Publish, _: asyncio.Future[Any]) -> None:
    _forget(channel, publish)


def _forget(channel: aiormq.Channel, publish: _Publish) -> None:
    """Drop a settled publish's message id (aiormq keeps it to match a return)."""
    if channel.message_id_delivery_tag.get(publish.message_id) == publish.tag:
        del channel.message_id_delivery_tag[publish.message_id]


def _fail(future: asyncio.Future[Any], error: BaseException) -> None:
    if future.done():
        return
    if isinstance(error, asyncio.CancelledError):
        future.cancel()
    else:
        future.set_exception(error)
