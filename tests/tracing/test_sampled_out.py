"""Tracing on but sampled out for good (``always_off``): no spans, the context still flows.

asyncjobs starts no span at all then (what made "on but sampled out" cost a fifth of a
no-op task's throughput), and only carries the sender's context and baggage along, so
that the task, and what it sends, still see them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON, ParentBased

from asyncjobs import current_app
from asyncjobs.config import AsyncJobsConfig
from asyncjobs.tracing import SendTracing
from asyncjobs.tracing.spans import RecordingCheck, never_records
from asyncjobs.worker.tracing import RunTracing
from tests.testapp.tasks import flaky_traced, traced_work
from tests.tracing.spans import TRACE_LABELS, parent_id, trace_id, wait_for_spans
from tests.tracing.test_task_spans import request_with_baggage, stored_result


def test_only_a_sampler_that_drops_everything_counts_as_never_recording() -> None:
    assert never_records(TracerProvider(sampler=ALWAYS_OFF))
    assert never_records(trace.NoOpTracerProvider())
    # A parent-based sampler follows a sampled parent: it may record.
    assert not never_records(TracerProvider(sampler=ParentBased(ALWAYS_OFF)))
    assert not never_records(TracerProvider(sampler=ALWAYS_ON))
    assert not never_records(trace.ProxyTracerProvider())


def test_the_check_follows_the_provider_it_is_given() -> None:
    assert RecordingCheck(TracerProvider(sampler=ALWAYS_OFF)).never()
    assert not RecordingCheck(TracerProvider(sampler=ALWAYS_ON)).never()


@pytest.fixture
def sampled_out() -> Iterator[InMemorySpanExporter]:
    """An always-off provider for asyncjobs' hooks, recording whatever it would end."""
    recorded = InMemorySpanExporter()
    provider = TracerProvider(sampler=ALWAYS_OFF)
    provider.add_span_processor(SimpleSpanProcessor(recorded))
    recorded.provider = provider  # type: ignore[attr-defined]
    yield recorded
    provider.shutdown()


async def sampled_out_worker(
    start: Callable[..., Any], config: AsyncJobsConfig, sampled_out: InMemorySpanExporter
) -> None:
    """Sends and a worker traced by asyncjobs on the always-off provider."""
    provider = sampled_out.provider  # type: ignore[attr-defined]
    current_app().add_hooks(SendTracing(config.transport.name, tracer_provider=provider))
    observer = RunTracing(system=config.transport.name, tracer_provider=provider)
    await start(hooks=(observer,))


async def test_no_span_but_the_task_still_runs_in_its_senders_context(
    start_any_worker: Callable[..., Any],
    configured_any: AsyncJobsConfig,
    exporter: InMemorySpanExporter,
    sampled_out: InMemorySpanExporter,
) -> None:
    await sampled_out_worker(start_any_worker, configured_any, sampled_out)

    with request_with_baggage("acme") as request:
        job = await traced_work.kiq("quiet")
    result = await job.wait_result(timeout=15)

    assert result.return_value == "acme"  # the baggage reached the task
    assert sampled_out.get_finished_spans() == ()  # asyncjobs recorded nothing
    # The span the task opened (on the application's own, recording provider) is in the
    # request's trace, a child of the request: the context went through the message.
    ctx = request.get_span_context()
    [inside] = await wait_for_spans(exporter, lambda found: _inside(found, ctx.trace_id), 1)
    assert parent_id(inside) == ctx.span_id
    assert not set(TRACE_LABELS) & set(result.labels), result.labels
    stored = await stored_result(configured_any, job.task_id)
    assert not set(TRACE_LABELS) & set(stored["labels"]), stored["labels"]


async def test_a_retried_task_keeps_its_senders_context(
    start_worker: Callable[..., Any],
    configured: AsyncJobsConfig,
    sampled_out: InMemorySpanExporter,
) -> None:
    await sampled_out_worker(start_worker, configured, sampled_out)

    with request_with_baggage("acme"):
        job = await flaky_traced.kiq("quiet-retry", 2)
    result = await job.wait_result(timeout=30)

    assert result.return_value == "acme"  # the third attempt still had the baggage
    assert sampled_out.get_finished_spans() == ()
    assert not set(TRACE_LABELS) & set(result.labels), result.labels


def _inside(found: list[Any], wanted: int) -> list[Any]:
    return [span for span in found if trace_id(span) == wanted and span.name == "inside quiet"]
