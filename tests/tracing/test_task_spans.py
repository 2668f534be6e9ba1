"""Spans of sent and run tasks, with in-process workers on the real brokers.

A ``send {queue}`` span per ``kiq()`` and per retry, a ``process {queue}`` span per
delivery, all in the sender's trace; failures are ERROR with ``error.type``; the trace
context travels in the message's labels and never reaches the stored result.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import orjson
import pytest
from opentelemetry import baggage, context, trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from redis.asyncio import Redis
from taskiq.kicker import AsyncKicker

from asyncjobs import current_app, current_broker
from asyncjobs.brokers.redis.results import results_prefix
from asyncjobs.config import AsyncJobsConfig
from asyncjobs.tracing import SendTracing
from asyncjobs.tracing import conventions as c
from asyncjobs.worker.tracing import RunTracing, run_tracing
from tests.support.helpers import wait_until
from tests.support.worker_harness import Worker
from tests.testapp.tasks import add, always_fails, flaky, traced_sync_work, traced_work
from tests.tracing.spans import (
    TRACE_LABELS,
    of_task,
    parent_id,
    span_id,
    trace_id,
    wait_for_spans,
)

tracer = trace.get_tracer("tests")

SEND_KEYS = {
    c.MESSAGING_SYSTEM,
    c.OPERATION_TYPE,
    c.OPERATION_NAME,
    c.DESTINATION,
    c.MESSAGE_ID,
    c.TASK_NAME,
    c.TASK_ATTEMPT,
}
PROCESS_KEYS = SEND_KEYS | {c.CONSUMER_GROUP, c.BODY_SIZE, c.DELIVERY_COUNT, c.OUTCOME}


def traced_sends() -> None:
    app = current_app()
    app.add_hooks(SendTracing(app.config.transport.name, app.config.default_queue))


async def traced_worker(
    start: Callable[..., Any], config: AsyncJobsConfig, **observer: Any
) -> Worker:
    traced_sends()
    if observer:
        found = RunTracing(system=config.transport.name, **observer)  # e.g. link_to_producer
    else:
        found = run_tracing(config, current_broker().consumer_group)
    worker: Worker = await start(hooks=(found,))
    return worker


@contextmanager
def request_with_baggage(tenant: str) -> Iterator[trace.Span]:
    """What a traced HTTP request looks like to a view: a SERVER span, baggage set."""
    token = context.attach(baggage.set_baggage("tenant", tenant))
    try:
        with tracer.start_as_current_span("POST /signup", kind=SpanKind.SERVER) as span:
            yield span
    finally:
        context.detach(token)


def attrs(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


def consumer_group(config: AsyncJobsConfig, queue: str) -> str:
    return "asyncjobs" if config.transport.name == "redis" else f"{config.key_prefix}.{queue}"


async def stored_result(config: AsyncJobsConfig, task_id: str) -> dict[str, Any]:
    """The result as the result backend stores it (raw JSON)."""
    url = config.effective_result_backend_url
    assert url is not None
    async with Redis.from_url(url) as conn:
        raw = await conn.get(f"{results_prefix(config.key_prefix)}:{task_id}")
    assert raw is not None
    stored: dict[str, Any] = orjson.loads(raw)
    return stored


# -- the trace of a task ---------------------------------------------------------------
@pytest.mark.parametrize("work", [traced_work, traced_sync_work], ids=["async", "sync"])
async def test_the_task_runs_in_the_trace_of_its_request(
    start_any_worker: Callable[..., Any],
    configured_any: AsyncJobsConfig,
    exporter: InMemorySpanExporter,
    work: Any,
) -> None:
    await traced_worker(start_any_worker, configured_any)

    with request_with_baggage("acme") as request:
        job = await work.kiq("secret-argument")
        assert trace.get_current_span() is request  # the send span never became current
    result = await job.wait_result(timeout=15)

    # Baggage travelled with the message into the task's context.
    assert result.return_value == "acme", result
    ctx = request.get_span_context()
    spans = await wait_for_spans(
        exporter,
        lambda found: [s for s in found if trace_id(s) == ctx.trace_id],
        4,
    )
    by_name = {s.name: s for s in spans}
    send, process = by_name["send default"], by_name["process default"]
    inside = by_name["inside secret-argument"]
    assert parent_id(by_name["POST /signup"]) is None
    assert parent_id(send) == ctx.span_id
    assert parent_id(process) == span_id(send)
    assert parent_id(inside) == span_id(process)  # also from the sync task's thread
    assert (send.kind, process.kind) == (SpanKind.PRODUCER, SpanKind.CONSUMER)

    system = configured_any.transport.name
    assert system in ("redis", "rabbitmq")
    assert attrs(send) == {
        c.MESSAGING_SYSTEM: system,
        c.OPERATION_TYPE: "send",
        c.OPERATION_NAME: "send",
        c.DESTINATION: "default",
        c.MESSAGE_ID: job.task_id,
        c.TASK_NAME: work.task_name,
        c.TASK_ATTEMPT: 1,
    }
    process_attrs = attrs(process)
    assert set(process_attrs) == PROCESS_KEYS
    assert process_attrs[c.MESSAGING_SYSTEM] == system
    assert process_attrs[c.OPERATION_TYPE] == process_attrs[c.OPERATION_NAME] == "process"
    assert process_attrs[c.DESTINATION] == "default"
    assert process_attrs[c.MESSAGE_ID] == job.task_id
    assert process_attrs[c.CONSUMER_GROUP] == consumer_group(configured_any, "default")
    assert process_attrs[c.TASK_NAME] == work.task_name
    assert process_attrs[c.TASK_ATTEMPT] == 1
    assert process_attrs[c.DELIVERY_COUNT] == 1
    assert process_attrs[c.BODY_SIZE] > 0
    assert process_attrs[c.OUTCOME] == "succeeded"
    assert process.status.status_code is StatusCode.OK
    assert send.status.status_code is StatusCode.UNSET
    # No arguments (nor the baggage's values) in any attribute.
    for span in (send, process):
        assert not any("secret" in str(v) or "acme" in str(v) for v in attrs(span).values())

    # The trace context travelled in the labels, and stays out of the result.
    assert not set(TRACE_LABELS) & set(result.labels), result.labels
    stored = await stored_result(configured_any, job.task_id)
    assert not set(TRACE_LABELS) & set(stored["labels"]), stored["labels"]


async def test_a_message_from_an_untraced_sender_starts_a_trace(
    start_worker: Callable[..., Any], configured: AsyncJobsConfig, exporter: InMemorySpanExporter
) -> None:
    await start_worker(hooks=(run_tracing(configured),))  # no send spans, no labels

    job = await add.kiq(1, 2)
    assert (await job.wait_result(timeout=15)).return_value == 3

    [process] = await wait_for_spans(exporter, lambda s: of_task(s, job.task_id, "process"), 1)
    assert process.parent is None
    assert process.status.status_code is StatusCode.OK


async def test_a_worker_without_tracing_keeps_the_trace_context_out_of_results(
    start_worker: Callable[..., Any], configured: AsyncJobsConfig, exporter: InMemorySpanExporter
) -> None:
    traced_sends()
    await start_worker()  # TRACING off in the worker: nobody takes the labels out

    with request_with_baggage("acme"):
        job = await add.kiq(2, 2)
    result = await job.wait_result(timeout=15)

    assert result.return_value == 4
    assert not set(TRACE_LABELS) & set(result.labels), result.labels
    stored = await stored_result(configured, job.task_id)
    assert not set(TRACE_LABELS) & set(stored["labels"]), stored["labels"]


# -- failures --------------------------------------------------------------------------
async def test_every_attempt_is_a_process_span_in_the_same_trace(
    start_any_worker: Callable[..., Any],
    configured_any: AsyncJobsConfig,
    exporter: InMemorySpanExporter,
) -> None:
    await traced_worker(start_any_worker, configured_any)

    with tracer.start_as_current_span("request") as request:
        job = await flaky.kiq("twice", 2)
    assert (await job.wait_result(timeout=30)).return_value == 3

    runs = await wait_for_spans(exporter, lambda s: of_task(s, job.task_id, "process"), 3)
    sends = await wait_for_spans(exporter, lambda s: of_task(s, job.task_id, "send"), 3)
    assert {trace_id(s) for s in runs + sends} == {request.get_span_context().trace_id}
    assert [attrs(s)[c.TASK_ATTEMPT] for s in runs] == [1, 2, 3]
    assert [attrs(s)[c.TASK_ATTEMPT] for s in sends] == [1, 2, 3]
    error, ok = StatusCode.ERROR, StatusCode.OK
    assert [s.status.status_code for s in runs] == [error, error, ok]
    assert [attrs(s).get(c.ERROR_TYPE) for s in runs] == ["ConnectionError"] * 2 + [None]
    assert [attrs(s)[c.OUTCOME] for s in runs] == ["retried", "retried", "succeeded"]
    for failed in runs[:2]:
        [exception] = [e for e in failed.events if e.name == "exception"]
        assert (exception.attributes or {})["exception.type"] == "ConnectionError"
    # kiq's send -> attempt 1 -> its retry's send -> attempt 2 -> its retry's send -> attempt 3
    first_send, *retry_sends = sends
    assert parent_id(first_send) == request.get_span_context().span_id
    assert parent_id(runs[0]) == span_id(first_send)
    for run, retry_send, next_run in zip(runs, retry_sends, runs[1:], strict=False):
        assert parent_id(retry_send) == span_id(run)
        assert retry_send.kind is SpanKind.PRODUCER
        assert attrs(retry_send)[c.DELAY] > 0
        assert parent_id(next_run) == span_id(retry_send)


async def test_a_final_failure_is_an_error_with_the_dead_letter_as_an_event(
    start_any_worker: Callable[..., Any],
    configured_any: AsyncJobsConfig,
    exporter: InMemorySpanExporter,
) -> None:
    worker = await traced_worker(start_any_worker, configured_any)

    job = await always_fails.kiq("doomed")
    await wait_until(worker.dead, timeout=30, what="the dead letter")

    runs = await wait_for_spans(exporter, lambda s: of_task(s, job.task_id, "process"), 3)
    assert len({trace_id(s) for s in runs}) == 1
    assert [s.status.status_code for s in runs] == [StatusCode.ERROR] * 3
    assert [attrs(s)[c.ERROR_TYPE] for s in runs] == ["RuntimeError"] * 3
    assert [attrs(s)[c.OUTCOME] for s in runs] == ["retried", "retried", "failed"]
    assert [e.name for e in runs[-1].events] == ["exception", c.DEAD_LETTER_EVENT]
    dead_event = runs[-1].events[-1]
    assert (dead_event.attributes or {})[c.DEAD_LETTER_REASON] == "max_attempts"
    assert not any(e.name == c.DEAD_LETTER_EVENT for s in runs[:2] for e in s.events)


async def test_a_message_dead_lettered_unrun_is_an_error_span_in_its_senders_trace(
    start_worker: Callable[..., Any], configured: AsyncJobsConfig, exporter: InMemorySpanExporter
) -> None:
    worker = await traced_worker(start_worker, configured)

    with tracer.start_as_current_span("request") as request:
        # A plain taskiq kicker: traced all the same (the middleware sees every send).
        sent = await AsyncKicker("tests.no_such_task", current_broker(), {}).kiq()
    await wait_until(worker.dead, what="the dead letter")

    [send] = await wait_for_spans(exporter, lambda s: of_task(s, sent.task_id, "send"), 1)
    [process] = await wait_for_spans(exporter, lambda s: of_task(s, sent.task_id, "process"), 1)
    assert parent_id(send) == request.get_span_context().span_id
    assert parent_id(process) == span_id(send)
    assert process.status.status_code is StatusCode.ERROR
    assert attrs(process)[c.ERROR_TYPE] == "unknown_task"
    assert attrs(process)[c.TASK_NAME] == "tests.no_such_task"
    [event] = process.events
    assert event.name == c.DEAD_LETTER_EVENT
    assert (event.attributes or {})[c.DEAD_LETTER_REASON] == "unknown_task"


# -- links instead of parents -----------------------------------------------------------
async def test_link_to_producer_starts_a_trace_per_delivery_linked_to_its_send(
    start_worker: Callable[..., Any], configured: AsyncJobsConfig, exporter: InMemorySpanExporter
) -> None:
    await traced_worker(start_worker, configured, link_to_producer=True)

    with request_with_baggage("acme"):
        job = await traced_work.kiq("linked")
    assert (await job.wait_result(timeout=15)).return_value == "acme"  # baggage still applies

    [send] = await wait_for_spans(exporter, lambda s: of_task(s, job.task_id, "send"), 1)
    [process] = await wait_for_spans(exporter, lambda s: of_task(s, job.task_id, "process"), 1)
    assert process.parent is None
    assert trace_id(process) != trace_id(send)
    assert [(link.context.trace_id, link.context.span_id) for link in process.links] == [
        (trace_id(send), span_id(send))
    ]
    [inside] = [s for s in exporter.get_finished_spans() if s.name == "inside linked"]
    assert parent_id(inside) == span_id(process)


# -- scheduled sends ----------------------------------------------------------------------
async def test_a_scheduled_firing_starts_its_own_trace(
    start_worker: Callable[..., Any], configured: AsyncJobsConfig, exporter: InMemorySpanExporter
) -> None:
    await traced_worker(start_worker, configured)

    with tracer.start_as_current_span("whatever the scheduler was doing") as ambient:
        job = (
            await add.kicker()
            .with_labels(schedule_id="nightly", schedule_tick="2026-01-01T00:00:00+00:00")
            .kiq(1, 1)
        )
    assert (await job.wait_result(timeout=15)).return_value == 2

    [send] = await wait_for_spans(exporter, lambda s: of_task(s, job.task_id, "send"), 1)
    [process] = await wait_for_spans(exporter, lambda s: of_task(s, job.task_id, "process"), 1)
    assert send.parent is None
    assert trace_id(send) != ambient.get_span_context().trace_id
    assert attrs(send)[c.SCHEDULE_ID] == "nightly"
    assert attrs(send)[c.SCHEDULE_TICK] == "2026-01-01T00:00:00+00:00"
    assert parent_id(process) == span_id(send)


async def test_a_send_without_a_current_span_starts_a_trace(
    configured: AsyncJobsConfig, exporter: InMemorySpanExporter
) -> None:
    traced_sends()
    assert not trace.get_current_span().get_span_context().is_valid

    sent = await add.kiq(1, 2)

    [send] = await wait_for_spans(exporter, lambda s: of_task(s, sent.task_id, "send"), 1)
    assert send.parent is None
