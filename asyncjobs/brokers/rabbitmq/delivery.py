"""A message received from RabbitMQ and how it is settled (see ``rabbitmq.broker``).

Every settlement that moves a message (hand back, release, retry, dead letter) publishes
the new copy with a publisher confirm first and acknowledges the original after: a crash
in between duplicates the message, never loses it.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from functools import partial
from typing import TYPE_CHECKING, Any

from aiormq.exceptions import ChannelInvalidStateError

from asyncjobs.brokers.base import Defect, Delivery, logger
from asyncjobs.brokers.dead_letters import DeadLetter, Reason, excerpt
from asyncjobs.brokers.rabbitmq.delay import send_delayed
from asyncjobs.brokers.rabbitmq.inbound import Inbound
from asyncjobs.brokers.rabbitmq.names import (
    CHANNEL_GONE,
    DELIVERIES,
    RABBIT_DELIVERIES,
    SUSPECT,
    TASK_HEADERS,
    dead_letter_queue_name,
    positive_count,
)

if TYPE_CHECKING:
    from asyncjobs.brokers.rabbitmq.broker import AmqpBroker

MAX_COUNT = 999_999_999  # as on Redis: at most 9 digits


def prior_deliveries(headers: Mapping[str, Any]) -> int | None:
    """Our ``x-asyncjobs-deliveries`` header: 0 when absent (a raw taskiq-aio-pika
    producer), None when it is not a plain count. Headers are the sender's input: a
    negative count would defeat MAX_DELIVERIES."""
    value = headers.get(DELIVERIES)
    if value is None:
        return 0
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_COUNT:
        return value
    return None


def _enqueued_at(message: Inbound) -> float | None:
    """When the message became deliverable here (unix seconds, whole seconds): back from
    a delay queue, when that queue dead-lettered it (the newest ``x-death`` entry); else
    its AMQP timestamp, set by ``send`` (a raw taskiq-aio-pika producer sets none)."""
    deaths = message.headers.get("x-death")
    if isinstance(deaths, list):
        times = [d["time"] for d in deaths if isinstance(d, dict) and "time" in d]
        moments = [t for t in times if isinstance(t, datetime)]
        if moments:
            return _unix(max(moments, key=_unix))
    timestamp = message.timestamp
    return _unix(timestamp) if isinstance(timestamp, datetime) else None


def _unix(moment: datetime) -> float:
    if moment.tzinfo is None:  # AMQP timestamps are UTC
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


class AmqpDelivery(Delivery):
    __slots__ = ("broker", "message")

    def __init__(self, broker: AmqpBroker, message: Inbound, queue: str) -> None:
        headers = message.headers
        returned = positive_count(headers, RABBIT_DELIVERIES)  # by RabbitMQ: a consumer died
        ours = prior_deliveries(headers)
        defect = None
        if ours is None:
            shown = excerpt(repr(headers.get(DELIVERIES)).encode(), 40)
            defect = Defect(
                Reason.BAD_DELIVERY_COUNT,
                f"header {DELIVERIES!r} is {shown}, not a count from 0 to {MAX_COUNT}",
            )
        suspect = returned > 0 or positive_count(headers, SUSPECT) > 0
        super().__init__(
            message.body,
            queue,
            1 + returned + (ours or 0),
            _enqueued_at(message),
            suspect=suspect,
            defect=defect,
        )
        self.broker = broker
        self.message = message

    async def _ack(self) -> None:
        # Merged with the acks of this event-loop step where that acks nothing early.
        await self._on_channel("ack", partial(self.broker.acks.ack, self.message))

    async def _hand_back(self) -> None:
        # Not a nack: RabbitMQ counts a nack in x-delivery-count exactly like a crash, and
        # the next worker would run it alone as a crash suspect. A copy carrying the count
        # (confirmed), then the ack: other workers can take it at once.
        await self._requeue_copy(self.delivery_count, suspect=False)

    async def _dead_letter(self, record: DeadLetter, payload: bytes) -> None:
        headers = {"reason": str(record.reason), "task_id": record.task_id}
        target = dead_letter_queue_name(self.broker.options.key_prefix, self.queue)
        # The message_id is the dead letter's id (asyncjobs/brokers/rabbitmq/dead_letters.py).
        await self.broker.send(
            "", target, payload, headers, message_id=uuid.uuid4().hex
        )  # confirmed first...
        await self._ack()  # ...then acked: a crash in between duplicates, never loses

    async def _release(self) -> None:
        # Never started here: it must not count as a delivery. A quorum queue counts
        # every return (nack, channel close) in x-delivery-count, so instead a copy goes
        # to the back of the queue carrying the count so far, confirmed, then this one is
        # acked (a crash in between duplicates, never loses).
        await self._requeue_copy(self.delivery_count - 1, suspect=self.suspect)

    async def _requeue_copy(self, deliveries: int, *, suspect: bool) -> None:
        headers: dict[str, Any] = {k: self.message.headers.get(k, "") for k in TASK_HEADERS}
        headers[DELIVERIES] = deliveries
        if suspect:
            headers[SUSPECT] = 1
        await self.broker.send(self.broker.exchange_name, self.queue, self.data, headers)
        await self._ack()  # a crash in between duplicates, never loses

    async def _republish(self, body: bytes) -> None:
        # A new attempt of the same task: same ids, delivery count starts again.
        headers: dict[str, Any] = {k: self.message.headers.get(k, "") for k in TASK_HEADERS}
        headers[DELIVERIES] = 0
        await self.broker.send(self.broker.exchange_name, self.queue, body, headers)
        await self._ack()

    async def _retry_at(self, body: bytes, due_unix_s: float) -> None:
        # Confirmed in its delay queue first, then acked: a crash in between duplicates.
        headers: dict[str, Any] = {k: self.message.headers.get(k, "") for k in TASK_HEADERS}
        headers[DELIVERIES] = 0
        await send_delayed(self.broker, self.queue, body, headers, due_unix_s)
        await self._ack()

    async def _on_channel(self, action: str, settle: Callable[[], Awaitable[None]]) -> None:
        try:
            await settle()
        except CHANNEL_GONE as exc:
            # taskiq-aio-pika lets this crash the worker. The channel that delivered the
            # message is gone, and with it the delivery: RabbitMQ requeued it already.
            logger.warning(
                "could not %s task %s from queue %r: its channel closed (%s); "
                "RabbitMQ requeued the message and will deliver it again",
                action,
                self.message.headers.get("task_id", "?"),
                self.queue,
                type(exc).__name__,
            )


def _live(message: Inbound) -> bool:
    """False for a message whose channel closed: RabbitMQ requeued it already."""
    try:
        if not message.channel.is_closed:
            return True
    except ChannelInvalidStateError:
        pass
    logger.debug("dropped a prefetched message of a closed channel; RabbitMQ requeued it")
    return False
