"""Transports (Redis Streams, RabbitMQ, memory) built on taskiq-redis and taskiq-aio-pika."""

from brokers.base import Delivery, ReliableBroker, TransportOptions
from brokers.dead_letters import DeadLetter, Reason
from brokers.factory import build_broker
from brokers.urls import Transport, redact_url, transport_for

__all__ = [
    "DeadLetter",
    "Delivery",
    "Reason",
    "ReliableBroker",
    "Transport",
    "TransportOptions",
    "build_broker",
    "redact_url",
    "transport_for",
]
