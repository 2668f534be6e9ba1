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

from asyncjobs.brokers.base import ReliableBroker


@dataclass(frozen=True, slots=True)
class QueueStats:
    """What one queue holds right now."""

    queue: str
    transport: str  # the transport's name (TransportSpec.name)
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


async def inspect_queues(broker: ReliableBroker, queues: Sequence[str]) -> list[QueueStats]:
    """The figures of ``queues`` (in that order) on ``broker``'s transport.

    Raises ``UnknownQueueError`` for a queue the broker does not route to,
    ``BrokerConnectionError`` when the broker (or RabbitMQ's management API, from
    ``TransportOptions.management_url``) cannot be reached.
    """
    for queue in queues:
        broker.check_queue(queue)  # UnknownQueueError, naming QUEUES
    # In the loop the client lives in, whichever loop asks (a view's may be a request's).
    return await broker.home.run(broker.inspect(queues))
