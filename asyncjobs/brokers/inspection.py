"""Per-queue figures for ``asyncjobs inspect``, the health view and autoscaling.

One ``QueueStats`` per configured queue, the same fields on both transports. A figure
the transport cannot know is ``None`` (shown as ``?``), never a guess, and ``notes``
says why. ``backlog`` is the number an autoscaler (KEDA) scales the workers on; each
transport's module says which KEDA trigger reads exactly that number:

- Redis Streams (``asyncjobs.brokers.redis.inspection``): the consumer group's ``lag`` plus its
  ``pending`` count, which is the stream's ``XLEN`` because acknowledged entries are
  deleted: KEDA's ``redis-streams`` trigger with ``streamLength`` (no ``consumerGroup``).
- RabbitMQ (``asyncjobs.brokers.rabbitmq.inspection``): ready + unacknowledged
  messages of the queue, what KEDA's ``rabbitmq`` trigger reads with ``mode: QueueLength`` and
  ``protocol: http`` (the management API). Without ``AMQP_MANAGEMENT_URL`` only the
  ready count is known, which is what the trigger reads with ``protocol: amqp``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from taskiq import AsyncBroker

from asyncjobs.brokers.base import QUEUE_LABEL, ReliableBroker
from asyncjobs.brokers.errors import BrokerError


@dataclass(frozen=True, slots=True)
class QueueStats:
    """What one queue holds right now."""

    queue: str
    transport: str  # "redis" or "rabbitmq"
    waiting: int  # not yet delivered to any consumer
    in_flight: int | None  # delivered, not yet acknowledged (None: unknown)
    scheduled: int | None  # delayed messages and retries not due yet (None: unknown)
    dead_letters: int  # in the queue's dead-letter queue
    oldest_waiting_age_s: float | None  # None: nothing waiting, or unknown
    consumers: int
    backlog: int  # what KEDA scales on (see the module docstring)
    notes: tuple[str, ...] = ()  # why a figure is unknown or approximate

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready (unknown figures are ``null``)."""
        data = asdict(self)
        data["notes"] = list(self.notes)
        return data


async def inspect_queues(
    broker: AsyncBroker, queues: Sequence[str], *, management_url: str | None = None
) -> list[QueueStats]:
    """The figures of ``queues`` (in that order) on ``broker``'s transport.

    ``management_url`` is RabbitMQ's management API (``AMQP_MANAGEMENT_URL``); Redis
    ignores it. Raises ``UnknownQueueError`` for a queue the broker does not route to,
    ``BrokerConnectionError`` when the broker (or the management API) cannot be reached,
    ``BrokerError`` for a transport that keeps no queues (``memory://``).
    """
    if not isinstance(broker, ReliableBroker):
        raise BrokerError(
            f"{type(broker).__name__} keeps no queues to inspect (memory:// runs tasks inline)"
        )
    for queue in queues:
        broker.queue_of({QUEUE_LABEL: queue})  # UnknownQueueError, naming QUEUES
    # Imported here: a Redis deployment need not import aio-pika, nor the reverse.
    if broker.transport_name == "redis":
        from asyncjobs.brokers.redis.broker import RedisStreamsBroker
        from asyncjobs.brokers.redis.inspection import inspect_redis

        assert isinstance(broker, RedisStreamsBroker)
        return await inspect_redis(broker, queues)
    if broker.transport_name == "rabbitmq":
        from asyncjobs.brokers.rabbitmq.broker import AmqpBroker
        from asyncjobs.brokers.rabbitmq.inspection import inspect_amqp

        assert isinstance(broker, AmqpBroker)
        return await inspect_amqp(broker, queues, management_url=management_url)
    raise BrokerError(f"cannot inspect the queues of transport {broker.transport_name!r}")
