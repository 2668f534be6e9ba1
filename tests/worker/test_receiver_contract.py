"""What the worker does with every kind of message, on both transports."""

from __future__ import annotations

from collections.abc import Callable

import orjson
import pytest
from taskiq.message import BrokerMessage

from asyncjobs import current_broker
from asyncjobs.brokers.base import ReliableBroker
from asyncjobs.brokers.dead_letters import Reason
from tests.support.helpers import wait_until
from tests.support.worker_harness import Worker
from tests.testapp import tasks


async def publish_raw(body: bytes) -> None:
    broker = current_broker()
    assert isinstance(broker, ReliableBroker)
    await broker.ensure_started()
    await broker.publish(
        "default", BrokerMessage(task_id="raw", task_name="raw", message=body, labels={})
    )


async def one_dead_letter(worker: Worker) -> object:
    [record] = await wait_until(worker.dead, timeout=15, what="a dead letter")
    return record


async def test_completes_tasks(start_any_worker: Callable[..., object]) -> None:
    await start_any_worker()
    job = await tasks.add.kiq(1, 2)
    assert (await job.wait_result(timeout=15)).return_value == 3


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"\xff\xfe not json", Reason.UNDECODABLE),
        (b'{"task_id": "a", "labels": {}}', Reason.UNDECODABLE),
        (
            orjson.dumps(
                {"task_id": "a", "task_name": "gone:task", "labels": {}, "args": [], "kwargs": {}}
            ),
            Reason.UNKNOWN_TASK,
        ),
        (
            orjson.dumps(
                {
                    "task_id": "a",
                    "task_name": "tests.testapp.tasks:add",
                    "labels": {},
                    "args": ["x"],
                    "kwargs": {},
                }
            ),
            Reason.INVALID_ARGUMENTS,
        ),
    ],
)
async def test_bad_input_is_dead_lettered_not_dropped(
    start_any_worker: Callable[..., object], body: bytes, reason: Reason
) -> None:
    worker: Worker = await start_any_worker()  # type: ignore[misc]
    await publish_raw(body)
    record = await one_dead_letter(worker)
    assert record.reason is reason  # type: ignore[attr-defined]
    assert record.body == body  # type: ignore[attr-defined]
    assert await worker.ledger() == []


async def test_failures_end_in_the_dead_letters(start_any_worker: Callable[..., object]) -> None:
    worker: Worker = await start_any_worker()  # type: ignore[misc]
    await tasks.always_fails.kiq("f")
    record = await one_dead_letter(worker)
    assert record.reason is Reason.MAX_ATTEMPTS  # type: ignore[attr-defined]
    assert await worker.ledger() == ["fail:f"] * 3
