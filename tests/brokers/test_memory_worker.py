"""The real worker on ``memory://``: an asyncjobs app configured with ``memory://`` and
the asyncjobs receiver in the test's event loop, as ``tests/worker_harness.py`` runs it
on Redis. Sends only enqueue; the receiver fetches, runs, retries with backoff,
dead-letters and stores results, all in this process."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import defaultdict
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from asyncjobs import App, Backoff, configured, failed_attempts, task
from asyncjobs.brokers.dead_letters import Reason
from asyncjobs.brokers.memory.broker import MemoryBroker
from asyncjobs.brokers.memory.results import MemoryResultStore
from asyncjobs.brokers.memory.server import discard_server
from asyncjobs.worker import AsyncJobsReceiver, WorkerSettings
from tests.support.helpers import wait_until

BACKOFF = Backoff(base_s=0.2, factor=2.0, max_s=1.0, jitter=0.0)
LATE_S = 0.3  # a retry is fetched this long after it is due at most (slow CI included)
RUNS: defaultdict[str, list[float]] = defaultdict(list)  # tag -> when each attempt began
GATES: dict[str, asyncio.Event] = {}


@task
async def double(x: int) -> int:
    return 2 * x


@task
async def waits_for_its_gate(tag: str) -> str:
    await GATES[tag].wait()
    return tag


@task(max_attempts=4, backoff=BACKOFF)
async def fails_twice(tag: str) -> int:
    RUNS[tag].append(time.time())
    if len(RUNS[tag]) <= 2:
        raise ConnectionError(f"attempt {len(RUNS[tag])} of {tag} failed")
    return len(RUNS[tag])


@task(max_attempts=2, backoff=BACKOFF)
async def always_fails(tag: str) -> None:
    RUNS[tag].append(time.time())
    raise RuntimeError(f"{tag} fails")


@pytest.fixture
async def app(prefix: str) -> AsyncIterator[App]:
    settings = {"BROKER_URL": "memory://", "KEY_PREFIX": prefix, "MAX_ATTEMPTS": 3}
    async with configured(settings) as made:
        yield made
    discard_server("memory://", prefix)


@pytest.fixture
async def worker(app: App) -> AsyncIterator[AsyncJobsReceiver]:
    """The asyncjobs receiver on the app's broker, drained and shut down afterwards."""
    broker = app.broker
    broker.is_worker_process = True
    settings = WorkerSettings(
        concurrency=10, drain_timeout_s=5.0, fetch_block_s=0.2, owns_process=False
    )
    with ThreadPoolExecutor(2) as pool:
        receiver = AsyncJobsReceiver(broker, executor=pool, settings=settings, app=app)
        finish = asyncio.Event()
        listening = asyncio.create_task(receiver.listen(finish))
        yield receiver
        finish.set()
        await asyncio.wait_for(listening, 15)
        await broker.shutdown()
        broker.is_worker_process = False


def tag() -> str:
    return f"t{next(_tags)}"


_tags = itertools.count()


async def test_the_app_runs_on_memory_with_its_result_store(app: App) -> None:
    assert isinstance(app.broker, MemoryBroker)
    assert isinstance(app.result_store, MemoryResultStore)


async def test_a_send_only_enqueues_and_the_worker_runs_it(
    app: App, worker: AsyncJobsReceiver
) -> None:
    name = tag()
    GATES[name] = asyncio.Event()
    # It returns while the task waits for its gate: nothing ran inside the send.
    handle = await asyncio.wait_for(waits_for_its_gate.kiq(name), 2.0)
    assert not await handle.is_ready()
    GATES[name].set()
    result = await handle.wait_result(timeout=5)
    assert (result.is_err, result.return_value) == (False, name)
    assert (await (await double.kiq(21)).wait_result(timeout=5)).return_value == 42


async def test_a_failing_task_is_retried_after_its_backoff(
    app: App, worker: AsyncJobsReceiver
) -> None:
    name = tag()
    handle = await fails_twice.kiq(name)
    result = await handle.wait_result(timeout=10)
    assert (result.is_err, result.return_value) == (False, 3)
    gaps = [after - before for before, after in itertools.pairwise(RUNS[name])]
    for failed, gap in enumerate(gaps, start=1):
        low, high = BACKOFF.bounds_s(failed)
        assert low - 0.01 <= gap <= high + LATE_S, f"gap {failed}: {gap:.3f} s"
    recorded = await failed_attempts(handle.task_id)
    assert [(r["attempt"], r["error_type"]) for r in recorded] == [
        (1, "ConnectionError"),
        (2, "ConnectionError"),
    ]
    assert [h["attempt"] for h in result.labels["asyncjobs_history"]] == [1, 2]


async def test_a_task_failing_every_attempt_is_dead_lettered(
    app: App, worker: AsyncJobsReceiver
) -> None:
    name = tag()
    handle = await always_fails.kiq(name)

    async def dead() -> list[object]:
        return list(await app.broker.dead_letters("default"))

    [record] = await wait_until(dead, what="a dead letter")
    assert (record.reason, record.attempts, record.task_id) == (  # type: ignore[attr-defined]
        Reason.MAX_ATTEMPTS,
        2,
        handle.task_id,
    )
    assert len(RUNS[name]) == 2
    result = await handle.wait_result(timeout=1)  # the last failure is stored as the result
    assert result.is_err
    assert isinstance(app.broker, MemoryBroker)
    await app.broker.join(timeout_s=1)  # nothing left: not waiting, running nor scheduled


async def test_join_returns_once_the_worker_finished_everything_retries_included(
    app: App, worker: AsyncJobsReceiver
) -> None:
    names = [tag() for _ in range(3)]
    handles = [await fails_twice.kiq(name) for name in names]
    broker = app.broker
    assert isinstance(broker, MemoryBroker)
    await broker.join(timeout_s=10)
    assert all(len(RUNS[name]) == 3 for name in names)
    assert all([await handle.is_ready() for handle in handles])
