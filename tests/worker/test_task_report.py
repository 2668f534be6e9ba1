"""``task_report(task_id)`` and ``asyncjobs task ID`` on the real Redis (a worker in this
loop), and what RabbitMQ cannot tell: every state a task can be found in."""

from __future__ import annotations

import asyncio
import io
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson
import pytest

from asyncjobs import current_broker
from asyncjobs.cli import run
from asyncjobs.config import AsyncJobsConfig, load_config
from asyncjobs.dead_letters import DeadLetters
from asyncjobs.task_lookup import TaskReport, task_report
from tests.conftest import AMQP_URL, require_server
from tests.support.helpers import configured_app, wait_until
from tests.testapp import tasks

pytestmark = pytest.mark.redis


async def report_in(state: str, task_id: str) -> TaskReport | None:
    report = await task_report(task_id)
    return report if report.state == state else None


async def test_waiting_and_scheduled_without_a_worker(configured: AsyncJobsConfig) -> None:
    waiting = (await tasks.on_other_queue.kiq("w")).task_id
    later = (await tasks.add.kicker().with_labels(delay=600).kiq(1, 2)).task_id
    report = await task_report(waiting)
    assert (report.state, report.task_name, report.queue) == (
        "waiting", tasks.on_other_queue.task_name, "other"
    )  # fmt: skip
    assert (report.attempts, report.failed_attempts, report.notes) == (0, [], ())
    report = await task_report(later)
    assert (report.state, report.task_name, report.queue) == (
        "scheduled", tasks.add.task_name, "default"
    )  # fmt: skip


async def test_running_then_succeeded(
    start_worker: Callable[..., Any], configured: AsyncJobsConfig
) -> None:
    worker = await start_worker()
    task_id = (await tasks.sleeps.kiq("long", 2.0)).task_id
    await wait_until(worker.ledger, what="the task started")
    report = await task_report(task_id)
    assert (report.state, report.task_name, report.attempts) == (
        "running", tasks.sleeps.task_name, 1
    )  # fmt: skip
    done = await wait_until(lambda: report_in("succeeded", task_id), timeout=15)
    assert (done.result, done.error, done.attempts, done.dead_letters) == ("long", None, 1, ())


async def test_retried_then_dead_then_replayed(
    start_worker: Callable[..., Any], configured: AsyncJobsConfig
) -> None:
    worker = await start_worker()
    task_id = (await tasks.always_fails.kiq("x")).task_id  # 3 attempts, then dead
    dead = await wait_until(lambda: report_in("dead", task_id), timeout=15)
    assert (dead.task_name, dead.queue, dead.attempts) == (
        tasks.always_fails.task_name,
        "default",
        3,
    )
    assert dead.error == "RuntimeError: boom x"
    assert [f["attempt"] for f in dead.failed_attempts] == [1, 2, 3]
    assert [letter.task_id for letter in dead.dead_letters] == [task_id]
    await worker.stop()
    # Replayed with no worker: the letter is gone, its failure result stays; the message
    # waits in its queue again, and the report says so.
    await DeadLetters.of(current_broker()).replay(task_id)
    again = await task_report(task_id)
    assert (again.state, again.attempts, again.dead_letters) == ("waiting", 0, ())
    assert any("queued again" in note for note in again.notes)


async def test_failed_with_the_letter_purged(
    start_worker: Callable[..., Any], configured: AsyncJobsConfig
) -> None:
    await start_worker()
    task_id = (await tasks.picky.kiq("bad", "KeyError")).task_id  # not retried
    await wait_until(lambda: report_in("dead", task_id), timeout=15)
    await DeadLetters.of(current_broker()).purge()
    report = await task_report(task_id)
    assert (report.state, report.error, report.attempts) == ("failed", "KeyError: 'bad'", 1)


async def test_unknown_and_the_bounded_search(configured: AsyncJobsConfig) -> None:
    report = await task_report(uuid.uuid4().hex)
    assert report.state == "unknown" and report.task_name is None
    assert "never sent, or finished before what is kept" in report.notes[-1]
    ids = [(await tasks.add.kiq(i, i)).task_id for i in range(3)]
    assert (await task_report(ids[2], scan=2)).state == "unknown"
    [note, _] = (await task_report(ids[2], scan=2)).notes
    assert note.startswith("searched only the oldest 2 waiting or running") and "'default'" in note
    assert (await task_report(ids[1], scan=2)).state == "waiting"


def cli(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    return run(list(argv), out=out), out.getvalue()


async def test_the_cli(configured: AsyncJobsConfig, capsys: pytest.CaptureFixture[str]) -> None:
    task_id = (await tasks.add.kiq(1, 2)).task_id
    status, text = await asyncio.to_thread(cli, "task", task_id, "--json")
    assert status == 0
    assert orjson.loads(text) | {"notes": []} == {
        "task_id": task_id,
        "state": "waiting",
        "task_name": tasks.add.task_name,
        "queue": "default",
        "attempts": 0,
        "result": None,
        "error": None,
        "failed_attempts": [],
        "dead_letters": [],
        "notes": [],
    }
    status, text = await asyncio.to_thread(cli, "task", task_id)
    assert (status, text.splitlines()[0]) == (0, f"task {task_id}: waiting")
    status, text = await asyncio.to_thread(cli, "task", "nobody-sent-this")
    assert (status, text.splitlines()[0]) == (1, "task nobody-sent-this: unknown")
    assert "asyncjobs: no dead letter, no result" in capsys.readouterr().err


@pytest.fixture
async def on_rabbitmq(redis_url: str, prefix: str, redis_cleanup: None) -> AsyncIterator[None]:
    require_server(AMQP_URL, "RabbitMQ")
    settings = {"BROKER_URL": AMQP_URL, "RESULT_BACKEND_URL": redis_url, "KEY_PREFIX": prefix}
    async with configured_app(load_config(settings, environ={})) as broker:
        yield
    from example.processes import delete_amqp_queues

    delay_queues = broker.delay_queues.names  # type: ignore[attr-defined]
    await delete_amqp_queues(AMQP_URL, prefix, ("default",), also=delay_queues)


async def test_rabbitmq_cannot_tell_where_a_message_is(on_rabbitmq: None) -> None:
    task_id = (await tasks.add.kiq(1, 2)).task_id  # waiting: no worker
    report = await task_report(task_id)
    assert report.state == "unknown"
    assert report.notes[0].startswith("rabbitmq cannot look into a queue")
    assert "not finished yet, never sent" in report.notes[1]
