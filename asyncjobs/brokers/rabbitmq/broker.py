"""RabbitMQ transport, on top of taskiq-aio-pika's ``AioPikaBroker``.

What we keep from taskiq-aio-pika: the split into a publishing and a consuming robust
connection (a publisher under flow control never stalls consumption), its exchange
declaration and its message headers (``task_id``, ``task_name``), so a plain
taskiq-aio-pika producer pointed at the same exchange interoperates. What we replace,
and why (each is a weak spot listed in the README):

- one durable quorum queue per configured queue (``{prefix}.{queue}``), each with its own
  dead-letter queue (``{prefix}.{queue}.dead``, taskiq-aio-pika shares one) and a
  delivery limit as a backstop against messages that crash every worker that takes them;
- a worker prefetches exactly its capacity (taskiq-aio-pika prefetches 10 regardless);
- ``publish`` raises when RabbitMQ did not confirm the message or could not route it
  (taskiq-aio-pika lets an unroutable message vanish);
- a dead letter is a full record, confirmed in the dead-letter queue before the original
  is acknowledged;
- settling a delivery whose channel died in a reconnect logs a warning instead of
  crashing the worker: RabbitMQ has already requeued the message;
- connection errors never carry the password;
- delayed messages (``kiq`` with a delay, scheduled retries) wait in per-delay TTL queues
  that dead-letter back into their queue (see ``amqp_delay``; no plugin needed);
- the publishes of one event-loop step go out as one write, each still awaiting its own
  confirm (``publisher``), and the worker's deliveries skip aio-pika's per-message tasks
  and objects (``inbound``): the same frames on the wire, a fraction of the CPU.
"""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from functools import partial
from typing import Any
from urllib.parse import parse_qs, urlsplit

from aio_pika import ExchangeType, RobustConnection, connect_robust
from aio_pika.abc import (
    AbstractChannel,
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustConnection,
)
from aiormq.exceptions import (
    AMQPError,
    ChannelNotFoundEntity,
    ChannelPreconditionFailed,
)
from pamqp.common import FieldTable
from taskiq import AsyncBroker
from taskiq.message import BrokerMessage
from taskiq_aio_pika import AioPikaBroker
from taskiq_aio_pika.exchange import Exchange

from asyncjobs.brokers.base import Delivery, ReliableBroker, TransportOptions
from asyncjobs.brokers.dead_letters import DeadLetter
from asyncjobs.brokers.errors import BrokerConnectionError, BrokerError
from asyncjobs.brokers.inspection import QueueStats
from asyncjobs.brokers.rabbitmq import TRANSPORT
from asyncjobs.brokers.rabbitmq.acks import AckMerger
from asyncjobs.brokers.rabbitmq.dead_letters import DeadLetterQueues
from asyncjobs.brokers.rabbitmq.delay import DeclaredDelayQueues, send_delayed
from asyncjobs.brokers.rabbitmq.delivery import AmqpDelivery, _live
from asyncjobs.brokers.rabbitmq.frames_in import OwnFramesConnection
from asyncjobs.brokers.rabbitmq.inbound import ConsumerChannel, ConsumerConnection, Inbound
from asyncjobs.brokers.rabbitmq.inspection import inspect_amqp
from asyncjobs.brokers.rabbitmq.names import (
    CHANNEL_GONE,
    DELIVERIES,
    QUORUM,
    bounded,
    dead_letter_queue_name,
    queue_name,
)
from asyncjobs.brokers.rabbitmq.publisher import Publisher, send_error
from asyncjobs.brokers.urls import redact_url, scrub

__all__ = ["DELIVERIES", "AmqpBroker", "AmqpDelivery", "dead_letter_queue_name", "queue_name"]


Inbox = asyncio.Queue[tuple[str, Inbound]]


class _AioPikaClient(AioPikaBroker):
    """taskiq-aio-pika's broker minus its startup/shutdown: connect/disconnect own those."""

    async def startup(self) -> None:
        await AsyncBroker.startup(self)

    async def shutdown(self) -> None:
        await AsyncBroker.shutdown(self)


class AmqpBroker(ReliableBroker, _AioPikaClient):
    """A direct exchange ``{prefix}`` routing each queue name to a quorum queue."""

    transport_name = TRANSPORT.name
    capabilities = TRANSPORT.capabilities

    def __init__(
        self,
        url: str,
        options: TransportOptions,
        *,
        connect_timeout_s: float = 10.0,
        publish_timeout_s: float | None = None,
        reconnect_interval_s: float = 2.0,
    ) -> None:
        exchange = Exchange(name=options.key_prefix, type=ExchangeType.DIRECT, durable=True)
        connection_kwargs: dict[str, Any] = {"timeout": connect_timeout_s}
        if "reconnect_interval" not in parse_qs(urlsplit(url).query):  # the URL's wins
            # aio-pika waits 5 s: a worker would idle that long after every blip.
            connection_kwargs["reconnect_interval"] = reconnect_interval_s
        super().__init__(options, url=url, exchange=exchange, **connection_kwargs)
        self.url: str = url
        # How long a publish waits for RabbitMQ's confirm: SEND_TIMEOUT unless given.
        self.send_timeout_s = publish_timeout_s or options.send_timeout_s
        self._capacity = 0  # 0: not set, the first fetch's max_messages is used
        self.delay_queues = DeclaredDelayQueues()
        self.dead = DeadLetterQueues(self)
        self.publisher = Publisher()
        self._reset_consumer_state()

    @property
    def exchange_name(self) -> str:
        return self.options.key_prefix

    def _reset_consumer_state(self) -> None:
        self._inbox: Inbox = asyncio.Queue()
        self.acks = AckMerger()  # per channel: a reconnect starts a new one anyway
        self._consumers: dict[str, tuple[AbstractQueue, str]] = {}
        self._consume_lock: asyncio.Lock | None = None
        self._stopped = False

    # -- connections -------------------------------------------------------------
    async def connect(self) -> None:
        try:
            if self.write_channel is None:
                self.write_conn = await self._open_connection("publisher")
                self.write_channel = await self.write_conn.channel(on_return_raises=True)
                await self._declare_exchanges()
                await self._declare_queues_of(self.write_channel)
            if self.is_worker_process and self.read_channel is None:
                self.read_conn = await self._open_connection("consumer", ConsumerConnection)
                self.read_channel = await self.read_conn.channel(publisher_confirms=False)
                if isinstance(self.read_channel, ConsumerChannel):  # deliveries straight in
                    self.read_channel.start_delivering(self._deliver)
        except BaseException:
            await self._close_all()  # a half-open broker would look connected next time
            raise

    async def _open_connection(
        self, role: str, kind: type[RobustConnection] = OwnFramesConnection
    ) -> AbstractRobustConnection:
        name = f"asyncjobs {role} {socket.gethostname()}:{os.getpid()}"
        try:
            connection: AbstractRobustConnection = await connect_robust(
                self.url,
                client_properties={"connection_name": name},
                connection_class=kind,
                **self._conn_kwargs,
            )
        except (OSError, AMQPError, ValueError) as exc:
            reason = scrub(f"{type(exc).__name__}: {exc}", self.url)
            raise BrokerConnectionError(
                f"cannot connect to RabbitMQ at {redact_url(self.url)} ({reason}); "
                "check BROKER_URL (host, port, user, password, vhost) and that it is running"
            ) from None  # the original may carry the URL
        return connection

    async def _declare_queues_of(self, channel: AbstractChannel) -> None:
        """Declare (idempotently) and bind every configured queue and its dead letters."""
        prefix = self.options.key_prefix
        try:
            for queue in self.options.queues:
                await channel.declare_queue(
                    dead_letter_queue_name(prefix, queue), durable=True, arguments=QUORUM
                )
                declared = await self._declare_queue(channel, queue)
                await declared.bind(self.exchange_name, routing_key=queue)
        except ChannelPreconditionFailed as exc:
            raise BrokerError(
                f"RabbitMQ refused to declare queues under {prefix!r}: {exc}; a queue with "
                "that name exists with other arguments (MAX_DELIVERIES changed?): delete it "
                "once empty, or use another key prefix"
            ) from exc

    async def _declare_queue(self, channel: AbstractChannel, queue: str) -> AbstractQueue:
        prefix = self.options.key_prefix
        arguments: FieldTable = {
            **QUORUM,
            "x-dead-letter-exchange": "",
            "x-dead-letter-routing-key": dead_letter_queue_name(prefix, queue),
            # A backstop only: the worker dead-letters first, with a full record.
            "x-delivery-limit": self.options.max_deliveries + 1,
        }
        return await channel.declare_queue(
            queue_name(prefix, queue), durable=True, arguments=arguments
        )

    async def disconnect(self) -> None:
        try:
            await self.stop_consuming()
            await bounded("hand back prefetched messages", self._hand_back_inbox())
        finally:
            await self._close_all()

    async def _close_all(self) -> None:
        for closable in (self.read_channel, self.read_conn, self.write_channel, self.write_conn):
            if closable is not None:
                await bounded("close", closable.close())
        self._drop_handles()

    async def _hand_back_inbox(self) -> None:
        # Prefetched but never handed to the worker: give them to other workers now
        # rather than when our channel closes.
        while not self._inbox.empty():
            queue, message = self._inbox.get_nowait()
            if _live(message):
                await AmqpDelivery(self, message, queue).release()

    def forget_connections(self) -> None:
        # Objects bound to a dead loop can be neither used nor closed from this one.
        self._drop_handles()
        forget = getattr(self.result_backend, "forget_connections", None)
        if forget is not None:
            forget()

    def _drop_handles(self) -> None:
        self.write_conn = self.read_conn = None
        self.write_channel = self.read_channel = None
        self.delay_queues.forget()
        self.publisher = Publisher()  # its timers belong to the loop of those handles
        self._reset_consumer_state()

    # -- publishing --------------------------------------------------------------
    async def publish(self, queue: str, message: BrokerMessage) -> None:
        headers = {"task_id": message.task_id, "task_name": message.task_name, DELIVERIES: 0}
        await self.send(self.exchange_name, queue, message.message, headers, queue=queue)

    async def publish_at(self, queue: str, message: BrokerMessage, due_unix_s: float) -> None:
        headers = {"task_id": message.task_id, "task_name": message.task_name, DELIVERIES: 0}
        await send_delayed(self, queue, message.message, headers, due_unix_s)

    async def send(
        self,
        exchange: str,
        routing_key: str,
        body: bytes,
        headers: dict[str, Any],
        *,
        message_id: str | None = None,
        queue: str | None = None,
        timeout_s: float | None = None,
    ) -> None:
        """Publish persistently; returns once RabbitMQ confirmed it has the message, within
        ``timeout_s`` (default SEND_TIMEOUT). ``BrokerConnectionError``: nothing was sent
        (no open channel); ``BrokerError``: RabbitMQ refused it (unroutable, nack);
        ``SendOutcomeUnknownError``: written, not confirmed (``queue``: the queue it
        was meant for, in that error; default the routing key)."""
        channel = self.write_channel
        if channel is None:
            raise BrokerError("the RabbitMQ broker is not started: call startup() first")
        if channel.is_closed:  # the robust connection is reconnecting: nothing is written
            raise BrokerConnectionError(
                f"no open channel to publish to {_where(exchange, routing_key, self.url)} "
                "(the connection is down or reconnecting); nothing was sent"
            )
        limit = self.send_timeout_s if timeout_s is None else timeout_s
        try:
            await self.publisher.send(
                channel, exchange, routing_key, body, headers, limit, message_id
            )
        except (TimeoutError, *CHANNEL_GONE) as exc:  # PublishError, DeliveryError too
            where = _where(exchange, routing_key, self.url)
            error = send_error(
                exc, where, str(headers.get("task_id") or "?"), queue or routing_key, limit
            )
            raise error from (None if isinstance(exc, TimeoutError) else exc)

    # -- consuming ---------------------------------------------------------------
    async def set_capacity(self, capacity: int) -> None:
        self._capacity = capacity
        if self._consumers:
            # RabbitMQ applies a per-consumer prefetch to new consumers only (quorum
            # queues have no channel-wide prefetch): subscribe again.
            await self.stop_consuming()
            self._stopped = False
            await self._ensure_consuming(capacity)

    async def fetch(self, max_messages: int, timeout_s: float) -> Sequence[Delivery]:
        received: list[tuple[str, Inbound]] = []
        # No timer while deliveries wait in the inbox: on uvloop one costs ~10 µs of CPU.
        if self._inbox.empty() or not self._consuming_all():
            try:
                async with asyncio.timeout(timeout_s):  # also while RabbitMQ is unreachable
                    await self._ensure_consuming(max_messages)
                    if self._inbox.empty():  # cancelled: what it got stays in the inbox
                        received.append(await self._inbox.get())
            except TimeoutError:
                return []
        while len(received) < max_messages and not self._inbox.empty():
            received.append(self._inbox.get_nowait())
        return [AmqpDelivery(self, message, queue) for queue, message in received if _live(message)]

    def _consuming_all(self) -> bool:
        return self._stopped or len(self._consumers) == len(self.options.listened_queues)

    async def _ensure_consuming(self, max_messages: int) -> None:
        if self._consuming_all():
            return
        self._consume_lock = self._consume_lock or asyncio.Lock()
        async with self._consume_lock:
            channel = self._reader()
            if not self._consumers:
                # Never prefetch more than the worker can start; the robust channel
                # restores prefetch and consumers after a reconnect.
                await channel.set_qos(prefetch_count=self._capacity or max_messages)
            for queue in self.options.listened_queues:
                if queue in self._consumers or self._stopped:
                    continue  # a start cut short by fetch's timeout resumes here
                declared = await self._declare_queue(channel, queue)
                # Routed before RabbitMQ can deliver anything to it (inbound.take_over).
                tag = f"asyncjobs.{queue}.{uuid.uuid4().hex[:12]}"
                if isinstance(channel, ConsumerChannel):
                    channel.routes[tag] = queue
                await declared.consume(partial(self._on_message, queue), consumer_tag=tag)
                self._consumers[queue] = (declared, tag)

    async def _on_message(self, queue: str, message: AbstractIncomingMessage) -> None:
        # aio-pika's callback: used only where the channel was not taken over.
        self._deliver(queue, message)

    def _deliver(self, queue: str, message: Inbound) -> None:
        self.acks.delivered(message)  # before anything can ack it
        self._inbox.put_nowait((queue, message))

    def _reader(self) -> AbstractChannel:
        if self.read_channel is None:
            raise BrokerError(
                "this RabbitMQ broker does not consume: set is_worker_process and start it"
            )
        return self.read_channel

    async def stop_consuming(self) -> None:
        self._stopped = True
        consumers, self._consumers = self._consumers, {}
        if not consumers or self.read_channel is None or self.read_channel.is_closed:
            # Nothing to cancel on a dead channel (a cancel would wait for the reconnect);
            # what a restored consumer might still prefetch, disconnect() hands back.
            return
        cancels = [declared.cancel(tag) for declared, tag in consumers.values()]
        await bounded("cancel consumers", asyncio.gather(*cancels))

    # -- the port's facts -----------------------------------------------------------
    async def inspect(self, queues: Sequence[str]) -> list[QueueStats]:
        """Over AMQP, or from the management API with ``options.management_url``."""
        return await inspect_amqp(self, queues, management_url=self.options.management_url)

    def consumer_group(self, queue: str) -> str | None:
        """The queue the workers compete on."""
        return queue_name(self.options.key_prefix, queue)

    # -- dead letters (brokers.rabbitmq.dead_letters) ------------------------------
    async def dead_letters(self, queue: str, limit: int = 100) -> list[DeadLetter]:
        return await self.dead.dead_letters(queue, limit)

    async def dead_letter_count(self, queue: str) -> int:
        return await self.dead.dead_letter_count(queue)

    def dead_letter_snapshot(
        self, queue: str, page_size: int = 500
    ) -> AsyncIterator[list[DeadLetter]]:
        return self.dead.dead_letter_snapshot(queue, page_size)

    async def replay_dead_letters(self, queue: str, bodies: Mapping[str, bytes]) -> set[str]:
        return await self.dead.replay_dead_letters(queue, bodies)

    async def delete_dead_letter(self, queue: str, dead_letter_id: str) -> None:
        await self.dead.delete_dead_letter(queue, dead_letter_id)

    async def purge_dead_letters(self, queue: str) -> int:
        return await self.dead.purge_dead_letters(queue)

    # -- inspection --------------------------------------------------------------
    async def queue_depths(self) -> dict[str, tuple[int, int]]:
        """(ready messages, consumers) of each configured queue."""
        await self.ensure_started()
        prefix = self.options.key_prefix
        return {q: await self.declared_counts(queue_name(prefix, q)) for q in self.options.queues}

    async def declared_counts(self, name: str) -> tuple[int, int]:
        """(ready messages, consumers) of the RabbitMQ queue ``name`` (a passive declare);
        (0, 0) when it does not exist. Call ``ensure_started()`` first."""
        assert self.write_conn is not None  # ensure_started connected
        # A channel of its own: a passive declare of a missing queue closes it.
        channel = await self.write_conn.channel(publisher_confirms=False)
        try:
            declared = await channel.declare_queue(name, passive=True)
        except ChannelNotFoundEntity:
            return 0, 0
        finally:
            await bounded("close", channel.close())
        result = declared.declaration_result
        return result.message_count or 0, result.consumer_count or 0


def _where(exchange: str, routing_key: str, url: str) -> str:
    """Where a send went, for its error (built only then: redacting costs)."""
    return f"{exchange or '(default)'!r}/{routing_key!r} at {redact_url(url)}"
