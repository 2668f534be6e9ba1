"""Each async task gets its own DB connection, closed when it ends (PostgreSQL)."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.db import connections

from asyncjobs.django.db import DatabaseHygiene
from tests.support.helpers import wait_until
from tests.testapp.models import Note


def _pg_reachable() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5432), 1):
            return True
    except OSError:
        return False


@pytest.fixture
async def pg() -> AsyncIterator[None]:
    if not _pg_reachable():
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL at 127.0.0.1:5432 is unreachable and CI is set")
        pytest.skip("PostgreSQL is unreachable")

    def create() -> None:
        with connections["pg"].schema_editor() as editor:
            editor.execute(f"DROP TABLE IF EXISTS {Note._meta.db_table}")
            editor.create_model(Note)
        connections["pg"].close()

    def drop() -> None:
        with connections["pg"].cursor() as cursor:
            cursor.execute(f"DROP TABLE IF EXISTS {Note._meta.db_table}")
        connections.close_all()

    await asyncio.to_thread(create)
    yield
    await asyncio.to_thread(drop)


def backend_pid(alias: str = "pg") -> int:
    with connections[alias].cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return int(cursor.fetchone()[0])


def alive(pids: list[int]) -> list[int]:
    """Which of ``pids`` are still connected (asked over a separate connection)."""
    try:
        with connections["pg"].cursor() as cursor:
            cursor.execute("SELECT pid FROM pg_stat_activity WHERE pid = ANY(%s)", [pids])
            return [row[0] for row in cursor.fetchall()]
    finally:
        connections["pg"].close()


async def gone(pids: list[int]) -> bool:
    """Whether none of ``pids`` is connected any more."""
    return not await asyncio.to_thread(alive, pids)


async def two_overlapping_tasks(wrap: Callable[[Any], Any]) -> list[tuple[int, int]]:
    """Two tasks that each write through the ORM and stay open until both have."""
    arrived: list[int] = []
    both = asyncio.Event()

    async def body(tag: str) -> tuple[int, int]:
        await Note.objects.using("pg").acreate(text=tag)
        first = await sync_to_async(backend_pid)()
        arrived.append(first)
        if len(arrived) == 2:
            both.set()
        await asyncio.wait_for(both.wait(), 10)
        return first, await sync_to_async(backend_pid)()

    task = wrap(body)
    return list(await asyncio.gather(task("a"), task("b")))


async def test_concurrent_async_tasks_do_not_share_a_connection(pg: None) -> None:
    (a1, a2), (b1, b2) = await two_overlapping_tasks(DatabaseHygiene().wrap_async)
    assert a1 == a2 and b1 == b2, "a task keeps one connection for its whole run"
    assert a1 != b1, "two concurrent tasks must not share one connection"
    # Closed when the tasks end. A backend leaves pg_stat_activity a moment after its
    # client closed the connection, so this waits for it (never closed: it times out).
    await wait_until(lambda: gone([a1, b1]), timeout=5, what="the tasks' connections to close")
    assert await Note.objects.using("pg").acount() == 2


async def test_without_the_hook_async_orm_calls_share_one_connection(pg: None) -> None:
    """The weak spot the hook covers: thread-sensitive calls all run on one thread."""
    (a1, _), (b1, _) = await two_overlapping_tasks(lambda body: body)
    assert a1 == b1
    await sync_to_async(connections.close_all)()


async def test_a_task_after_the_database_dropped_its_connection_still_works(pg: None) -> None:
    hook = DatabaseHygiene()
    first = await hook.wrap_async(lambda: sync_to_async(backend_pid)())()

    await terminate(first)  # as a PostgreSQL restart would
    second = await hook.wrap_async(lambda: sync_to_async(backend_pid)())()
    assert second != first


async def test_sync_tasks_get_djangos_request_semantics(pg: None) -> None:
    hook = DatabaseHygiene()
    thread = ThreadPoolExecutor(1)  # a worker's thread pool thread, reused across tasks
    loop = asyncio.get_running_loop()
    try:
        run = hook.wrap_sync(lambda: backend_pid("pg_persistent"))
        first = await loop.run_in_executor(thread, run)
        await loop.run_in_executor(thread, lambda: None)
        # CONN_MAX_AGE=60: the connection is kept between tasks, like between requests...
        assert await loop.run_in_executor(thread, run) == first
        await terminate(first)
        # ...and after the database dropped it, CONN_HEALTH_CHECKS replaces it.
        assert await loop.run_in_executor(thread, run) != first
        # CONN_MAX_AGE=0 (the default alias): closed after every task.
        default_run = hook.wrap_sync(lambda: backend_pid("pg"))
        await loop.run_in_executor(thread, default_run)
        assert await loop.run_in_executor(thread, lambda: connections["pg"].connection) is None
    finally:
        await loop.run_in_executor(thread, connections.close_all)
        thread.shutdown()


async def terminate(pid: int) -> None:
    """Ends backend ``pid`` and waits until it is gone: pg_terminate_backend only signals
    it, and a health check made before it exits would find the connection usable."""
    await asyncio.to_thread(_terminate, pid)
    await wait_until(lambda: gone([pid]), timeout=5, what=f"backend {pid} to end")


def _terminate(pid: int) -> None:
    with connections["pg"].cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
    connections["pg"].close()
