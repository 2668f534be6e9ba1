"""``await kiq()`` from whatever event loop calls it: an ASGI server's, several at once
(``runserver`` runs each async view in a loop of its own), ``async_to_sync`` in WSGI
threads, one ``asyncio.run`` after another in a command. The broker client lives in one
loop per process; a send from any other loop is handed to it, so no connection is ever
used from two loops."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import pytest
from asgiref.sync import async_to_sync

from asyncjobs import current_broker, job
from asyncjobs.config import AsyncJobsConfig
from asyncjobs.errors import NoEventLoopError
from tests.support.queued import NewConnections, queued_task_ids
from tests.support.worker_harness import Worker
from tests.testapp.tasks import add

pytestmark = pytest.mark.redis
LOOPS, EACH = 8, 25
T = TypeVar("T")


async def send_from_a_loop(count: int) -> list[str]:
    """Concurrent sends from the calling loop."""
    handles = await asyncio.gather(*(add.kiq(i, i) for i in range(count)))
    return [handle.task_id for handle in handles]


def in_threads(target: Callable[[], list[str]], threads: int) -> list[str]:
    with ThreadPoolExecutor(threads) as pool:
        futures = [pool.submit(target) for _ in range(threads)]
        return [task_id for future in futures for task_id in future.result(timeout=60)]


async def test_many_loops_at_once_beside_the_servers_loop(configured_any: AsyncJobsConfig) -> None:
    """An ASGI server's loop holds the client (its lifespan claimed it); eight other
    loops send at the same time as it does (runserver's case on RabbitMQ answered 500:
    channels closed with their request's loop)."""
    await current_broker().home.claim()
    here = asyncio.create_task(send_from_a_loop(EACH))
    elsewhere = await asyncio.to_thread(
        in_threads, lambda: asyncio.run(send_from_a_loop(EACH)), LOOPS
    )
    sent = [*await here, *elsewhere]
    assert len(set(sent)) == (LOOPS + 1) * EACH
    queued = await asyncio.to_thread(queued_task_ids, configured_any)
    assert sorted(queued) == sorted(sent)  # each once
    assert not current_broker().home.own_loop_running  # the client lives in this loop


def test_many_loops_at_once_without_a_servers_loop(configured_any: AsyncJobsConfig) -> None:
    """runserver and WSGI: no loop runs in the main thread, every request's loop is
    short-lived; the client lives in asyncjobs' own loop."""
    opened = NewConnections(configured_any)
    sent = in_threads(lambda: asyncio.run(send_from_a_loop(EACH)), LOOPS)
    assert len(set(sent)) == LOOPS * EACH
    assert sorted(queued_task_ids(configured_any)) == sorted(sent)
    assert 1 <= opened.count(os.getpid()) <= 2
    assert current_broker().home.own_loop_running


def test_async_to_sync_from_many_threads(configured_any: AsyncJobsConfig) -> None:
    """``async_to_sync`` of a function that awaits ``kiq()`` works from any thread (each
    call runs in a loop of its own)."""

    async def send_one() -> str:
        return (await add.kiq(1, 2)).task_id

    send = async_to_sync(send_one)
    sent = in_threads(lambda: [send() for _ in range(EACH)], 16)
    assert sorted(queued_task_ids(configured_any)) == sorted(sent)


def test_kiq_itself_handed_to_a_runner_fails_clearly(configured: AsyncJobsConfig) -> None:
    """``async_to_sync(fn.kiq)`` and ``asyncio.run(fn.kiq(...))`` make the coroutine
    before a loop runs: the same clear error as a bare ``kiq()``, and nothing sent. asgiref
    takes ``kiq`` for the coroutine function it is (its "non-async-marked" warning would
    be an error in this suite)."""
    with pytest.raises(NoEventLoopError, match=r"a function that awaits add\.kiq"):
        async_to_sync(add.kiq)(1, 2)
    with pytest.raises(NoEventLoopError, match=r"use add\.kiq_sync"):
        asyncio.run(add.kiq(1, 2))
    assert queued_task_ids(configured) == []


def test_one_asyncio_run_after_another(configured_any: AsyncJobsConfig) -> None:
    """A management command's ``asyncio.run``, then another: the client lives in
    asyncjobs' own loop, not in one that ends (it would leave its connections unclosed),
    and serves each run in turn on the same connections."""
    opened = NewConnections(configured_any)
    sent = [asyncio.run(send_from_a_loop(1))[0] for _ in range(3)]
    assert queued_task_ids(configured_any) == sent
    assert current_broker().home.own_loop_running
    assert 1 <= opened.count(os.getpid()) <= 2


async def test_a_handle_is_read_from_any_loop(
    start_any_worker: Callable[..., object], configured_any: AsyncJobsConfig
) -> None:
    """A result store's connections belong to one loop too: a handle from a sync send
    is awaited in a loop of its own, in another thread."""
    worker = await start_any_worker()  # type: ignore[misc]
    assert isinstance(worker, Worker)

    def send_and_wait() -> int:
        handle = add.kiq_sync(20, 22)
        result = asyncio.run(handle.wait_result(timeout=15))
        again = asyncio.run(job(handle.task_id).get_result())
        assert again.return_value == result.return_value
        return int(result.return_value)

    assert await asyncio.to_thread(send_and_wait) == 42
    assert current_broker().home.loop_for() is asyncio.get_running_loop()  # the worker's
