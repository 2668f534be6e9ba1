"""Deliveries taken straight off aiormq's channel, without aio-pika's per-message machinery.

For each delivery aio-pika's consumer runs two tasks (aiormq's, then aio-pika's for the
callback) and builds an ``IncomingMessage`` through its attribute-checking setters: about
a sixth of what a worker spends per message before any of it is ours. The consumers are
still subscribed through aio-pika (its robust channel subscribes them again after a
reconnect, under the same consumer tags), but the worker's consuming channel is a
``ConsumerChannel``: each aiormq channel it opens (the first, and each one a reconnect
opens) is taken over before any consumer is subscribed on it. ``take_over`` replaces
aiormq's handler of ``basic.deliver`` there: for our consumer tags (``routes``, filled
before each subscription) it reads the content frames as aiormq's handler would and
hands a ``Received`` to ``deliver`` at once, in the channel reader's own step, so the
inbox gets every delivery in delivery order; any other consumer tag's deliveries go to
aiormq's handler unchanged. With an aiormq lacking the internals this uses, nothing is
taken over and aio-pika's callback delivers (``AmqpBroker._on_message``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import Any, Protocol, cast

import aiormq
from aio_pika import RobustChannel
from aio_pika.exceptions import MessageProcessError
from aiormq.exceptions import ChannelInvalidStateError
from pamqp import commands as spec
from pamqp.body import ContentBody
from pamqp.header import ContentHeader

from asyncjobs.brokers.rabbitmq.frames_in import OwnFramesConnection


class Inbound(Protocol):
    """What the transport reads of a delivery: aio-pika's ``IncomingMessage`` (the
    fallback path) and ``Received`` both are one."""

    @property
    def body(self) -> bytes: ...
    @property
    def headers(self) -> Mapping[str, Any]: ...
    @property
    def delivery_tag(self) -> int | None: ...
    @property
    def timestamp(self) -> datetime | None: ...
    @property
    def channel(self) -> aiormq.abc.AbstractChannel: ...
    def ack(self, multiple: bool = False) -> Awaitable[None]: ...


class Received:
    """One delivery, as the transport uses it (``Inbound``)."""

    __slots__ = ("_channel", "_settled", "body", "delivery_tag", "headers", "timestamp")

    def __init__(
        self, channel: aiormq.Channel, tag: int, header: ContentHeader, body: bytes
    ) -> None:
        properties = header.properties
        self._channel = channel
        self._settled = False
        self.body = body
        self.delivery_tag: int | None = tag
        self.headers: Mapping[str, Any] = properties.headers or {}
        self.timestamp: datetime | None = properties.timestamp

    @property
    def channel(self) -> aiormq.abc.AbstractChannel:
        """The channel it came on; ``ChannelInvalidStateError`` once that closed (its
        delivery went back to the queue), as aio-pika's."""
        if self._channel.is_closed:
            raise ChannelInvalidStateError(f"{self._channel!r} closed")
        return self._channel

    async def ack(self, multiple: bool = False) -> None:
        if self._settled:  # as aio-pika's
            raise MessageProcessError("Message already processed", self)
        self._settled = True
        assert self.delivery_tag is not None
        await self.channel.basic_ack(self.delivery_tag, multiple=multiple)


Deliver = Callable[[str, Received], None]


def can_take_over(channel: Any) -> bool:
    """Whether ``channel`` has the aiormq internals ``take_over`` relies on (aiormq 7.x)."""
    kind = type(channel)
    return callable(getattr(kind, "_on_deliver_frame", None)) and callable(
        getattr(kind, "_get_frame", None)
    )


def take_over(channel: aiormq.Channel, queues: Mapping[str, str], deliver: Deliver) -> None:
    """Hand the deliveries of the consumer tags in ``queues`` (tag -> queue; read at each
    delivery) to ``deliver``, on this channel (``can_take_over`` first)."""
    aiormqs = channel._on_deliver_frame  # the bound method: other consumers' deliveries

    async def on_deliver(frame: spec.Basic.Deliver) -> None:
        queue = queues.get(frame.consumer_tag or "")
        if queue is None:
            await aiormqs(frame)
            return
        header = await channel._get_frame()
        if not isinstance(header, ContentHeader):
            raise ValueError(f"Unexpected frame {header!r} instead of ContentHeader", header)
        body = await _read_body(channel, header.body_size or 0)
        deliver(queue, Received(channel, frame.delivery_tag or 0, header, body))

    channel._on_deliver_frame = on_deliver  # type: ignore[method-assign]


class ConsumerChannel(RobustChannel):
    """A robust channel whose every aiormq channel is taken over (once ``deliver`` is
    set) before its consumers are subscribed."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.routes: dict[str, str] = {}  # consumer tag -> queue
        self.deliver: Deliver | None = None

    async def _on_open(self) -> None:
        underlay = await self.get_underlay_channel()
        if self.deliver is not None and can_take_over(underlay):
            take_over(cast(aiormq.Channel, underlay), self.routes, self.deliver)
        await super()._on_open()  # subscribes the consumers again after a reconnect

    def start_delivering(self, deliver: Deliver) -> None:
        """From now on (and on every channel a reconnect opens), hand ``routes``'
        deliveries to ``deliver``. Call before the first subscription."""
        self.deliver = deliver
        underlay = self._channel.channel if self._channel is not None else None
        if underlay is not None and can_take_over(underlay):
            take_over(cast(aiormq.Channel, underlay), self.routes, deliver)


class ConsumerConnection(OwnFramesConnection):
    """A robust connection whose channels are ``ConsumerChannel``s, its frames read by
    ``frames_in``: the worker's."""

    CHANNEL_CLASS = ConsumerChannel


async def _read_body(channel: aiormq.Channel, size: int) -> bytes:
    """The body frames of one delivery, as aiormq's ``_read_content`` reads them."""
    parts: list[bytes] = []
    read = 0
    while read < size:
        frame = await channel._get_frame()
        if not isinstance(frame, ContentBody):
            raise ValueError(f"Unexpected frame {frame!r}", frame)
        parts.append(frame.value)
        read += len(frame.value)
    return parts[0] if len(parts) == 1 else b"".join(parts)
