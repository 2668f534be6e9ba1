"""The asyncjobs receiver in-process against the real Redis: run, settle, drain."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import orjson
import pytest

from asyncjobs.brokers.dead_letters import Reason
from asyncjobs.brokers.redis.streams import DATA, DELIVERIES, stream_key
from tests.support.helpers import wait_until
from tests.support.worker_harness import Worker
from tests.testapp import tasks

pytestmark = pytest.mark.redis


async def test_runs_tasks_and_deletes_their_entries(start_worker: Callable[..., object]) -> None:
    worker: Worker = await start_worker()  # type: ignore[misc]
    job = await tasks.add.kiq(2, 3)
    other = await tasks.on_other_queue.kiq("o")
    sync = await tasks.sync_multiply.kiq(3, 4)
    assert (await job.wait_result(timeout=10)).return_value == 5
    assert (await other.wait_result(timeout=10)).return_value == "o"
    assert (await sync.wait_result(timeout=10)).return_value == 12
    assert sorted(await worker.ledger()) == ["add:2:3", "other:o"]
    for queue in ("default", "other"):
        assert await worker.conn.xlen(stream_key(worker.prefix, queue)) == 0


async def test_undecodable_message_is_dead_lettered_with_an_excerpt_only(
    start_worker: Callable[..., object], caplog: pytest.LogCaptureFixture
) -> None:
    worker: Worker = await start_worker()  # type: ignore[misc]
    garbage = b"\x80not json " + b"SECRET" * 2000
    await worker.conn.xadd(stream_key(worker.prefix, "default"), {DATA: garbage})
    with caplog.at_level(logging.DEBUG):
        [record] = await wait_until(worker.dead, what="a dead letter")
    assert record.reason is Reason.UNDECODABLE and record.body == garbage
    assert record.error_type == "MessageDecodeError"
    assert "SECRET" * 30 not in caplog.text  # an excerpt, never the whole payload
    assert await worker.conn.xlen(stream_key(worker.prefix, "default")) == 0


async def test_unknown_task_is_dead_lettered_not_dropped(
    start_worker: Callable[..., object], caplog: pytest.LogCaptureFixture
) -> None:
    worker: Worker = await start_worker()  # type: ignore[misc]
    body = orjson.dumps(
        {
            "task_id": "abc",
            "task_name": "newer.release:task",
            "labels": {},
            "args": [],
            "kwargs": {},
        }
    )
    await worker.conn.xadd(stream_key(worker.prefix, "default"), {DATA: body})
    [record] = await wait_until(worker.dead, what="a dead letter")
    assert record.reason is Reason.UNKNOWN_TASK
    assert (record.task_id, record.task_name) == ("abc", "newer.release:task")
    [logged] = [
        r
        for r in caplog.records
        if r.name == "asyncjobs.worker.tasks"
        and "[abc]" in r.getMessage()
        and r.levelno > logging.INFO
    ]
    assert logged.levelno == logging.ERROR
    assert logged.getMessage().startswith(
        "dead-lettered newer.release:task [abc] from queue default without running it: "
        "unknown_task; payload starts"
    )


async def test_invalid_arguments_are_dead_lettered_without_running(
    start_worker: Callable[..., object],
) -> None:
    worker: Worker = await start_worker()  # type: ignore[misc]
    await tasks.add.kiq("not a number", 1)  # type: ignore[arg-type]
    [record] = await wait_until(worker.dead, what="a dead letter")
    assert record.reason is Reason.INVALID_ARGUMENTS and "'a'" in record.error_message
    assert await worker.ledger() == []


async def test_failing_task_runs_max_attempts_times_then_is_dead_lettered(
    start_worker: Callable[..., object],
) -> None:
    worker: Worker = await start_worker()  # type: ignore[misc]
    job = await tasks.always_fails.kiq("f")
    [record] = await wait_until(worker.dead, what="a dead letter")
    assert record.reason is Reason.MAX_ATTEMPTS and record.attempts == 3
    assert record.error_type == "RuntimeError" and record.error_message == "boom f"
    assert await worker.ledger() == ["fail:f"] * 3
    result = await job.wait_result(timeout=5)
    assert result.is_err


async def test_reject_goes_straight_to_the_dead_letters(
    start_worker: Callable[..., object],
) -> None:
    worker: Worker = await start_worker()  # type: ignore[misc]
    await tasks.rejects.kiq("r")
    [record] = await wait_until(worker.dead, what="a dead letter")
    assert record.reason is Reason.REJECTED and record.attempts == 1
    assert await worker.ledger() == ["reject:r"]


async def test_a_message_redelivered_too_often_is_dead_lettered(
    start_worker: Callable[..., object],
) -> None:
    worker: Worker = await start_worker(max_deliveries=5)  # type: ignore[misc]
    body = orjson.dumps(
        {
            "task_id": "t1",
            "task_name": tasks.add.task_name,
            "labels": {},
            "args": [1, 1],
            "kwargs": {},
        }
    )
    await worker.conn.xadd(stream_key(worker.prefix, "default"), {DATA: body, DELIVERIES: 5})
    [record] = await wait_until(worker.dead, what="a dead letter")
    assert record.reason is Reason.MAX_DELIVERIES and record.deliveries == 6
    assert await worker.ledger() == []


async def test_drain_lets_running_tasks_finish(start_worker: Callable[..., object]) -> None:
    worker: Worker = await start_worker(drain_timeout_s=10)  # type: ignore[misc]
    await tasks.sleeps.kiq("b", 0.5)
    await wait_until(lambda: _contains(worker, "start:b"), what="the task to start")
    await worker.stop()
    assert await worker.ledger() == ["start:b", "end:b"]
    assert await worker.conn.xlen(stream_key(worker.prefix, "default")) == 0


async def test_drain_deadline_cuts_off_and_hands_back(
    start_worker: Callable[..., object], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    worker: Worker = await start_worker(drain_timeout_s=0.5)  # type: ignore[misc]
    sent = await tasks.sleeps.kiq("long", 60)
    await wait_until(lambda: _contains(worker, "start:long"), what="the task to start")
    loop = asyncio.get_running_loop()
    began = loop.time()
    await worker.stop()
    assert loop.time() - began < 4
    assert await worker.ledger() == ["start:long", "cancelled:long"]
    [(_, fields)] = await worker.conn.xrange(stream_key(worker.prefix, "default"))
    assert orjson.loads(fields[DATA])["task_name"] == tasks.sleeps.task_name
    assert int(fields[DELIVERIES]) == 1  # it ran once; the count travels with it
    # One line says so, with where the task was; taskiq's ERROR for the CancelledError
    # is dropped.
    [cut] = [
        r
        for r in caplog.records
        if f"[{sent.task_id}]" in r.getMessage() and r.levelno > logging.INFO
    ]
    assert cut.levelno == logging.WARNING and "cut off at the drain deadline" in cut.getMessage()
    assert not [
        r for r in caplog.records if r.name.startswith("taskiq") and r.levelno >= logging.ERROR
    ]


async def _contains(worker: Worker, event: str) -> bool:
    return event in await worker.ledger()


async def test_job_gives_the_handle_of_a_task_sent_earlier(
    start_worker: Callable[..., object],
) -> None:
    from asyncjobs import job

    await start_worker()
    sent = await tasks.add.kiq(20, 22)
    result = await job(sent.task_id).wait_result(timeout=10)
    assert result.return_value == 42
