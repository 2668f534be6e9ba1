"""The sender's side: a ``send {queue}`` span around every ``kiq()``.

``SendTracing`` is a set of send hooks (``asyncjobs.hooks``), which every kicker on our
broker reaches (``fn.kiq()``, ``fn.kicker()...kiq()``, the scheduler, a plain taskiq
``AsyncKicker``). ``on_send`` starts the span as a child of the current span (the HTTP
request's, a running task's) and writes its context into the message's labels;
``on_sent`` ends it; ``on_send_error`` (asyncjobs' kicker reports failures, which taskiq
does not) ends it with status ERROR.

Unlike taskiq's ``OpenTelemetryMiddleware`` this never makes the send span the current
span (attached in ``pre_send``, taskiq's stays attached for good when the send fails,
and every later span of the caller nests under a dead send), and it starts a new trace
for a scheduled firing (labels ``schedule_id``) rather than joining whatever ran before.
"""

from __future__ import annotations

import time
from contextvars import ContextVar

from opentelemetry import trace
from opentelemetry.context import Context, get_current
from opentelemetry.trace import Span, TracerProvider
from taskiq import TaskiqMessage

from asyncjobs.brokers import envelope
from asyncjobs.brokers.errors import ConfigurationError
from asyncjobs.hooks import Hooks
from asyncjobs.tracing import conventions as c
from asyncjobs.tracing.spans import (
    RecordingCheck,
    mark_failed,
    send_failure,
    start_send,
    tracer_for,
)

# Send spans between on_send and on_sent/on_send_error, innermost last. All three run
# in the caller's context (taskiq calls them from kiq(), in the caller's task), so sends
# from different tasks never see each other's; a tuple, so that a task started meanwhile
# (which copies the context) cannot change the caller's. More than one: a send inside a
# send (a send hook that sends).
_sending: ContextVar[tuple[tuple[str, Span], ...]] = ContextVar("asyncjobs_sending", default=())
MAX_PENDING = 32  # sends through a plain taskiq kicker that failed are never reported


class SendTracing(Hooks):
    """``send {queue}`` spans; see the module docstring."""

    def __init__(
        self,
        system: str,
        default_queue: str = "default",
        tracer_provider: TracerProvider | None = None,
    ) -> None:
        self._tracer = tracer_for(tracer_provider)
        self._sampled_out = RecordingCheck(tracer_provider)
        self._system = system
        self._default_queue = default_queue

    async def on_send(self, message: TaskiqMessage) -> None:
        labels = message.labels
        extra: dict[str, str] = {}
        context: Context | None = None
        schedule = labels.get(envelope.SCHEDULE_ID)
        if self._sampled_out.never():  # no span: only pass the context (and baggage) on
            current = Context() if schedule else get_current()
            if current or not c.trace_fields().isdisjoint(labels):
                c.inject_into(labels, current)
            return
        if schedule:
            # A scheduled firing starts a trace of its own, whatever ran before it.
            context = Context()
            extra[c.SCHEDULE_ID] = str(schedule)
            if labels.get(envelope.SCHEDULE_TICK):
                extra[c.SCHEDULE_TICK] = str(labels[envelope.SCHEDULE_TICK])
        span = start_send(
            self._tracer,
            system=self._system,
            queue=c.queue_in(labels, self._default_queue),
            task_id=message.task_id,
            task_name=message.task_name,
            attempt=envelope.attempt_of(labels),
            context=context,
            delay_s=_delay_s(labels),
            extra=extra,
        )
        c.inject_into(labels, trace.set_span_in_context(span, context))
        pending = _sending.get()
        if len(pending) >= MAX_PENDING:
            # The oldest never heard back: a plain taskiq kicker's send that failed.
            (_, lost), *rest = pending
            mark_failed(lost, None, kind="send_incomplete", description="the send failed")
            lost.end()
            pending = tuple(rest)
        _sending.set((*pending, (message.task_id, span)))

    async def on_sent(self, message: TaskiqMessage) -> None:
        span = self._pop(message.task_id)
        if span is not None:
            span.end()

    async def on_send_error(self, task_id: str | None, error: BaseException) -> None:
        span = self._pop(task_id) if task_id is not None else None
        if span is not None:
            mark_failed(span, send_failure(error))
            span.end()

    def _pop(self, task_id: str) -> Span | None:
        pending = _sending.get()
        for index in range(len(pending) - 1, -1, -1):
            if pending[index][0] == task_id:
                _sending.set(pending[:index] + pending[index + 1 :])
                return pending[index][1]
        return None


def _delay_s(labels: dict[str, object]) -> float | None:
    try:
        due = envelope.due_of(labels)
    except ConfigurationError:
        return None  # the send itself refuses the label
    return None if due is None else due - time.time()
