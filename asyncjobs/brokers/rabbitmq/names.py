"""What the RabbitMQ transport calls things (queues, headers), and the errors a closed
channel raises; shared by its modules."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Mapping
from typing import Any

from aiormq.exceptions import AMQPError, ChannelInvalidStateError
from pamqp.common import FieldTable

logger = logging.getLogger("asyncjobs.broker")

CLOSE_TIMEOUT_S = 5.0

DELIVERIES = "x-asyncjobs-deliveries"  # deliveries before this message was (re)published
TASK_HEADERS = ("task_id", "task_name")  # taskiq-aio-pika's
RABBIT_DELIVERIES = "x-delivery-count"  # set by quorum queues on each redelivery
SUSPECT = "x-asyncjobs-suspect"  # a crash suspect given back unstarted stays one
QUORUM: FieldTable = {"x-queue-type": "quorum"}
# Raised by settling on a channel that closed (reconnect, broker restart).
CHANNEL_GONE = (ChannelInvalidStateError, AMQPError, ConnectionError)


def queue_name(prefix: str, queue: str) -> str:
    return f"{prefix}.{queue}"


def dead_letter_queue_name(prefix: str, queue: str) -> str:
    return f"{prefix}.{queue}.dead"


def positive_count(headers: Mapping[str, Any], key: str) -> int:
    """A count RabbitMQ itself keeps (``x-delivery-count``): 0 unless a positive int."""
    value = headers.get(key, 0)
    return value if isinstance(value, int) and value > 0 else 0


async def bounded(what: str, awaitable: Awaitable[Any]) -> None:
    """Await a clean-up step for at most CLOSE_TIMEOUT_S; shutting down must not hang."""
    try:
        await asyncio.wait_for(awaitable, CLOSE_TIMEOUT_S)
    except (TimeoutError, *CHANNEL_GONE) as exc:
        logger.warning("RabbitMQ: %s failed (%s); continuing", what, type(exc).__name__)
