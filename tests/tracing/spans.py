"""Reading recorded spans in the tracing tests."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from asyncjobs.tracing import conventions as c
from tests.support.helpers import wait_until

TRACE_LABELS = ("traceparent", "tracestate", "baggage")


def of_task(spans: Sequence[ReadableSpan], task_id: str, name_prefix: str) -> list[ReadableSpan]:
    """The spans about message ``task_id`` whose name starts with ``name_prefix``, in the
    order they started."""
    found = [
        s
        for s in spans
        if s.name.startswith(name_prefix) and (s.attributes or {}).get(c.MESSAGE_ID) == task_id
    ]
    return sorted(found, key=lambda s: s.start_time or 0)


def parent_id(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


def span_id(span: ReadableSpan) -> int:
    assert span.context is not None
    return span.context.span_id


def trace_id(span: ReadableSpan) -> int:
    assert span.context is not None
    return span.context.trace_id


async def wait_for_spans(
    exporter: InMemorySpanExporter,
    select: Callable[[Sequence[ReadableSpan]], list[ReadableSpan]],
    count: int,
    *,
    timeout: float = 15.0,
) -> list[ReadableSpan]:
    """Wait until ``select`` finds ``count`` finished spans; return them."""

    async def probe() -> list[ReadableSpan] | None:
        found = select(exporter.get_finished_spans())
        return found if len(found) >= count else None

    found = await wait_until(probe, timeout=timeout, what=f"{count} spans")
    assert len(found) == count, [s.name for s in found]
    return found
