"""The contract every asyncjobs transport implements.

A worker asks for at most as many messages as it can start (``fetch``), and settles each
``Delivery`` exactly once: ``ack`` after the task finished, ``dead_letter`` for a message
that must never run again, ``hand_back`` for one it will not run (drain) so another worker
can take it at once. A delivery that is never settled (the worker died) is redelivered by
the transport.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from taskiq import AckableMessage, AsyncBroker
from taskiq.message import BrokerMessage

from asyncjobs.brokers.dead_letter_port import DeadLetterQueues
from asyncjobs.brokers.dead_letters import DeadLetter, Reason
from asyncjobs.brokers.envelope import QUEUE, due_of
from asyncjobs.brokers.errors import ConfigurationError, UnknownQueueError
from asyncjobs.brokers.home import ClientHome
from asyncjobs.brokers.locating import LOCATE_SCAN, Located
from asyncjobs.brokers.transport import Capabilities

if TYPE_CHECKING:
    from asyncjobs.brokers.background import BackgroundLoop
    from asyncjobs.brokers.inspection import QueueStats

logger = logging.getLogger("asyncjobs.broker")


def process_name() -> str:
    """This process, stable and meaningful in a broker's client lists and a scheduler's
    claims: a Kubernetes pod's name (the host name) and the pid."""
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass(frozen=True, slots=True)
class TransportOptions:
    """Transport settings, already validated by the kernel's config."""

    queues: tuple[str, ...] = ("default",)
    default_queue: str = "default"
    consume_queues: tuple[str, ...] = ()  # empty: consume every queue
    lease_timeout_s: float = 15.0
    max_deliveries: int = 5
    key_prefix: str = "asyncjobs"
    send_timeout_s: float = 10.0  # kiq(): no confirmation by then is an unknown outcome
    # An HTTP endpoint a transport may read figures from (RabbitMQ's management API).
    management_url: str | None = None

    @property
    def listened_queues(self) -> tuple[str, ...]:
        return self.consume_queues or self.queues


@dataclass(frozen=True, slots=True)
class Defect:
    """Why a transport will not let a delivery run: its envelope (not its body) is bad,
    e.g. a stream field ``deliveries`` that is not a count. Such a message is
    dead-lettered with ``reason``, never run and never dropped."""

    reason: Reason
    detail: str


class Delivery(ABC):
    """One received message, to be settled exactly once.

    A delivery counts as settled only once its transport confirmed the settlement: one
    that failed (the dead-letter record could not be written, the broker went away)
    leaves the delivery open, so the worker can hand it back; one the worker cannot
    settle at all it ``abandon``s, and the transport then redelivers it (Redis: when
    the lease expires; RabbitMQ: when the channel closes). Concurrent settlements: the
    first wins, the others do nothing.
    """

    __slots__ = (
        "_state",
        "data",
        "defect",
        "delivery_count",
        "enqueued_at",
        "queue",
        "suspect",
    )

    def __init__(
        self,
        data: bytes,
        queue: str,
        delivery_count: int,
        enqueued_at: float | None = None,
        *,
        suspect: bool | None = None,
        defect: Defect | None = None,
    ) -> None:
        self.data = data
        self.queue = queue
        self.delivery_count = delivery_count  # 1 on the first delivery
        # When this message became deliverable in its queue (unix seconds): sent, or due
        # after a delay; None when the transport cannot tell. Redis: the stream entry's id
        # (Redis's clock, 1 ms); RabbitMQ: the AMQP timestamp, or when the delay queue
        # dead-lettered it (whole seconds: AMQP timestamps have no fraction).
        self.enqueued_at = enqueued_at
        # A crash suspect: its last delivery ended without a live worker settling it (the
        # worker died, or lost its connection), so it may be what killed that worker. A
        # message handed back by a draining worker has a count > 1 but is no suspect.
        self.suspect = delivery_count > 1 if suspect is None else suspect
        self.defect = defect
        self._state = _OPEN

    @property
    def settled(self) -> bool:
        """A settlement completed: the broker has the outcome."""
        return self._state is _SETTLED

    @property
    def closed(self) -> bool:
        """No longer this worker's to run or to keep leased: settled, being settled, or
        abandoned."""
        return self._state is not _OPEN

    def abandon(self) -> None:
        """Give up on settling (the broker is unreachable): stop keeping the message
        leased, so the transport redelivers it."""
        if self._state is _OPEN:
            self._state = _ABANDONED
            self._forget()

    async def ack(self) -> None:
        await self._settle_by(self._ack)

    async def dead_letter(self, record: DeadLetter) -> None:
        # Encoded before the delivery counts as being settled: a record that cannot be
        # written must leave the message to be handed back, not leased forever.
        payload = record.to_json()
        await self._settle_by(self._dead_letter, record, payload)

    async def hand_back(self) -> None:
        await self._settle_by(self._hand_back)

    async def release(self) -> None:
        """Give back a delivery that was never started, without counting it as one."""
        await self._settle_by(self._release)

    async def republish(self, body: bytes) -> None:
        """Atomically replace this delivery by a new message (a retry) in the same queue."""
        await self._settle_by(self._republish, body)

    async def retry_at(self, body: bytes, due_unix_s: float) -> None:
        """Atomically replace this delivery by ``body``, delivered to the same queue no
        earlier than ``due_unix_s`` (a scheduled retry; its delivery count starts again).
        A crash in between duplicates, never loses. A time already past republishes."""
        if due_unix_s <= time.time():
            await self._settle_by(self._republish, body)
        else:
            await self._settle_by(self._retry_at, body, due_unix_s)

    async def _settle_by(self, settle: Callable[..., Awaitable[None]], *args: Any) -> None:
        if self._state is not _OPEN:
            return
        self._state = _SETTLING
        try:
            await settle(*args)
        except BaseException:
            self._state = _OPEN  # still ours: the worker hands it back or abandons it
            raise
        self._state = _SETTLED
        self._forget()

    def _forget(self) -> None:  # noqa: B027 - a hook; most transports keep no state
        """Stop keeping this delivery (Redis: stop renewing its lease)."""

    @abstractmethod
    async def _ack(self) -> None: ...

    @abstractmethod
    async def _dead_letter(self, record: DeadLetter, payload: bytes) -> None:
        """Move the message to its dead letters as ``payload`` (``record.to_json()``)."""

    @abstractmethod
    async def _hand_back(self) -> None: ...

    @abstractmethod
    async def _republish(self, body: bytes) -> None: ...

    @abstractmethod
    async def _retry_at(self, body: bytes, due_unix_s: float) -> None: ...

    async def _release(self) -> None:
        # Transports that cannot preserve the count hand back (conservative: it counts).
        await self._hand_back()


_OPEN, _SETTLING, _SETTLED, _ABANDONED = "open", "settling", "settled", "abandoned"


class ReliableBroker(DeadLetterQueues, AsyncBroker, ABC):
    """A taskiq broker with at-least-once settlement and a lazily started client side.

    Web processes never call ``startup()`` themselves (Django's ASGI handler has no
    lifespan): the first ``kick`` in an event loop starts the client, exactly once even
    under concurrent first calls, and a new event loop (``asyncio.run`` in a shell) gets
    a fresh client.
    """

    transport_name: ClassVar[str] = "abstract"  # its TransportSpec's name
    capabilities: ClassVar[Capabilities] = Capabilities()

    def __init__(self, options: TransportOptions, **transport_kwargs: Any) -> None:
        # Cooperative: the rest goes to the upstream broker class (taskiq-redis, aio-pika).
        super().__init__(**transport_kwargs)
        self.options = options
        self._started_loop: asyncio.AbstractEventLoop | None = None
        self._start_lock: asyncio.Lock | None = None
        self._lock_loop: asyncio.AbstractEventLoop | None = None
        # Set by the asyncjobs receiver: taskiq's stock receiver acks and drops bad
        # messages, so a worker must not run this broker without ours.
        self.receiver_attached = False
        self._base_started = False
        # The loop the client side lives in; sends from other loops and threads go there.
        self.home = ClientHome(self)

    # -- routing -----------------------------------------------------------------
    def queue_of(self, labels: Mapping[str, Any]) -> str:
        """The queue a message with these labels goes to."""
        return self.check_queue(labels.get(QUEUE) or self.options.default_queue)

    def check_queue(self, queue: Any) -> str:
        """``queue`` if it is one of ``QUEUES``; else ``UnknownQueueError`` naming them."""
        if queue not in self.options.queues:
            raise UnknownQueueError(
                f"queue {queue!r} is not configured; QUEUES is {list(self.options.queues)}"
            )
        return str(queue)

    # -- lifecycle ---------------------------------------------------------------
    async def startup(self) -> None:
        """Start the client side in the running loop, which holds it from now on (a
        worker's, a scheduler's): sends from other loops and threads come here."""
        if self.is_worker_process and not self.receiver_attached:
            raise ConfigurationError(
                "this worker runs an asyncjobs broker with a receiver that is not asyncjobs': "
                "start it as `taskiq worker asyncjobs.django.worker:broker` without --receiver"
            )
        await self.home.claim()  # a no-op in the home itself (the lazy start)
        if not self._base_started:  # events, middlewares, result backend: once
            await super().startup()
            self._base_started = True
        await self.connect()
        self._started_loop = asyncio.get_running_loop()

    async def shutdown(self) -> None:
        # From whatever loop: the connections are closed in the loop that opened them,
        # then asyncjobs' own loop, if it held them, ends (a later send starts another).
        await self.home.run_where_it_lives(self._shutdown_here())
        self.home.stop()

    async def _shutdown_here(self) -> None:
        started = self._started_loop
        try:
            if started is None or started is asyncio.get_running_loop():
                await self.disconnect()
            else:  # opened by a loop that has ended: they can be neither used nor closed
                self.forget_client()
        finally:
            self._started_loop = None
            self._base_started = False
            await super().shutdown()

    @property
    def started(self) -> bool:
        return self._started_loop is not None

    async def ensure_started(self) -> None:
        """Start the client side once, lazily (a web process's), in the loop it lives in
        (see ``ClientHome``): never in a caller's loop that may end with its request."""
        await self.home.run(self._ensure_started_here())

    async def _ensure_started_here(self) -> None:
        loop = asyncio.get_running_loop()
        if self._started_loop is loop:
            return
        if self._lock_loop is not loop or self._start_lock is None:
            self._start_lock, self._lock_loop = asyncio.Lock(), loop
        async with self._start_lock:
            if self._started_loop is loop:
                return
            if self._started_loop is not None:
                # The loop it was started in is gone: its connections can be neither
                # used nor awaited from here.
                self.forget_connections()
                self._base_started = False
            await self.startup()  # a transport's own (its errors); the claim is a no-op here

    async def kick(self, message: BrokerMessage) -> None:
        queue = self.queue_of(message.labels)  # UnknownQueueError before connecting
        due = due_of(message.labels)
        await self.home.run(self._kick_here(queue, message, due))

    async def _kick_here(self, queue: str, message: BrokerMessage, due: float | None) -> None:
        await self._ensure_started_here()
        if due is None or due <= time.time():
            await self.publish(queue, message)
        else:
            await self.publish_at(queue, message, due)

    async def listen(self) -> AsyncGenerator[AckableMessage, None]:
        """taskiq's generator interface, for tools that use it; workers use ``fetch``."""
        while True:
            for delivery in await self.fetch(1, timeout_s=1.0):
                yield AckableMessage(data=delivery.data, ack=delivery.ack)

    def client_state(self) -> list[dict[str, Any]]:
        """References to everything the client holds now (a forked child keeps them)."""
        return [dict(vars(self)), dict(vars(self.result_backend))]

    def forget_client(self) -> None:
        """The client side's loop is gone (or this is a forked child): start afresh."""
        self.forget_connections()
        self._started_loop = None
        self._base_started = False

    # -- what a transport implements ---------------------------------------------
    @abstractmethod
    async def connect(self) -> None:
        """Open connections and declare queues/streams (idempotent)."""

    @abstractmethod
    async def disconnect(self) -> None:
        """Close connections; a worker hands back what it still holds first."""

    @abstractmethod
    def forget_connections(self) -> None:
        """Drop connections bound to an event loop that no longer runs."""

    @abstractmethod
    async def publish(self, queue: str, message: BrokerMessage) -> None:
        """Durably enqueue: when this returns, the broker has the message."""

    @abstractmethod
    async def publish_at(self, queue: str, message: BrokerMessage, due_unix_s: float) -> None:
        """Durably enqueue for delivery no earlier than ``due_unix_s`` (and soon after:
        within ~0.2 s on Redis, a few % of the delay on RabbitMQ)."""

    @abstractmethod
    async def fetch(self, max_messages: int, timeout_s: float) -> Sequence[Delivery]:
        """Up to ``max_messages`` deliveries; an empty list after ``timeout_s`` idle."""

    def make_due(self) -> int:
        """Make every delayed message due now; how many (``asyncjobs.testing`` runs a
        test's pending tasks without waiting). Only a transport whose queues live in
        this process can (``Capabilities.shared`` False)."""
        raise ConfigurationError(
            f"{self.transport_name}:// cannot make delayed messages due from a client"
        )

    @abstractmethod
    async def inspect(self, queues: Sequence[str]) -> list[QueueStats]:
        """The figures of ``queues`` (names from ``QUEUES``, in that order): what the
        transport knows, ``None`` where it cannot tell (``QueueStats`` says which).
        Raises ``BrokerConnectionError`` when it cannot be reached."""

    async def locate(self, queue: str, task_id: str, scan: int = LOCATE_SCAN) -> Located | None:
        """A message of task ``task_id`` in ``queue``, among at most ``scan`` waiting (or
        running) and ``scan`` scheduled ones; None when none is found, or the transport
        cannot look (``Capabilities.locates`` False: this default)."""
        return None

    def consumer_group(self, queue: str) -> str | None:
        """The name the workers of ``queue`` share (``messaging.consumer.group.name``)."""
        return None

    def promoter(self, queues: Sequence[str]) -> BackgroundLoop | None:
        """The background work a process that is no worker must run for the delayed
        messages of ``queues`` to become due (the scheduler runs it): None when the
        transport needs none (``Capabilities.needs_promoter``)."""
        return None

    async def set_capacity(self, capacity: int) -> None:
        """How many deliveries the worker can run at once (push transports prefetch this)."""

    async def stop_consuming(self) -> None:
        """Stop new deliveries from arriving (drain); pull transports need nothing."""
