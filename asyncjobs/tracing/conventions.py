"""Span names and attributes, and the trace context a message carries in its labels.

Names follow the OpenTelemetry messaging semantic conventions: a ``send {queue}`` span
(kind PRODUCER) for every message sent, a ``process {queue}`` span (kind CONSUMER) for
every delivery a worker runs. What is ours is prefixed ``asyncjobs.``. No attribute
carries a task's arguments, its result or a URL.

The W3C ``traceparent``/``tracestate`` and ``baggage`` (whatever the global propagator
writes, see ``OTEL_PROPAGATORS``) travel as message labels; a worker takes them out of
the labels before the task runs, so they never reach the stored result.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from typing import Any

from opentelemetry import propagate
from opentelemetry.context import Context
from opentelemetry.propagators.textmap import TextMapPropagator

from asyncjobs.brokers import envelope

TRACER_NAME = "asyncjobs"

# OpenTelemetry messaging semantic conventions.
MESSAGING_SYSTEM = "messaging.system"  # the transport's name (TransportSpec.name)
OPERATION_TYPE = "messaging.operation.type"  # "send", "process"
OPERATION_NAME = "messaging.operation.name"
DESTINATION = "messaging.destination.name"  # the queue's name in QUEUES
MESSAGE_ID = "messaging.message.id"  # the task id (the same for every attempt)
CONSUMER_GROUP = "messaging.consumer.group.name"
BODY_SIZE = "messaging.message.body.size"
ERROR_TYPE = "error.type"

# Ours.
TASK_NAME = "asyncjobs.task.name"
TASK_ATTEMPT = "asyncjobs.task.attempt"  # 1 on the first run; a retry's send: the next one
DELIVERY_COUNT = "asyncjobs.delivery.count"  # > 1: redelivered (a worker died, a hand-back)
OUTCOME = "asyncjobs.task.outcome"  # succeeded, retried, failed, cut_off
DELAY = "asyncjobs.message.delay_s"  # a send for later: delay=/eta=, or a retry's backoff
SCHEDULE_ID = "asyncjobs.schedule.id"
SCHEDULE_TICK = "asyncjobs.schedule.tick"
DEAD_LETTER_EVENT = "asyncjobs.dead_lettered"
DEAD_LETTER_REASON = "asyncjobs.dead_letter.reason"


_fields_cache: tuple[TextMapPropagator | None, frozenset[str]] = (None, frozenset())


def trace_fields() -> frozenset[str]:
    """The label names the global propagator writes (traceparent, tracestate, baggage)."""
    global _fields_cache
    propagator = propagate.get_global_textmap()
    if _fields_cache[0] is not propagator:
        _fields_cache = (propagator, frozenset(propagator.fields))
    return _fields_cache[1]


def take_trace_context(labels: MutableMapping[str, Any]) -> dict[str, str]:
    """Remove the trace context from ``labels``; return it as a carrier to extract."""
    return {
        key: str(labels.pop(key)) for key in trace_fields() if key in labels
    }  # at most three keys: cheaper than a copy of every label


def without_trace_context(labels: dict[str, Any]) -> dict[str, Any]:
    """``labels`` as stored with a result: without trace context (the same dict if it has
    none, so the common case costs no copy)."""
    fields = trace_fields()
    if not any(key in labels for key in fields):
        return labels
    return {key: value for key, value in labels.items() if key not in fields}


def inject_into(labels: MutableMapping[str, Any], context: Context) -> None:
    """Write ``context`` into ``labels``, replacing any trace context already there (a
    stale ``tracestate`` must not ride along with a new ``traceparent``)."""
    for key in trace_fields():
        labels.pop(key, None)
    propagate.inject(labels, context=context)


def extract_from(carrier: Mapping[str, str]) -> Context:
    """The sender's context (span and baggage); an empty context when it sent none."""
    return propagate.extract(carrier, context=Context()) if carrier else Context()


def error_type(error: BaseException | None) -> str:
    """``error.type``: the exception's class, module-qualified unless it is a builtin."""
    if error is None:
        return "_OTHER"
    kind = type(error)
    if kind.__module__ == "builtins":
        return kind.__qualname__
    return f"{kind.__module__}.{kind.__qualname__}"


def queue_in(labels: Mapping[str, Any], default_queue: str) -> str:
    """The queue a message goes to (not validated: an unknown one fails the send)."""
    return str(labels.get(envelope.QUEUE) or default_queue)
