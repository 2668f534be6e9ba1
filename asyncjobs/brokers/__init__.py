"""Transports: the port every transport implements (``base``, ``stores``, ``transport``),
the vocabulary they share (``envelope``, ``dead_letters``, ``errors``, ``urls``), and one
folder per transport (``redis``, ``rabbitmq``, ``memory``), found by URL scheme."""

from asyncjobs.brokers.base import Delivery, ReliableBroker, TransportOptions
from asyncjobs.brokers.dead_letters import DeadLetter, Reason
from asyncjobs.brokers.envelope import MAX_DELAY_S, Envelope
from asyncjobs.brokers.factory import build_broker
from asyncjobs.brokers.stores import ResultStore, ScheduleStorage
from asyncjobs.brokers.transport import Capabilities, TransportSpec, check_url, transport_for
from asyncjobs.brokers.urls import redact_url, scrub

__all__ = [
    "MAX_DELAY_S",
    "Capabilities",
    "DeadLetter",
    "Delivery",
    "Envelope",
    "Reason",
    "ReliableBroker",
    "ResultStore",
    "ScheduleStorage",
    "TransportOptions",
    "TransportSpec",
    "build_broker",
    "check_url",
    "redact_url",
    "scrub",
    "transport_for",
]
