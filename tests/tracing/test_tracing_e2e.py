"""One trace from the HTTP request through the broker into the task, with real processes.

uvicorn serves the example project, a real ``taskiq worker`` runs its tasks on Redis or
RabbitMQ, and both export OTLP over HTTP to a receiver in the test, configured by
nothing but ``ASYNCJOBS_TRACING`` and the standard ``OTEL_*`` variables.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import httpx
import orjson
import pytest
from redis.asyncio import Redis

from asyncjobs.brokers.redis.results import results_prefix
from example.traces import OtlpReceiver, ReceivedSpan
from tests.support.processes import ExampleStack, delete_amqp_queues, delete_results, wait_for_task
from tests.tracing.spans import TRACE_LABELS

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

TASK = "example.shop.tasks:send_welcome_email"


@pytest.fixture(
    params=[
        pytest.param("redis", marks=pytest.mark.redis),
        pytest.param("rabbitmq", marks=[pytest.mark.redis, pytest.mark.rabbitmq]),
    ]
)
def broker_url(request: pytest.FixtureRequest, redis_url: str) -> str:
    if request.param == "rabbitmq":
        url: str = request.getfixturevalue("amqp_url")
        return url
    return redis_url


@pytest.fixture
def otlp() -> Iterator[OtlpReceiver]:
    with OtlpReceiver() as receiver:
        yield receiver


@pytest.fixture
async def stack(
    broker_url: str,
    redis_url: str,
    prefix: str,
    tmp_path: Path,
    redis_cleanup: None,
    otlp: OtlpReceiver,
) -> AsyncIterator[ExampleStack]:
    example = ExampleStack(
        broker_url=broker_url,
        result_backend_url=redis_url,
        db_path=tmp_path / "example.sqlite3",
        log_dir=tmp_path / "logs",
        key_prefix=prefix,
        extra_env={
            "ASYNCJOBS_TRACING": "true",
            "OTEL_EXPORTER_OTLP_ENDPOINT": otlp.endpoint,
            # Batches would leave after a minute: spans can only arrive in time through
            # the flush of a stopping process (uvicorn's lifespan shutdown; a worker,
            # whose processes end with os._exit, when it stopped).
            "OTEL_BSP_SCHEDULE_DELAY": "60000",
            # Whatever the test runner's environment says, these are the defaults here.
            "OTEL_TRACES_EXPORTER": "otlp",
            "OTEL_TRACES_SAMPLER": "parentbased_always_on",
            "OTEL_SERVICE_NAME": "",
            "OTEL_RESOURCE_ATTRIBUTES": "",
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        },
    )
    await asyncio.to_thread(example.migrate)
    try:
        yield example
    finally:
        await asyncio.to_thread(example.stop, 15.0)
        print(example.describe(lines=80))
        if broker_url.startswith("amqp"):
            await asyncio.wait_for(delete_amqp_queues(broker_url, prefix), timeout=15)


async def wait_for_spans(
    otlp: OtlpReceiver,
    stack: ExampleStack,
    select: Callable[[list[ReceivedSpan]], list[ReceivedSpan]],
    count: int,
    timeout_s: float = 30.0,
) -> list[ReceivedSpan]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = select(otlp.snapshot())
        if len(found) >= count:
            return found
        await asyncio.sleep(0.1)
    names = sorted({(s.service, s.name) for s in otlp.snapshot()})
    raise AssertionError(
        f"{count} spans not received after {timeout_s}s; got {names}\n{stack.describe(lines=60)}"
    )


async def test_one_trace_from_the_request_into_the_task(
    stack: ExampleStack, otlp: OtlpReceiver, redis_url: str, broker_url: str
) -> None:
    stack.start_web()
    await stack.wait_web_ready(timeout_s=60)
    stack.start_worker(workers=1)

    async with httpx.AsyncClient(base_url=stack.base_url, timeout=10.0) as client:
        response = await client.post("/signup", json={"email": "ada@example.org"})
        assert response.status_code == 202, response.text
        sent = response.json()
        task_id = sent["task"]
        try:
            welcome = await wait_for_task(client, stack, task_id)
            assert welcome["is_err"] is False, welcome
            assert (await wait_for_task(client, stack, sent["score_task"]))["is_err"] is False
        finally:
            await delete_results_later(redis_url, stack, [task_id, sent["score_task"]])

    assert otlp.snapshot() == []  # all waiting in the processes' batches

    await asyncio.to_thread(stack.stop, 40.0)
    assert stack.unclean_exits() == {}, stack.describe()

    [send] = await wait_for_spans(
        otlp,
        stack,
        lambda spans: [
            s
            for s in spans
            if s.name == "send emails" and s.attributes.get("messaging.message.id") == task_id
        ],
        1,
    )

    def in_trace(spans: list[ReceivedSpan]) -> list[ReceivedSpan]:
        return [s for s in spans if s.trace_id == send.trace_id]

    spans = await wait_for_spans(otlp, stack, in_trace, 4)
    by_id = {s.span_id: s for s in spans}
    request = by_id[send.parent_id]
    [process] = [s for s in spans if s.name == "process emails"]
    [inside] = [s for s in spans if s.name == "email provider: send"]

    assert (request.service, request.kind, request.parent_id) == ("example-web", "SERVER", "")
    assert request.name.startswith("POST")
    assert (send.service, send.kind) == ("example-web", "PRODUCER")
    assert (process.service, process.kind, process.parent_id) == (
        "example-worker",
        "CONSUMER",
        send.span_id,
    )
    assert (inside.service, inside.kind, inside.parent_id) == (
        "example-worker",
        "CLIENT",
        process.span_id,
    )
    system = "rabbitmq" if broker_url.startswith("amqp") else "redis"
    assert send.attributes == {
        "messaging.system": system,
        "messaging.operation.type": "send",
        "messaging.operation.name": "send",
        "messaging.destination.name": "emails",
        "messaging.message.id": task_id,
        "asyncjobs.task.name": TASK,
        "asyncjobs.task.attempt": 1,
    }
    assert process.attributes["messaging.system"] == system
    assert process.attributes["messaging.operation.type"] == "process"
    assert process.attributes["messaging.destination.name"] == "emails"
    assert process.attributes["messaging.message.id"] == task_id
    assert process.attributes["messaging.consumer.group.name"] == (
        f"{stack.key_prefix}.emails" if system == "rabbitmq" else "asyncjobs"
    )
    assert process.attributes["asyncjobs.task.name"] == TASK
    assert process.attributes["asyncjobs.task.attempt"] == 1
    assert process.attributes["asyncjobs.task.outcome"] == "succeeded"
    assert process.status == "OK"


async def delete_results_later(redis_url: str, stack: ExampleStack, task_ids: list[str]) -> None:
    """Check the stored results carry no trace context, then delete them."""
    assert stack.key_prefix is not None
    async with Redis.from_url(redis_url) as conn:
        for task_id in task_ids:
            raw = await conn.get(f"{results_prefix(stack.key_prefix)}:{task_id}")
            if raw is not None:
                labels = orjson.loads(raw)["labels"]
                assert not set(TRACE_LABELS) & set(labels), labels
    await delete_results(redis_url, stack.key_prefix, task_ids)
