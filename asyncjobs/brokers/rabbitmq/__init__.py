"""RabbitMQ transport (on taskiq-aio-pika): quorum queues with confirms, per-delay TTL
queues, dead-letter queues, inspection. Results and schedules need another store (Redis:
``RESULT_BACKEND_URL``, ``SCHEDULE_STORE_URL``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from asyncjobs.brokers.rabbitmq.urls import url_problem
from asyncjobs.brokers.transport import Capabilities, TransportSpec

if TYPE_CHECKING:
    from asyncjobs.brokers.base import ReliableBroker, TransportOptions


def _broker(url: str, options: TransportOptions) -> ReliableBroker:
    from asyncjobs.brokers.rabbitmq.broker import AmqpBroker

    return AmqpBroker(url, options)


def _errors() -> tuple[type[BaseException], ...]:
    from aiormq.exceptions import AMQPError, ChannelInvalidStateError

    return (AMQPError, ChannelInvalidStateError)


def _connection_errors() -> tuple[type[BaseException], ...]:
    from aiormq.exceptions import AMQPConnectionError, ChannelInvalidStateError

    return (AMQPConnectionError, ChannelInvalidStateError)


TRANSPORT = TransportSpec(
    name="rabbitmq",
    capabilities=Capabilities(),
    default_port=5672,
    build_broker=_broker,
    url_problem=url_problem,
    library_errors=_errors,
    connection_errors=_connection_errors,
)
