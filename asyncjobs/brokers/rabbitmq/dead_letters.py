"""The RabbitMQ dead-letter store: list, count, replay, delete and purge ``{prefix}.{queue}.dead``.

``DeadLetterQueues``, held by ``asyncjobs.brokers.rabbitmq.broker.AmqpBroker``, with the
semantics of the Redis transport's dead-letter stream:

- ``dead_letters`` lists the oldest dead letters without losing or reordering them;
- each dead letter has an ``id`` that stays the same across listings;
- ``replay_dead_letter`` publishes the new body to the queue, confirmed, *then*
  acknowledges the dead letter: a crash in between duplicates, never loses;
- an unknown queue name raises ``UnknownQueueError``, an unknown id
  ``DeadLetterNotFoundError``.

AMQP cannot read a queue without taking messages out of it. Every operation reads with
``basic.get`` (no auto-ack) on a channel of its own and returns what it took with one
``basic.nack(multiple, requeue)``. How RabbitMQ 3.10's quorum queues requeue decides the
rest (measured, not documented):

- a returned message goes to the *back of the returned messages*, which are delivered
  before the never-delivered ones. Returning a prefix of the queue would therefore rotate
  it once anything had been returned before (i.e. after the first listing); taking the
  *whole* queue and returning it in delivery-tag order keeps the order exactly. So a
  listing reads the whole dead-letter queue, whatever ``limit`` is (O(n) round trips),
  while replaying or deleting the oldest dead letters takes just those (``settle_each``).
  A snapshot (``replay_all``) is therefore one listing, and its replay one pass from the
  head: letters dead-lettered after the listing are behind every letter it returned;
- a return is applied asynchronously (a Raft command): right after the nack, another
  channel may not see the messages yet, and a listing started then would be partial and
  would reorder the queue. Every operation therefore waits, bounded, until the queue
  shows at least as many ready messages as it returned;
- each return increments the message's ``x-delivery-count``; the dead-letter queues have
  no ``x-delivery-limit``, so on 3.x nothing is ever dropped for it. RabbitMQ 4.0 gives
  every quorum queue a default limit of 20, and these queues have no dead-letter exchange:
  there, dead letters would be *dropped* after about 20 listings. 4.x needs
  ``x-delivery-limit: -1`` on the dead-letter queues, but 3.10 reads -1 (and 0) as "drop
  on the first return": version-gate it (or set it by policy), never declare it blindly.

Two kinds of message live in a dead-letter queue:

- our records (``DeadLetter.to_json``), published by the worker with a ``message_id``;
- raw original messages that RabbitMQ itself moved there when a message exceeded the
  queue's ``x-delivery-limit`` backstop (a consumer that kept dying before it could
  dead-letter it), carrying ``x-death`` headers. They are shown as
  ``Reason.MAX_DELIVERIES`` records whose ``body`` is the original message.

The id is the AMQP ``message_id`` (aiormq gives every published message one), or, for a
message published without one, a hash of its body and headers.

Counts and listings see the *ready* messages: while another listing or replay holds some
of them, they are invisible to this one (a concurrent replay of the same id may then
report it as not found).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any

from aio_pika.abc import AbstractIncomingMessage, AbstractQueue
from aiormq.exceptions import ChannelNotFoundEntity

from asyncjobs.brokers.dead_letters import DeadLetter, Reason
from asyncjobs.brokers.errors import DeadLetterNotFoundError
from asyncjobs.brokers.failures import translating, translating_pages
from asyncjobs.brokers.rabbitmq.names import (
    DELIVERIES,
    bounded,
    dead_letter_queue_name,
    positive_count,
)

if TYPE_CHECKING:
    from asyncjobs.brokers.rabbitmq.broker import AmqpBroker

logger = logging.getLogger("asyncjobs.broker")

GET_TIMEOUT_S = 10.0  # one basic.get round trip
RETURN_WAIT_S = 3.0  # how long to wait for RabbitMQ to apply our returns
RETURN_POLL_S = 0.005
# Headers RabbitMQ rewrites on every redelivery: never part of an id.
VOLATILE_HEADERS = frozenset({"x-delivery-count"})
# x-death reasons (https://www.rabbitmq.com/docs/dlx) as our reasons.
RABBIT_REASONS = {"delivery_limit": Reason.MAX_DELIVERIES, "rejected": Reason.REJECTED}


class DeadLetterQueues:
    """The dead-letter queues of one ``AmqpBroker`` (``broker.dead``), which delegates its
    dead-letter methods here."""

    def __init__(self, broker: AmqpBroker) -> None:
        self.broker = broker

    # Library errors become BrokerErrors: `asyncjobs dlq` prints one line, no traceback.
    @translating("listing dead letters")
    async def dead_letters(self, queue: str, limit: int = 100) -> list[DeadLetter]:
        """The oldest ``limit`` dead letters of ``queue``, oldest first; none is removed."""
        broker = self.broker
        async with broker_dead_queue(broker, queue) as dead:
            if dead is None or limit <= 0:
                return []
            taken = await take_all(dead)
            try:
                return [as_dead_letter(broker, queue, message) for message in taken[:limit]]
            finally:
                await put_back(dead, taken)

    @translating("counting dead letters")
    async def dead_letter_count(self, queue: str) -> int:
        broker = self.broker
        async with broker_dead_queue(broker, queue) as dead:
            if dead is None:
                return 0
            return dead.declaration_result.message_count or 0

    @translating_pages("listing dead letters")
    async def dead_letter_snapshot(
        self, queue: str, page_size: int = 500
    ) -> AsyncIterator[list[DeadLetter]]:
        """One page, the whole queue: a listing reads all of it anyway, and replaying a
        page that is not at the head of the queue would take the whole queue once per page
        (``settle_each``)."""
        letters = await self.dead_letters(queue, sys.maxsize)
        if letters:
            yield letters

    @translating("replaying dead letters")
    async def replay_dead_letters(self, queue: str, bodies: Mapping[str, bytes]) -> set[str]:
        """Publish each body to ``queue`` (confirmed), then remove its dead letter; the ids
        not found. One pass over the queue (``settle_each``)."""
        broker = self.broker

        async def publish(letter: DeadLetter) -> None:
            headers = {"task_id": letter.task_id, "task_name": letter.task_name, DELIVERIES: 0}
            await broker.send(broker.exchange_name, queue, bodies[letter.id], headers)

        return set(bodies) - await settle_each(broker, queue, bodies.keys(), publish)

    async def replay_dead_letter(self, queue: str, dead_letter_id: str, body: bytes) -> None:
        if await self.replay_dead_letters(queue, {dead_letter_id: body}):
            raise not_found(queue, dead_letter_id)

    @translating("deleting a dead letter")
    async def delete_dead_letter(self, queue: str, dead_letter_id: str) -> None:
        async def nothing(letter: DeadLetter) -> None:
            return None

        await settle_one(self.broker, queue, dead_letter_id, nothing)

    @translating("purging dead letters")
    async def purge_dead_letters(self, queue: str) -> int:
        """Delete every ready dead letter of ``queue``; how many there were."""
        broker = self.broker
        async with broker_dead_queue(broker, queue) as dead:
            if dead is None:
                return 0
            purged = await dead.purge()
            return int(purged.message_count or 0)


# -- reading a dead-letter queue -------------------------------------------------------
@asynccontextmanager
async def broker_dead_queue(broker: AmqpBroker, queue: str) -> AsyncIterator[AbstractQueue | None]:
    """``queue``'s dead-letter queue on a channel of its own (None if it does not exist).

    Closing the channel at the end returns whatever is still unacknowledged.
    """
    broker.check_queue(queue)  # UnknownQueueError for a queue not in QUEUES
    await broker.ensure_started()
    assert broker.write_conn is not None  # ensure_started connected
    channel = await broker.write_conn.channel(publisher_confirms=False)
    try:
        try:
            # A passive declare of a missing queue closes the channel: nothing to return.
            dead = await channel.declare_queue(
                dead_letter_queue_name(broker.options.key_prefix, queue), passive=True
            )
        except ChannelNotFoundEntity:
            dead = None
        yield dead
    finally:
        await bounded("close", channel.close())


async def take_all(dead: AbstractQueue) -> list[AbstractIncomingMessage]:
    """Every ready message of ``dead``, unacknowledged, in delivery order."""
    taken: list[AbstractIncomingMessage] = []
    while (message := await dead.get(no_ack=False, fail=False, timeout=GET_TIMEOUT_S)) is not None:
        taken.append(message)
    return taken


async def put_back(dead: AbstractQueue, taken: Sequence[AbstractIncomingMessage]) -> None:
    """Return ``taken`` (unacknowledged, in delivery order) with one nack, in tag order,
    and wait until RabbitMQ applied the return (see the module docstring)."""
    if not taken:
        return
    await taken[-1].nack(multiple=True, requeue=True)
    deadline = time.monotonic() + RETURN_WAIT_S
    while True:
        declared = await dead.declare(timeout=GET_TIMEOUT_S)  # passive: just counts
        if (declared.message_count or 0) >= len(taken):
            return
        if time.monotonic() > deadline:
            # Another listing or replay may hold some of them right now.
            logger.warning(
                "RabbitMQ: %d dead letters returned to %s are not all back after %.0f s",
                len(taken),
                dead.name,
                RETURN_WAIT_S,
            )
            return
        await asyncio.sleep(RETURN_POLL_S)


async def settle_one(
    broker: AmqpBroker,
    queue: str,
    dead_letter_id: str,
    before_ack: Callable[[DeadLetter], Awaitable[None]],
) -> None:
    """``settle_each`` for one id. Raises ``DeadLetterNotFoundError``."""
    if not await settle_each(broker, queue, {dead_letter_id}, before_ack):
        raise not_found(queue, dead_letter_id)


async def settle_each(
    broker: AmqpBroker,
    queue: str,
    ids: Collection[str],
    before_ack: Callable[[DeadLetter], Awaitable[None]],
) -> set[str]:
    """Run ``before_ack`` on each dead letter whose id is in ``ids``, then ack it; the ids
    found. One pass from the head of the queue.

    While every message taken is wanted, each is settled on its own and nothing else is
    held (the oldest letters: one get each). Once one is not wanted, the rest of the queue
    is taken too and what was not settled goes back in order: putting back only the
    messages before the wanted ones would move them behind the others (see the module
    docstring). If ``before_ack`` fails, everything not settled goes back, that letter
    too, and the error propagates.
    """
    pending = set(ids)
    async with broker_dead_queue(broker, queue) as dead:
        if dead is None:
            return set()
        kept: list[AbstractIncomingMessage] = []  # taken, not settled, in delivery order
        while pending or kept:
            message = await dead.get(no_ack=False, fail=False, timeout=GET_TIMEOUT_S)
            if message is None:
                break
            letter_id = dead_letter_id_of(message)
            if letter_id not in pending:
                kept.append(message)
                continue
            try:
                await before_ack(as_dead_letter(broker, queue, message))
            except Exception:
                with contextlib.suppress(Exception):  # closing the channel returns them anyway
                    await put_back(dead, [*kept, message, *await take_all(dead)])
                raise
            await message.ack()
            pending.discard(letter_id)
        await put_back(dead, kept)
    return set(ids) - pending


def not_found(queue: str, dead_letter_id: str) -> DeadLetterNotFoundError:
    return DeadLetterNotFoundError(
        f"no dead letter {dead_letter_id!r} in queue {queue!r}; "
        "list them with `asyncjobs dlq list` (another replay may hold it right now)"
    )


# -- what a message in a dead-letter queue means ------------------------------------------
def dead_letter_id_of(message: AbstractIncomingMessage) -> str:
    """The message's ``message_id``, else a hash of its body and stable headers."""
    if message.message_id:
        return str(message.message_id)
    headers = message.headers or {}
    stable = sorted((k, repr(v)) for k, v in headers.items() if k not in VOLATILE_HEADERS)
    digest = hashlib.sha256(message.body)
    digest.update(repr(stable).encode())
    return f"sha256-{digest.hexdigest()[:32]}"


def as_dead_letter(broker: AmqpBroker, queue: str, message: AbstractIncomingMessage) -> DeadLetter:
    dead_letter_id = dead_letter_id_of(message)
    headers = message.headers or {}
    if "x-death" not in headers:
        try:
            return DeadLetter.from_json(message.body, dead_letter_id)
        except (ValueError, KeyError, TypeError, AttributeError):
            return DeadLetter(
                body=message.body,
                queue=queue,
                reason=Reason.UNDECODABLE,
                error_message="not an asyncjobs dead-letter record (published by hand?)",
                task_id=_text(headers.get("task_id")),
                task_name=_text(headers.get("task_name")),
                dead_lettered_at=0.0,
                id=dead_letter_id,
            )
    return rabbit_dead_letter(broker, queue, message, headers, dead_letter_id)


def rabbit_dead_letter(
    broker: AmqpBroker,
    queue: str,
    message: AbstractIncomingMessage,
    headers: Mapping[str, Any],
    dead_letter_id: str,
) -> DeadLetter:
    """A raw message RabbitMQ dead-lettered itself (``x-death``) as a ``DeadLetter``."""

    deaths = headers.get("x-death")
    death: Mapping[str, Any] = deaths[0] if isinstance(deaths, list) and deaths else {}
    rabbit_reason = _text(death.get("reason") or headers.get("x-first-death-reason"))
    reason = RABBIT_REASONS.get(rabbit_reason, Reason.MAX_DELIVERIES)
    deliveries = 0
    if rabbit_reason == "delivery_limit":
        # The queue is declared with x-delivery-limit = MAX_DELIVERIES + 1 (amqp.py), and a
        # quorum queue dead-letters on the return that takes x-delivery-count past it:
        # that is MAX_DELIVERIES + 2 deliveries, plus any before a republish.
        deliveries = broker.options.max_deliveries + 2 + positive_count(headers, DELIVERIES)
    when = death.get("time")
    return DeadLetter(
        body=message.body,
        queue=queue,
        reason=reason,
        error_type="",
        error_message=(
            f"dead-lettered by RabbitMQ ({rabbit_reason or 'unknown reason'}) from "
            f"{_text(death.get('queue')) or 'its queue'}: the workers that took it never "
            "settled it (crashed or killed?)"
        ),
        task_id=_text(headers.get("task_id")),
        task_name=_text(headers.get("task_name")),
        deliveries=deliveries,
        dead_lettered_at=when.timestamp() if isinstance(when, datetime) else 0.0,
        id=dead_letter_id,
    )


def _text(value: object) -> str:
    if value is None:
        return ""
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)
