"""The worker's short ways (issue 22): which tasks are called directly and which still go
through taskiq's ``run_task``, and a full worker fetching in batches, not a message per
freed slot. Real receiver on ``memory://`` in the test's loop."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Any

import pytest
from taskiq import Context, TaskiqDepends

from asyncjobs import App, configured, task
from asyncjobs.brokers.base import Delivery
from asyncjobs.brokers.memory.server import discard_server
from asyncjobs.worker import AsyncJobsReceiver, WorkerSettings
from asyncjobs.worker import receiver as receiver_module
from asyncjobs.worker.task_call import is_direct
from tests.support.helpers import wait_until

GATES: dict[int, asyncio.Event] = {}
DONE: set[int] = set()


@task
async def plain(x: int) -> int:
    return x + 1


@task
async def returns_nothing() -> None:
    return None


@task
async def with_context(x: int, context: Context = TaskiqDepends()) -> str:
    return f"{x}:{context.message.task_id}"


@task
def in_a_thread(x: int) -> int:
    return x * 3


@task
async def held(i: int) -> int:
    await GATES.setdefault(i, asyncio.Event()).wait()
    DONE.add(i)
    return i


@pytest.fixture
async def app(prefix: str) -> AsyncIterator[App]:
    async with configured({"BROKER_URL": "memory://", "KEY_PREFIX": prefix}) as made:
        yield made
    discard_server("memory://", prefix)
    GATES.clear()
    DONE.clear()


async def start(app: App, concurrency: int) -> tuple[AsyncJobsReceiver, asyncio.Event, Any]:
    app.broker.is_worker_process = True
    settings = WorkerSettings(
        concurrency=concurrency, drain_timeout_s=5.0, fetch_block_s=0.1, owns_process=False
    )
    pool = ThreadPoolExecutor(2)
    receiver = AsyncJobsReceiver(app.broker, executor=pool, settings=settings, app=app)
    finish = asyncio.Event()
    listening = asyncio.create_task(receiver.listen(finish))
    return receiver, finish, (listening, pool)


async def stop(app: App, finish: asyncio.Event, running: Any) -> None:
    listening, pool = running
    for gate in GATES.values():
        gate.set()
    finish.set()
    await asyncio.wait_for(listening, 15)
    await app.broker.shutdown()
    app.broker.is_worker_process = False
    pool.shutdown()


def test_only_async_tasks_without_dependencies_are_called_directly(app: App) -> None:
    receiver = AsyncJobsReceiver(app.broker, settings=WorkerSettings(concurrency=4), app=app)
    for fn, direct in ((plain, True), (with_context, False), (in_a_thread, False)):
        name = fn.task_name
        receiver._prepare_task(name, fn.original_func)
        assert is_direct(receiver, name, fn.original_func) is direct, name


async def test_each_kind_of_task_runs_and_stores_its_result(app: App) -> None:
    # None too (README "Looking a task up by id": every outcome is stored).
    _, finish, running = await start(app, concurrency=4)
    try:
        handles = [
            await plain.kiq(1),
            await with_context.kiq(2),
            await in_a_thread.kiq(3),
            await returns_nothing.kiq(),
        ]
        results = [await h.wait_result(timeout=10) for h in handles]
    finally:
        await stop(app, finish, running)
    assert [r.return_value for r in results] == [2, f"2:{handles[1].task_id}", 9, None]
    assert not any(r.is_err for r in results)


def record_fetches(receiver: AsyncJobsReceiver) -> list[int]:
    """What the receiver asks for at each fetch (``max_messages``)."""
    asked: list[int] = []
    fetch = receiver.reliable.fetch

    async def recording(max_messages: int, timeout_s: float) -> Sequence[Delivery]:
        asked.append(max_messages)
        return await fetch(max_messages, timeout_s)

    receiver.reliable.fetch = recording  # type: ignore[method-assign]
    return asked


@asynccontextmanager
async def full_worker(app: App, tasks: int) -> AsyncIterator[tuple[AsyncJobsReceiver, list[int]]]:
    """A 16-slot worker with ``tasks`` held tasks sent, 16 of them running, and the
    fetches it makes from then on; stopped (every gate opened) on the way out."""
    for i in range(tasks):
        await held.kiq(i)
    receiver, finish, running = await start(app, concurrency=16)
    try:
        asked = record_fetches(receiver)
        await wait_until(lambda: _true(len(receiver._running) == 16), what="16 running")
        yield receiver, asked
    finally:
        await stop(app, finish, running)


def release(i: int) -> None:
    """Let held task ``i`` end."""
    GATES.setdefault(i, asyncio.Event()).set()


async def test_a_full_worker_fetches_once_several_slots_are_free(
    app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 16 slots: it fetches again once 2 are free (REFILL_SHARE 8). The wait is made
    # long here, so only the slots decide: freed one by one, never a fetch of one.
    monkeypatch.setattr(receiver_module, "REFILL_WAIT_S", 30.0, raising=False)
    async with full_worker(app, tasks=40) as (receiver, asked):
        for i in range(12):  # one at a time, each run to its end before the next
            release(i)
            await wait_until(lambda i=i: _true(i in DONE), what=f"task {i} done")
        await wait_until(lambda: _true(len(receiver._running) == 16), what="refilled")
    assert asked, "no fetch after the first"
    assert min(asked) >= 2, asked


async def test_the_wait_for_more_slots_is_bounded(
    app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(receiver_module, "REFILL_WAIT_S", 0.05)
    async with full_worker(app, tasks=20) as (_, asked):
        release(0)  # one slot only, and no other
        await wait_until(lambda: _true(1 in asked), what="a fetch of the one free slot")


async def _true(value: bool) -> bool:
    return value
