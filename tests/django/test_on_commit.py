"""Sends that wait for the transaction (PostgreSQL, two connections: aliases ``pg`` and
``pg_persistent``): a rollback sends nothing, a commit sends, a rolled-back savepoint
drops only its own sends, and a commit on one database sends nothing registered on the
other. The task id is fixed at the call."""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterator

import pytest
import redis
from django.db import transaction
from django.test import TestCase

from asyncjobs import current_app
from asyncjobs.config import AsyncJobsConfig
from asyncjobs.django.transactions import DjangoTransactions
from asyncjobs.kicker import JobKicker
from tests.testapp import tasks

pytestmark = pytest.mark.redis
A, B = "pg", "pg_persistent"


class Rollback(Exception):
    pass


@pytest.fixture
def sent(configured: AsyncJobsConfig, redis_url: str) -> Iterator[redis.Redis]:
    """The app configured with Django's transactions; a client to read what was sent."""
    if not _pg_reachable():
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL at 127.0.0.1:5432 is unreachable and CI is set")
        pytest.skip("PostgreSQL is unreachable")
    current_app().transactions = DjangoTransactions()
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


def task_ids(client: redis.Redis, config: AsyncJobsConfig) -> list[str]:
    import orjson

    entries = client.xrange(f"{config.key_prefix}:default")
    return [orjson.loads(fields[b"data"])["task_id"] for _, fields in entries]


def on(alias: str) -> JobKicker[..., int]:
    return tasks.add.kicker().on_commit(using=alias)


@contextlib.contextmanager
def rolled_back(using: str) -> Iterator[None]:
    """A transaction (or savepoint) on ``using`` whose block ends by rolling it back."""
    with contextlib.suppress(Rollback), transaction.atomic(using=using):
        yield
        raise Rollback


def test_a_commit_sends_and_a_rollback_does_not(
    sent: redis.Redis, configured: AsyncJobsConfig
) -> None:
    with transaction.atomic(using=A):
        kept = on(A).kiq_sync(1, 1)
        assert task_ids(sent, configured) == []  # not before the commit
    assert task_ids(sent, configured) == [kept.task_id]  # the id returned at the call
    with rolled_back(A):
        on(A).kiq_sync(2, 2)
    assert task_ids(sent, configured) == [kept.task_id]


def test_a_rolled_back_savepoint_drops_only_its_own_sends(
    sent: redis.Redis, configured: AsyncJobsConfig
) -> None:
    with transaction.atomic(using=A):
        first = on(A).kiq_sync(1, 0)
        with rolled_back(A):
            on(A).kiq_sync(2, 0)
        last = on(A).kiq_sync(3, 0)
    assert task_ids(sent, configured) == [first.task_id, last.task_id]


def test_a_commit_on_another_database_sends_nothing_of_this_one(
    sent: redis.Redis, configured: AsyncJobsConfig
) -> None:
    with transaction.atomic(using=A):
        waiting = on(A).kiq_sync(1, 2)
        with transaction.atomic(using=B):
            on(B).kiq_sync(3, 4)
        assert len(task_ids(sent, configured)) == 1  # B committed: only B's went out
        assert waiting.task_id not in task_ids(sent, configured)
    assert task_ids(sent, configured)[-1] == waiting.task_id


def test_outside_a_transaction_it_sends_at_once(
    sent: redis.Redis, configured: AsyncJobsConfig
) -> None:
    handle = on(A).kiq_sync(5, 6)
    assert task_ids(sent, configured) == [handle.task_id]


def test_captured_by_a_test_cases_on_commit_capture(
    sent: redis.Redis, configured: AsyncJobsConfig
) -> None:
    with rolled_back(A):  # a TestCase's transaction
        with TestCase.captureOnCommitCallbacks(using=A, execute=True) as callbacks:
            handle = on(A).kiq_sync(7, 8)
        assert len(callbacks) == 1
        assert task_ids(sent, configured) == [handle.task_id]


def test_a_task_declared_on_commit_waits_without_asking(
    sent: redis.Redis, configured: AsyncJobsConfig
) -> None:
    with transaction.atomic():  # the default database (kiq_on_commit's default too)
        declared = tasks.add_on_commit.kiq_sync(1, 2)
        shortcut = tasks.add.kiq_on_commit(3, 4)
        assert task_ids(sent, configured) == []
    assert task_ids(sent, configured) == [declared.task_id, shortcut.task_id]


async def test_from_async_code_it_sends_at_once(
    sent: redis.Redis, configured: AsyncJobsConfig
) -> None:
    """An event loop's thread holds no Django transaction (the ORM's atomic blocks are
    sync): an async on-commit send goes out at once."""
    handle = await tasks.add.kicker().on_commit(using=A).kiq(1, 2)
    assert task_ids(sent, configured) == [handle.task_id]


def _pg_reachable() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5432), 1):
            return True
    except OSError:
        return False
