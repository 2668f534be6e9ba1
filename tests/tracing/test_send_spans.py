"""Failed sends are ERROR spans, and leave the caller's context as it was; a stopping
worker exports its spans before its process ends."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode
from taskiq.message import TaskiqMessage

from asyncjobs import configured, current_app
from asyncjobs.config import AsyncJobsConfig
from asyncjobs.errors import BrokerConnectionError, PayloadTooLargeError
from asyncjobs.tracing import SendTracing
from asyncjobs.tracing import conventions as c
from asyncjobs.worker.tracing import run_tracing
from tests.testapp.tasks import add
from tests.tracing.spans import parent_id, wait_for_spans

tracer = trace.get_tracer("tests")


@pytest.fixture
async def dead_broker(request: pytest.FixtureRequest, free_port: int) -> AsyncIterator[str]:
    """asyncjobs configured on a broker nobody listens to (Redis or RabbitMQ URL)."""
    scheme = request.param
    url = (
        f"redis://127.0.0.1:{free_port}/0"
        if scheme == "redis"
        else f"amqp://guest:guest@127.0.0.1:{free_port}/"
    )
    async with configured({"BROKER_URL": url}, hooks=[SendTracing(scheme)]):
        yield scheme


@pytest.mark.parametrize("dead_broker", ["redis", "rabbitmq"], indirect=True)
@pytest.mark.timeout(60)
async def test_a_send_to_a_dead_broker_is_an_error_span(
    dead_broker: str, exporter: InMemorySpanExporter
) -> None:
    with tracer.start_as_current_span("request") as request:
        with pytest.raises(BrokerConnectionError) as raised:
            await add.kiq(1, 2)
        # taskiq's middleware leaves the failed send span current for good; ours never
        # makes it current.
        assert trace.get_current_span() is request

    [send] = await wait_for_spans(
        exporter, lambda found: [s for s in found if s.name == "send default"], 1
    )
    assert parent_id(send) == request.get_span_context().span_id
    assert send.status.status_code is StatusCode.ERROR
    # The broker's own error: what kiq() raised, or the library error it wraps.
    shown = {c.error_type(raised.value), c.error_type(raised.value.__cause__)}
    assert (send.attributes or {})[c.ERROR_TYPE] in shown
    assert (send.attributes or {})[c.ERROR_TYPE] != "taskiq.exceptions.SendTaskError"
    assert [e.name for e in send.events] == ["exception"]


async def test_a_message_refused_before_sending_is_an_error_span(
    configured: AsyncJobsConfig, exporter: InMemorySpanExporter
) -> None:
    current_app().add_hooks(SendTracing("redis"))

    with pytest.raises(PayloadTooLargeError):
        await add.kiq("x" * (configured.max_payload_bytes + 1), 2)

    [send] = await wait_for_spans(
        exporter, lambda found: [s for s in found if s.name == "send default"], 1
    )
    assert send.status.status_code is StatusCode.ERROR
    assert (send.attributes or {})[c.ERROR_TYPE] == "asyncjobs.errors.PayloadTooLargeError"


async def test_a_send_inside_a_send_ends_both_spans(exporter: InMemorySpanExporter) -> None:
    """A send whose hooks send (a transport that runs something in place, a hook of
    yours): the inner send must not end (or fail) the outer one."""
    hooks = SendTracing("memory")

    def message(task_id: str) -> TaskiqMessage:
        return TaskiqMessage(task_id=task_id, task_name="t", labels={}, args=[], kwargs={})

    outer, inner = message("outer"), message("inner")
    with tracer.start_as_current_span("request"):
        await hooks.on_send(outer)
        await hooks.on_send(inner)
        await hooks.on_sent(inner)
        await hooks.on_sent(outer)

    sends = {
        (s.attributes or {})[c.MESSAGE_ID]: s
        for s in exporter.get_finished_spans()
        if s.name == "send default"
    }
    assert set(sends) == {"outer", "inner"}
    assert [s.status.status_code for s in sends.values()] == [StatusCode.UNSET] * 2
    assert sends["outer"].end_time >= sends["inner"].end_time  # type: ignore[operator]


async def test_a_stopping_worker_exports_its_spans(
    start_worker: Callable[..., Any], configured: AsyncJobsConfig
) -> None:
    """Worker processes end with os._exit: spans waiting in a batch would be lost."""
    exported = InMemorySpanExporter()
    provider = TracerProvider()
    # Batches leave after a minute, or when flushed.
    provider.add_span_processor(BatchSpanProcessor(exported, schedule_delay_millis=60_000))
    worker = await start_worker(hooks=(run_tracing(configured, tracer_provider=provider),))
    job = await add.kiq(2, 3)
    assert (await job.wait_result(timeout=15)).return_value == 5
    assert exported.get_finished_spans() == ()

    await worker.stop()

    assert [s.name for s in exported.get_finished_spans()] == ["process default"]
    provider.shutdown()
