"""RabbitMQ fault tests: real ``taskiq worker`` processes, killed on purpose.

Each test runs its own worker (``tests/faults/workers.py``) against the shared RabbitMQ
under a key prefix of its own, kicks tasks from this process and watches the Redis
ledger the test tasks write (``tests/testapp/tasks.py``). The shared servers are never
stopped or restarted; the test's queues and keys are deleted afterwards.

On RabbitMQ the connection is the lease: a worker that dies loses its TCP connection and
RabbitMQ returns its unacknowledged messages at once (counting the return in the quorum
queue's ``x-delivery-count``); a worker that lives keeps them for as long as it needs, up
to the server's ``consumer_timeout`` (see the long-task test).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from pathlib import Path

import pytest

from asyncjobs.brokers.dead_letters import Reason
from asyncjobs.brokers.rabbitmq.broker import AmqpBroker
from asyncjobs.config import load_config
from example.processes import ManagedProcess, delete_amqp_queues
from tests.faults.workers import (
    kill_worker_child,
    ledger,
    start_worker,
    stop_worker,
    wait_worker_ready,
    worker_children,
    worker_env,
)
from tests.support.helpers import configured_app, wait_until
from tests.testapp import tasks

pytestmark = [pytest.mark.rabbitmq, pytest.mark.redis]

QUEUES = ("default", "other")
MAX_DELIVERIES = 3
WAIT_S = 15.0

StartWorker = Callable[..., ManagedProcess]


@pytest.fixture
def settings(amqp_url: str, redis_url: str, prefix: str) -> dict[str, str]:
    """The ASYNCJOBS_* settings shared by this test's worker and this process."""
    return worker_env(
        broker_url=amqp_url,
        result_backend_url=redis_url,
        prefix=prefix,
        queues=QUEUES,
        extra={
            "ASYNCJOBS_MAX_DELIVERIES": str(MAX_DELIVERIES),
            "ASYNCJOBS_DRAIN_TIMEOUT": "5",  # bounds the stop at teardown
        },
    )


@pytest.fixture
async def broker(
    settings: dict[str, str], amqp_url: str, prefix: str, redis_cleanup: None
) -> AsyncIterator[AmqpBroker]:
    """asyncjobs configured in this process like the worker; queues deleted afterwards."""
    try:
        async with configured_app(load_config(None, environ=settings)) as configured:
            assert isinstance(configured, AmqpBroker)
            yield configured
    finally:
        await delete_amqp_queues(amqp_url, prefix, QUEUES)


@pytest.fixture
def start(broker: AmqpBroker, settings: dict[str, str], tmp_path: Path) -> Iterator[StartWorker]:
    """Starts workers; stops them (then kills their process groups) before the queues go."""
    started: list[ManagedProcess] = []

    def start(*, workers: int = 1, extra: Mapping[str, str] | None = None) -> ManagedProcess:
        env = {**settings, **(extra or {})}
        proc = start_worker(env, workers=workers, log_dir=tmp_path)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        stop_worker(proc, timeout=10)


def counting(
    prefix: str, redis_url: str, event: str, count: int
) -> Callable[[], Awaitable[list[str] | None]]:
    """A probe: the ledger once it holds ``event`` at least ``count`` times."""

    async def probe() -> list[str] | None:
        events = await ledger(redis_url, prefix)
        return events if events.count(event) >= count else None

    return probe


async def test_a_task_on_a_killed_worker_runs_again_without_new_traffic(
    start: StartWorker, broker: AmqpBroker, redis_url: str, prefix: str
) -> None:
    worker = start(workers=1)
    await wait_worker_ready(worker)
    job = await tasks.sleeps.kiq("a", 3.0)
    await wait_until(counting(prefix, redis_url, "start:a", 1), timeout=WAIT_S, what="start:a")

    killed = kill_worker_child(worker)  # SIGKILL mid-task: nothing is settled
    killed_at = time.monotonic()
    # No other message arrives: RabbitMQ returned the message when the connection
    # died, and the child taskiq restarts (about 2 s later) takes it again.
    await wait_until(
        counting(prefix, redis_url, "start:a", 2), timeout=WAIT_S, what="the second start"
    )
    assert time.monotonic() - killed_at < 8.0
    assert killed not in worker_children(worker.pid)

    result = await job.wait_result(timeout=WAIT_S)
    assert result.return_value == "a"
    assert await ledger(redis_url, prefix) == ["start:a", "start:a", "end:a"]
    assert (await broker.queue_depths())["default"][0] == 0
    assert await broker.dead_letter_count("default") == 0


async def test_a_task_that_kills_its_worker_is_dead_lettered_while_others_complete(
    start: StartWorker, broker: AmqpBroker, redis_url: str, prefix: str
) -> None:
    # One task at a time per child (prefetch 1): a child that holds the crashing message
    # holds nothing else, so no `add` is ever returned with it and the counts below are
    # exact. Messages delivered together with a crashing one are the next test's case.
    worker = start(workers=2, extra={"ASYNCJOBS_WORKER_CONCURRENCY": "1"})
    await wait_worker_ready(worker, count=2)
    crash = await tasks.crashes.kiq("boom")
    kicked: list[str] = []

    async def adds_complete(round_: int) -> None:
        expected = [f"add:{round_}:{i}" for i in range(3)]
        for i in range(3):
            await tasks.add.kiq(round_, i)
        kicked.extend(expected)

        async def all_recorded() -> bool:
            events = await ledger(redis_url, prefix)
            return all(event in events for event in expected)

        await wait_until(all_recorded, timeout=WAIT_S, what=f"adds of round {round_}")

    # Every delivery of `crashes` takes a worker child down (os._exit): RabbitMQ returns
    # the message and counts it. Deliveries 1..MAX_DELIVERIES run it; the next one has
    # delivery_count MAX_DELIVERIES + 1 and the worker dead-letters it without running
    # it. Meanwhile, around each crash, other tasks keep completing.
    for crashes_seen in range(1, MAX_DELIVERIES + 1):
        await wait_until(
            counting(prefix, redis_url, "crash:boom", crashes_seen),
            timeout=WAIT_S,
            what=f"crash #{crashes_seen}",
        )
        await adds_complete(crashes_seen)

    async def dead_lettered() -> bool:
        return await broker.dead_letter_count("default") == 1

    await wait_until(dead_lettered, timeout=WAIT_S, what="the crashing task's dead letter")
    await adds_complete(MAX_DELIVERIES + 1)

    [letter] = await broker.dead_letters("default")
    assert letter.reason is Reason.MAX_DELIVERIES
    assert (letter.task_id, letter.task_name) == (crash.task_id, tasks.crashes.task_name)
    # Our record (the worker's), not RabbitMQ's x-delivery-limit backstop (which would
    # only fire after MAX_DELIVERIES + 2 deliveries).
    assert letter.deliveries == MAX_DELIVERIES + 1
    assert not letter.error_message.startswith("dead-lettered by RabbitMQ")
    events = await ledger(redis_url, prefix)
    assert events.count("crash:boom") == MAX_DELIVERIES
    # At least once: an add killed between its record and its ack runs again.
    assert set(events) == {"crash:boom", *kicked}
    assert (await broker.queue_depths())["default"][0] == 0
    assert worker.alive()


async def test_a_long_task_on_a_living_worker_is_started_once(
    start: StartWorker, broker: AmqpBroker, redis_url: str, prefix: str
) -> None:
    # RabbitMQ has no lease to renew: an unacknowledged delivery stays with its consumer
    # for as long as the connection lives, so a second (idle) worker child never gets
    # it. The one limit is the server's `consumer_timeout` (30 minutes by default in
    # RabbitMQ 3.10; rabbitmq.conf `consumer_timeout`, in ms): a delivery unacknowledged
    # for longer makes RabbitMQ close the channel and requeue it, and the task would
    # start again while it still runs (see the README). 5 s stands in for "long" here.
    worker = start(workers=2)
    await wait_worker_ready(worker, count=2)
    job = await tasks.sleeps.kiq("long", 5.0)

    result = await job.wait_result(timeout=WAIT_S)

    assert result.return_value == "long"
    assert await ledger(redis_url, prefix) == ["start:long", "end:long"]
    assert (await broker.queue_depths())["default"] == (0, 2)


async def test_a_task_running_beside_a_crashing_one_is_not_dead_lettered(
    start: StartWorker, broker: AmqpBroker, redis_url: str, prefix: str
) -> None:
    # One child, default concurrency: the bystander and the crashing task are delivered
    # together (and, returned together by the crash, redelivered together). Each crash
    # counts a delivery against both; the worker runs a redelivered message alone, so
    # the bystander completes and only the crashing task is dead-lettered.
    worker = start(workers=1)
    await wait_worker_ready(worker)
    bystander = await tasks.sleeps.kiq("bystander", 1.0)
    crash = await tasks.crashes.kiq("boom")

    async def settled() -> bool:
        events = await ledger(redis_url, prefix)
        letters = await broker.dead_letters("default")
        bystander_dead = any(x.task_id == bystander.task_id for x in letters)
        return bool(letters) and ("end:bystander" in events or bystander_dead)

    await wait_until(settled, timeout=WAIT_S + 10, what="the crash loop to end")
    events = await ledger(redis_url, prefix)
    letters = await broker.dead_letters("default")
    assert [(x.task_id, x.reason) for x in letters] == [(crash.task_id, Reason.MAX_DELIVERIES)]
    assert "end:bystander" in events, events
    assert events.count("crash:boom") == MAX_DELIVERIES, events
