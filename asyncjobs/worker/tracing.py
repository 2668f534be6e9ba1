"""The worker's side of tracing: a ``process {queue}`` span per delivery it runs.

``RunTracing`` follows the worker's hooks. In ``before_run`` it takes the
sender's trace context out of the message's labels (so it never reaches the stored
result), starts a CONSUMER span as a child of the ``send`` span (or, with
``LINK_TO_PRODUCER``, as the root of a new trace linked to it) and makes it the current
span of the message's asyncio task: spans the task creates are its children, also in a
sync task (taskiq runs it in a copy of the context). A failed attempt sets status ERROR
and ``error.type`` and, when it is retried, starts the retry's ``send`` span, whose
context goes into the retry's labels: every attempt is a new ``process`` span in the same
trace. The span ends once the message is settled (acked, retried, dead-lettered or
handed back), with ``asyncjobs.task.outcome``; a dead letter is an event on it. A message
dead-lettered without running (undecodable, unknown task, invalid arguments, too many
deliveries) gets a short ERROR ``process`` span of its own, in its sender's trace.

All hooks run in the message's own asyncio task (the receiver runs each message in one),
so the context attached in ``before_run`` is detached in ``after_run`` in the same
task; a message whose settling raised never reaches ``after_run``, and its spans are
ended when its task is done.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextvars import Token
from dataclasses import dataclass
from functools import partial
from typing import Any

import orjson
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import (
    INVALID_SPAN,
    Link,
    Span,
    SpanKind,
    Status,
    StatusCode,
    TracerProvider,
)

from asyncjobs.brokers.base import Delivery
from asyncjobs.brokers.dead_letters import DeadLetter
from asyncjobs.config import AsyncJobsConfig, TracingSettings
from asyncjobs.hooks import Hooks, Outcome, Run
from asyncjobs.tracing import conventions as c
from asyncjobs.tracing.setup import flush
from asyncjobs.tracing.spans import (
    Attributes,
    RecordingCheck,
    mark_failed,
    start_send,
    tracer_for,
)


@dataclass(slots=True)
class _Traced:
    span: Span
    token: Token[Context]
    run: Run
    retry_send: Span | None = None
    failed: bool = False  # the span's status is ERROR already

    def fail(self, error: BaseException | None) -> None:
        if not self.failed:
            mark_failed(self.span, error)
            self.failed = True


class RunTracing(Hooks):
    """``process`` spans; see the module docstring."""

    def __init__(
        self,
        *,
        system: str,
        group_of: Callable[[str], str | None] = lambda queue: None,
        link_to_producer: bool = False,
        tracer_provider: TracerProvider | None = None,
    ) -> None:
        self._tracer = tracer_for(tracer_provider)
        self._provider = tracer_provider
        self._sampled_out = RecordingCheck(tracer_provider)
        self._system = system
        self._group_of = group_of
        self._link = link_to_producer
        self._runs: dict[Delivery, _Traced] = {}
        self._base: dict[tuple[str, str], Attributes] = {}

    # -- one run -------------------------------------------------------------------
    async def before_run(self, run: Run) -> None:
        delivery, message = run.delivery, run.message
        carrier = c.take_trace_context(message.labels)
        if self._sampled_out.never():
            # No span, but the sender's context (and baggage) is the task's, as always.
            # Never detached: the message's asyncio task, and its context, end with it.
            if carrier:
                otel_context.attach(c.extract_from(carrier))
            return
        parent = c.extract_from(carrier)
        attributes = self._attributes(delivery, message.task_name, message.task_id)
        attributes[c.TASK_ATTEMPT] = run.attempt
        span = self._start_process(delivery.queue, parent, attributes)
        token = otel_context.attach(trace.set_span_in_context(span, parent))
        self._runs[delivery] = _Traced(span, token, run)
        task = asyncio.current_task()
        if task is not None:  # ends the spans of a run whose settling raised
            task.add_done_callback(partial(self._task_done, delivery))

    async def on_retry(self, run: Run, error: BaseException | None, delay_s: float) -> None:
        traced = self._runs.get(run.delivery)
        if traced is None:
            if self._sampled_out.never():
                # No spans here: the retry carries the sender's context on.
                c.inject_into(run.message.labels, otel_context.get_current())
            return
        traced.fail(error)
        # The retry is a message sent by this attempt: its send span is a child of this
        # run's span, and the next attempt's process span a child of that send.
        traced.retry_send = start_send(
            self._tracer,
            system=self._system,
            queue=run.queue,
            task_id=run.task_id,
            task_name=run.task_name,
            attempt=run.attempt + 1,
            delay_s=delay_s,
        )
        c.inject_into(run.message.labels, trace.set_span_in_context(traced.retry_send))

    async def after_run(
        self, run: Run, outcome: Outcome, error: BaseException | None, duration_s: float
    ) -> None:
        traced = self._runs.pop(run.delivery, None)
        if traced is None:
            return
        if traced.retry_send is not None:
            traced.retry_send.end()
        span = traced.span
        span.set_attribute(c.OUTCOME, outcome.value)
        if outcome is Outcome.FAILED:
            traced.fail(error)
        elif outcome is Outcome.SUCCEEDED:
            span.set_status(Status(StatusCode.OK))
        elif outcome is Outcome.CUT_OFF:
            mark_failed(
                span,
                None,
                kind="cut_off",
                description="still running at the drain deadline: cancelled, handed back",
            )
        span.end()
        otel_context.detach(traced.token)

    async def on_dead_letter(self, delivery: Delivery, record: DeadLetter) -> None:
        reason, task_name = record.reason, record.task_name
        event = {c.DEAD_LETTER_REASON: reason.value}
        traced = self._runs.get(delivery)
        if traced is not None:
            traced.fail(traced.run.error)  # the failure first, then where it went
            traced.span.add_event(c.DEAD_LETTER_EVENT, event)
            return
        # Never ran: a span of its own, so the sender's trace shows where its message went.
        labels, task_id = _labels_and_id(delivery.data)
        parent = c.extract_from(c.take_trace_context(labels))
        span = self._start_process(
            delivery.queue, parent, self._attributes(delivery, task_name, task_id)
        )
        mark_failed(span, None, kind=reason.value, description=f"dead-lettered: {reason.value}")
        span.add_event(c.DEAD_LETTER_EVENT, event)
        span.set_attribute(c.OUTCOME, Outcome.FAILED.value)
        span.end()

    async def on_worker_stopped(self) -> None:
        flush(self._provider)

    # -- helpers -------------------------------------------------------------------
    def _start_process(self, queue: str, parent: Context, attributes: Attributes) -> Span:
        links: list[Link] = []
        if self._link:
            sender = trace.get_current_span(parent).get_span_context()
            if sender.is_valid:
                links.append(Link(sender))
            # A trace of its own; the sender's baggage still applies.
            parent = trace.set_span_in_context(INVALID_SPAN, parent)
        return self._tracer.start_span(
            f"process {queue}",
            context=parent,
            kind=SpanKind.CONSUMER,
            attributes=attributes,
            links=links,
        )

    def _attributes(self, delivery: Delivery, task_name: str, task_id: str) -> Attributes:
        key = (delivery.queue, task_name)
        base = self._base.get(key)
        if base is None:
            base = {
                c.MESSAGING_SYSTEM: self._system,
                c.OPERATION_TYPE: "process",
                c.OPERATION_NAME: "process",
                c.DESTINATION: delivery.queue,
                c.TASK_NAME: task_name,
            }
            group = self._group_of(delivery.queue)
            if group is not None:
                base[c.CONSUMER_GROUP] = group
            if len(self._base) < 10_000:  # bounded: task names come from messages
                self._base[key] = base
        attributes = dict(base)
        if task_id:
            attributes[c.MESSAGE_ID] = task_id
        attributes[c.BODY_SIZE] = len(delivery.data)
        attributes[c.DELIVERY_COUNT] = delivery.delivery_count
        return attributes

    def _task_done(self, delivery: Delivery, task: asyncio.Task[Any]) -> None:
        traced = self._runs.pop(delivery, None)
        if traced is None:
            return  # finished normally
        error = None if task.cancelled() else task.exception()
        for span in (traced.retry_send, traced.span):
            if span is not None:
                mark_failed(span, error, kind="unsettled", description="settling failed")
                span.end()


def _labels_and_id(data: bytes) -> tuple[dict[str, Any], str]:
    """The labels and task id of a raw message, as far as it can be decoded."""
    try:
        decoded = orjson.loads(data)
    except orjson.JSONDecodeError:
        return {}, ""
    if not isinstance(decoded, dict):
        return {}, ""
    labels = decoded.get("labels")
    task_id = decoded.get("task_id")
    return (
        labels if isinstance(labels, dict) else {},
        task_id if isinstance(task_id, str) else "",
    )


def run_tracing(
    config: AsyncJobsConfig,
    group_of: Callable[[str], str | None] = lambda queue: None,
    tracer_provider: TracerProvider | None = None,
) -> RunTracing:
    """The hooks of a worker of ``config`` (``TRACING`` on); ``group_of``: the broker's
    ``consumer_group``."""
    settings = config.tracing_settings or TracingSettings()
    return RunTracing(
        system=config.transport.name,
        group_of=group_of,
        link_to_producer=settings.link_to_producer,
        tracer_provider=tracer_provider,
    )
