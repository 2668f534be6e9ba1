"""``kiq_sync()``: sync code sends from any thread of any process, through one client per
process; ``kiq()`` where no event loop runs fails at once instead of leaving a coroutine
nobody awaits; arguments are checked before anything is sent."""

from __future__ import annotations

import asyncio
import gc
import multiprocessing
import os
import threading
import time
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextvars import ContextVar
from typing import TypeVar

import pytest
from taskiq.message import TaskiqMessage

from asyncjobs import Hooks, current_app, current_broker
from asyncjobs.brokers.base import process_name
from asyncjobs.config import AsyncJobsConfig, load_config
from asyncjobs.errors import (
    ArgumentsError,
    BrokerConnectionError,
    NoEventLoopError,
    PayloadTooLargeError,
    SendOutcomeUnknownError,
    SerializationError,
    SyncInEventLoopError,
)
from tests.support.helpers import configured_app, wait_until
from tests.support.queued import NewConnections, queued_task_ids
from tests.testapp.tasks import add

pytestmark = pytest.mark.redis
THREADS, EACH = 16, 25
T = TypeVar("T")


class Money:
    """Not JSON: what a caller might pass by mistake."""


def test_kiq_sync_returns_once_the_broker_has_the_message(
    configured_any: AsyncJobsConfig,
) -> None:
    handle = add.kiq_sync(1, 2)
    assert queued_task_ids(configured_any) == [handle.task_id]


def test_sixteen_threads_send_through_one_client(configured_any: AsyncJobsConfig) -> None:
    def send(_: int) -> list[str]:
        return [add.kiq_sync(i, i).task_id for i in range(EACH)]

    opened = NewConnections(configured_any)
    with ThreadPoolExecutor(THREADS) as pool:
        sent = [task_id for ids in pool.map(send, range(THREADS)) for task_id in ids]
    assert len(set(sent)) == THREADS * EACH
    assert sorted(queued_task_ids(configured_any)) == sorted(sent)  # each once
    # Not a connection per thread: RabbitMQ, the publisher's; Redis, the pipelined one
    # that sends and the pooled one startup declared the streams' groups on.
    assert opened.count(os.getpid()) == (1 if configured_any.transport.name == "rabbitmq" else 2)


def test_kiq_without_a_loop_fails_at_once_naming_kiq_sync(configured: AsyncJobsConfig) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(NoEventLoopError, match=r"use add\.kiq_sync\(\.\.\.\)"):
            add.kiq(1, 2)
        gc.collect()  # an unawaited coroutine would warn when collected
    assert [w for w in caught if "never awaited" in str(w.message)] == []
    assert queued_task_ids(configured) == []


async def test_kiq_sync_in_an_event_loop_fails_at_once_naming_await(
    configured: AsyncJobsConfig,
) -> None:
    with pytest.raises(SyncInEventLoopError, match=r"await \.\.\.kiq\(\.\.\.\)"):
        add.kiq_sync(1, 2)
    with pytest.raises(SyncInEventLoopError):
        add.kiq_on_commit(1, 2)


@pytest.mark.parametrize(
    ("args", "kwargs", "reason"),
    [
        ((1,), {}, "missing a required argument: 'b'"),
        ((1, 2, 3), {}, "too many positional arguments"),
        ((1, 2), {"c": 3}, "unexpected keyword argument 'c'"),
    ],
)
async def test_arguments_that_do_not_bind_fail_before_anything_is_sent(
    configured_any: AsyncJobsConfig, args: tuple[int, ...], kwargs: dict[str, int], reason: str
) -> None:
    with pytest.raises(ArgumentsError, match=reason):
        await add.kiq(*args, **kwargs)
    with pytest.raises(ArgumentsError, match=reason):
        await _in_a_thread(lambda: add.kiq_sync(*args, **kwargs))
    assert await _in_a_thread(lambda: queued_task_ids(configured_any)) == []


def test_a_non_json_argument_is_named_with_its_type(configured: AsyncJobsConfig) -> None:
    with pytest.raises(SerializationError, match=r"argument 'b' \(a Money\)"):
        add.kiq_sync(1, b=Money())  # type: ignore[arg-type]
    with pytest.raises(SerializationError, match=r"argument 2 \(a Money\)"):
        add.kiq_sync(1, Money())  # type: ignore[arg-type]
    assert queued_task_ids(configured) == []


def test_an_oversized_payload_fails_in_the_caller(configured: AsyncJobsConfig) -> None:
    with pytest.raises(PayloadTooLargeError):
        add.kiq_sync("x" * (configured.max_payload_bytes + 1), 2)  # type: ignore[arg-type]
    assert queued_task_ids(configured) == []


@pytest.mark.parametrize("scheme", ["redis", "amqp"])
async def test_a_dead_broker_fails_the_sync_send_naming_it_password_masked(
    scheme: str, free_port: int
) -> None:
    url = f"{scheme}://guest:secret@127.0.0.1:{free_port}/"
    async with configured_app(load_config({"BROKER_URL": url, "SEND_TIMEOUT": 2}, environ={})):
        started = time.monotonic()
        with pytest.raises(BrokerConnectionError) as raised:
            await _in_a_thread(lambda: add.kiq_sync(1, 2))
    assert time.monotonic() - started < 2 + 5  # SEND_TIMEOUT plus the sync margin
    assert f"127.0.0.1:{free_port}" in str(raised.value)
    assert "secret" not in str(raised.value)


def test_a_blocked_sending_loop_ends_the_wait_with_outcome_unknown(
    configured: AsyncJobsConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The wait is bounded even when the loop that sends never gets to it."""
    import asyncjobs.kicker

    monkeypatch.setattr(asyncjobs.kicker, "SYNC_MARGIN_S", 0.1)
    current_app().config = configured.model_copy(update={"send_timeout_s": 0.2})
    add.kiq_sync(1, 1)  # the client's loop is up
    release = threading.Event()
    home = current_broker().home.loop_for()
    home.call_soon_threadsafe(release.wait, 10)  # blocks that loop until released
    try:
        with pytest.raises(SendOutcomeUnknownError, match=r"did not finish within 0\.3 s"):
            add.kiq_sync(2, 2)
    finally:
        release.set()


def test_the_callers_context_reaches_the_send_hooks(configured: AsyncJobsConfig) -> None:
    """Tracing context and baggage travel in contextvars: the send runs in the caller's."""
    tenant: ContextVar[str] = ContextVar("tenant", default="none")
    seen: list[str] = []

    class Seen(Hooks):
        async def on_send(self, message: TaskiqMessage) -> None:
            seen.append(tenant.get())

    current_app().add_hooks(Seen())

    def send_as(name: str) -> None:
        tenant.set(name)
        add.kiq_sync(1, 2)

    threads = [threading.Thread(target=send_as, args=(f"t{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(seen) == ["t0", "t1", "t2", "t3"]


def test_a_forked_child_sends_on_connections_of_its_own(configured_any: AsyncJobsConfig) -> None:
    """gunicorn --preload, multiprocessing: the parent sent before the fork; the child
    sends through its own loop and connections, and the parent's still work, even after
    the child collected its garbage (the parent's loop and sockets, copied into the
    child, share their epoll instance and descriptors with the parent: closing them there
    would unregister the parent's)."""
    first = add.kiq_sync(1, 1).task_id
    opened = NewConnections(configured_any)
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    with warnings.catch_warnings():  # fork() in a process with threads: that is the case
        warnings.simplefilter("ignore", DeprecationWarning)
        child = context.Process(target=_send_in_child, args=(results, opened))
        child.start()
    child_pid, child_id, child_connections = results.get(timeout=30)
    child.join(30)
    assert child.exitcode == 0
    last = add.kiq_sync(3, 3).task_id
    assert queued_task_ids(configured_any) == [first, child_id, last]
    assert child_pid != os.getpid() and child_connections >= 1
    assert opened.count(os.getpid()) == 0  # the parent went on with its own


def _send_in_child(
    results: multiprocessing.Queue[tuple[int, str, int]], opened: NewConnections
) -> None:
    task_id = add.kiq_sync(2, 2).task_id
    gc.collect()
    pid = os.getpid()
    assert process_name().endswith(f":{pid}")
    results.put((pid, task_id, opened.count(pid)))


async def _in_a_thread(call: Callable[[], T]) -> T:
    return await asyncio.to_thread(call)


def test_at_exit_the_client_is_closed_not_dropped(configured_any: AsyncJobsConfig) -> None:
    """What the process's exit runs (atexit): the connections of asyncjobs' own loop are
    closed there, so the broker sees a close, not a dropped socket."""
    opened = NewConnections(configured_any)
    add.kiq_sync(1, 2)
    assert opened.count(os.getpid()) >= 1
    home = current_broker().home
    assert home.own_loop_running
    home.close_own_loop(timeout_s=10)
    assert not home.own_loop_running

    async def all_closed() -> bool:  # the broker notices a closed socket on its next turn
        return await asyncio.to_thread(opened.count, os.getpid()) == 0

    asyncio.run(wait_until(all_closed, timeout=10, what="the connections closed"))


def test_a_kicker_with_labels_sends_synchronously_too(configured: AsyncJobsConfig) -> None:
    """``fn.kicker().with_labels(delay=...)`` has the sync twin as well: the message waits
    in the delayed set, not in the stream."""
    import redis

    from asyncjobs.brokers.redis.delayed import delayed_key

    add.kicker().with_labels(delay=3600).kiq_sync(1, 2)
    assert queued_task_ids(configured) == []
    with redis.Redis.from_url(configured.broker_url) as conn:
        assert conn.zcard(delayed_key(configured.key_prefix, "default")) == 1
