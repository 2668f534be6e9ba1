"""Transports (Redis Streams, RabbitMQ, memory) built on taskiq-redis and taskiq-aio-pika."""

from asyncjobs.brokers.base import Delivery, ReliableBroker, TransportOptions
from asyncjobs.brokers.dead_letters import DeadLetter, Reason
from asyncjobs.brokers.due import MAX_DELAY_S
from asyncjobs.brokers.factory import build_broker
from asyncjobs.brokers.urls import Transport, check_url, redact_url, scrub, transport_for

__all__ = [
    "MAX_DELAY_S",
    "DeadLetter",
    "Delivery",
    "Reason",
    "ReliableBroker",
    "Transport",
    "TransportOptions",
    "build_broker",
    "check_url",
    "redact_url",
    "scrub",
    "transport_for",
]
