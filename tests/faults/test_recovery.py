"""Recovery from a crash at full speed, on both brokers, with real ``taskiq worker``s.

A worker SIGKILLed with 20 long tasks running: they run again side by side (a first-time
crash suspect runs beside others), and fresh messages sent after the kill are not held
back by them. Isolating every suspect, as asyncjobs once did, ran them one at a time:
20 tasks of 10 s took over three minutes and no fresh message ran meanwhile. (A task
that keeps killing its worker still runs alone from its last deliveries on:
tests/faults/test_redis_faults.py, tests/faults/test_amqp_faults.py.)
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.conftest import AMQP_URL, require_server
from tests.faults.workers import (
    configured_like,
    kill_worker_child,
    ledger,
    running_worker,
    wait_worker_ready,
    worker_env,
)
from tests.support.helpers import wait_until
from tests.testapp.tasks import add, sleeps

pytestmark = [pytest.mark.redis, pytest.mark.timeout(150)]

LEASE_S = 3.0
LONG_TASKS, LONG_TASK_S = 20, 10.0
FRESH_TASKS = 200


@pytest.fixture(params=["redis", "rabbitmq"])
async def settings(
    request: pytest.FixtureRequest, redis_url: str, prefix: str, redis_cleanup: None
) -> AsyncIterator[dict[str, str]]:
    broker_url, results = redis_url, None
    if request.param == "rabbitmq":
        require_server(AMQP_URL, "RabbitMQ")
        broker_url, results = AMQP_URL, redis_url
    yield worker_env(
        broker_url=broker_url,
        result_backend_url=results,
        prefix=prefix,
        extra={"ASYNCJOBS_LEASE_TIMEOUT": str(LEASE_S), "ASYNCJOBS_DRAIN_TIMEOUT": "3"},
    )
    if request.param == "rabbitmq":
        from example.processes import delete_amqp_queues

        await delete_amqp_queues(AMQP_URL, prefix, ("default", "other"))


async def until_ledger(
    redis_url: str, prefix: str, done: str, count: int, *, timeout: float
) -> Counter[str]:
    """Wait until ``count`` ledger events start with ``done``; the events' counts."""
    events: Counter[str] = Counter()

    async def probe() -> bool:
        nonlocal events
        events = Counter(await ledger(redis_url, prefix))
        return sum(n for event, n in events.items() if event.startswith(done)) >= count

    await wait_until(probe, timeout=timeout, interval=0.1, what=f"{count} x {done}...")
    return events


async def test_a_killed_workers_tasks_run_again_beside_fresh_ones(
    settings: dict[str, str], redis_url: str, prefix: str, tmp_path: Path
) -> None:
    async with configured_like(settings) as broker:
        with running_worker(settings, log_dir=tmp_path) as proc:
            await wait_worker_ready(proc, timeout=30)
            for i in range(LONG_TASKS):
                await sleeps.kiq(f"long{i}", LONG_TASK_S)
            await until_ledger(redis_url, prefix, "start:long", LONG_TASKS, timeout=30)

            kill_worker_child(proc)  # 20 tasks in flight, none settled
            killed_at = time.monotonic()
            for i in range(FRESH_TASKS):
                await add.kiq(i, 0)
            sent_at = time.monotonic()
            await until_ledger(redis_url, prefix, "add:", FRESH_TASKS, timeout=10)
            fresh_done_s = time.monotonic() - sent_at

            events = await until_ledger(
                redis_url, prefix, "end:long", LONG_TASKS, timeout=LEASE_S + 15
            )
            long_done_s = time.monotonic() - killed_at
            print(
                f"{broker.transport_name}: {FRESH_TASKS} fresh tasks done {fresh_done_s:.1f} s "
                f"after sending; {LONG_TASKS} killed tasks done {long_done_s:.1f} s after the "
                f"kill (lease {LEASE_S:g} s, tasks of {LONG_TASK_S:g} s)"
            )
            for i in range(LONG_TASKS):
                assert (events[f"start:long{i}"], events[f"end:long{i}"]) == (2, 1), events
            assert await broker.dead_letter_count("default") == 0
