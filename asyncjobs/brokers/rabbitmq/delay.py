"""Delayed delivery for RabbitMQ without the delayed-message plugin: TTL queues.

A message due in ``d`` ms is published (confirmed) to ``{prefix}.{queue}.delay.{D}``, a
durable quorum queue without consumers whose messages all live ``D`` ms
(``x-message-ttl``) and then dead-letter to the main exchange with the routing key
``{queue}``, i.e. back into the queue they were meant for. Every message of one delay
queue has the same TTL, so expiry follows queue order: no message waits behind a longer
one (the head-of-line blocking of per-message TTLs).

- ``D`` is ``d`` rounded *up* (never early) to two significant digits, at least 100 ms:
  2 s -> 2000, 2345 ms -> 2400, 23 456 ms -> 24 000. Lateness is below 10 % of the delay
  (100 ms under 1 s) and a queue has at most ~90 delay queues per decade of delays.
- Dead-lettering is ``at-least-once`` (quorum queues, RabbitMQ >= 3.10; needs
  ``x-overflow: reject-publish``): RabbitMQ keeps the message until the main queue
  confirmed it, so a broker restart in between cannot lose it.
- ``x-expires`` removes a delay queue nobody declared for a while. RabbitMQ counts a
  queue without consumers as unused *even when it holds messages*, so the expiry is the
  TTL plus twice ``REDECLARE_EVERY_S``, and a publisher declares again (idempotent) at
  least every ``REDECLARE_EVERY_S`` before publishing to it.
"""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING, Any

from pamqp.common import FieldTable

from asyncjobs.brokers.errors import BrokerConnectionError, BrokerError

if TYPE_CHECKING:
    from asyncjobs.brokers.rabbitmq.broker import AmqpBroker

MIN_BUCKET_MS = 100
REDECLARE_EVERY_S = 60.0


def delay_bucket_ms(delay_s: float) -> int:
    """The TTL for a delay of ``delay_s``: rounded up to two significant digits."""
    ms = max(1, math.ceil(delay_s * 1000))
    step = max(MIN_BUCKET_MS, 10 ** max(0, len(str(ms)) - 2))
    return int(-(-ms // step) * step)


def delay_queue_name(prefix: str, queue: str, bucket_ms: int) -> str:
    return f"{prefix}.{queue}.delay.{bucket_ms}"


def delay_queue_arguments(exchange: str, queue: str, bucket_ms: int) -> FieldTable:
    return {
        "x-queue-type": "quorum",
        "x-message-ttl": bucket_ms,
        "x-dead-letter-exchange": exchange,
        "x-dead-letter-routing-key": queue,
        "x-dead-letter-strategy": "at-least-once",
        "x-overflow": "reject-publish",
        "x-expires": bucket_ms + int(2 * REDECLARE_EVERY_S * 1000),
    }


class DeclaredDelayQueues:
    """Which delay queues this process declared, and when (to declare them again)."""

    def __init__(self) -> None:
        self._declared_at: dict[str, float] = {}
        self._seen: set[str] = set()  # every one ever declared here (tests clean up)

    def needs_declare(self, name: str) -> bool:
        at = self._declared_at.get(name)
        return at is None or time.monotonic() - at > REDECLARE_EVERY_S

    def declared(self, name: str) -> None:
        self._declared_at[name] = time.monotonic()
        self._seen.add(name)

    def forget(self, name: str | None = None) -> None:
        if name is None:
            self._declared_at.clear()
        else:
            self._declared_at.pop(name, None)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(sorted(self._seen))


async def send_delayed(
    broker: AmqpBroker, queue: str, body: bytes, headers: dict[str, Any], due_unix_s: float
) -> None:
    """Publish ``body`` (confirmed) so that it reaches ``queue`` at ``due_unix_s`` or just
    after; at once when that is not in the future. Declaring and publishing share one
    deadline, ``broker.send_timeout_s`` from now."""
    delay_s = due_unix_s - time.time()
    if delay_s <= 0:
        await broker.send(broker.exchange_name, queue, body, headers, queue=queue)
        return
    bucket = delay_bucket_ms(delay_s)
    name = delay_queue_name(broker.options.key_prefix, queue, bucket)
    deadline = time.monotonic() + broker.send_timeout_s
    for last_try in (False, True):
        if broker.delay_queues.needs_declare(name):
            await _declare(broker, name, queue, bucket, deadline)
        try:
            left = max(deadline - time.monotonic(), 0.001)
            await broker.send("", name, body, headers, queue=queue, timeout_s=left)
            return
        except BrokerError as exc:
            # Unroutable: the delay queue expired or was deleted since we declared it.
            if last_try or "could not route" not in str(exc):
                raise
            broker.delay_queues.forget(name)


async def _declare(broker: AmqpBroker, name: str, queue: str, bucket: int, deadline: float) -> None:
    if broker.write_channel is None:
        raise BrokerError("the RabbitMQ broker is not started: call startup() first")
    arguments = delay_queue_arguments(broker.exchange_name, queue, bucket)
    try:
        await broker.write_channel.declare_queue(
            name, durable=True, arguments=arguments, timeout=max(deadline - time.monotonic(), 0.001)
        )
    except TimeoutError:
        raise BrokerConnectionError(
            f"RabbitMQ did not declare the delay queue {name!r} within "
            f"{broker.send_timeout_s:g} s; nothing was sent"
        ) from None
    broker.delay_queues.declared(name)
