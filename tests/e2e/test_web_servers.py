"""Views send from under real web servers, on Redis and on RabbitMQ: gunicorn's threads
(sync views, ``kiq_sync``), gunicorn ``--preload`` (workers forked from a master that
had sent), ``manage.py runserver`` (async views, each request in an event loop of its
own, several at once). Every request answers 202; the worker counts every visit once;
the broker shows one client per process, never one per thread.
"""

from __future__ import annotations

import asyncio
import sys
import time
import uuid

import orjson
import pytest

from asyncjobs.config import AsyncJobsConfig, load_config
from example.processes import REPO_ROOT, ExampleStack
from tests.support.helpers import wait_until
from tests.support.queued import NewConnections
from tests.support.web_servers import (
    post_from_threads,
    post_in_bursts,
    start_gunicorn,
    start_runserver,
    visits_counted,
    wait_for_visits,
    worker_pids,
)

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(420)]


def broker_config(broker_url: str) -> AsyncJobsConfig:
    return load_config({"BROKER_URL": broker_url}, environ={})


def new_page() -> str:
    return f"p{uuid.uuid4().hex[:12]}"


def settled(stack: ExampleStack, page: str, expected: int) -> int:
    """The visits counted once the worker has drained (SIGTERM: it finishes and settles
    what it holds) and the queue is empty: a message sent twice would show as one more."""
    counted = wait_for_visits(stack, page, expected)
    worker = next(proc for proc in stack.processes if proc.name == "worker")
    worker.stop(30)
    manage = str(REPO_ROOT / "example" / "manage.py")
    report = stack.run_command(
        "inspect", [sys.executable, manage, "asyncjobs", "inspect", "--json"]
    )
    queues = orjson.loads(report[report.index("{") :])["queues"]
    assert [queue["waiting"] for queue in queues] == [0, 0], queues
    assert counted == expected
    return visits_counted(stack, page)


async def test_threaded_gunicorn_sync_views_send_5000(stack: ExampleStack, broker_url: str) -> None:
    """50 client threads x 100 requests to a sync view that sends: 5,000 messages, each
    delivered once, 0 errors; per gunicorn worker one client (Redis: the pipelined
    connection and the pooled one; RabbitMQ: one connection), not one per thread."""
    page = new_page()
    opened = await asyncio.to_thread(NewConnections, broker_config(broker_url))
    master = start_gunicorn(stack, workers=2, threads=25)
    await stack.wait_web_ready(timeout_s=60)
    stack.start_worker(workers=1)

    sent = await asyncio.to_thread(post_from_threads, stack.base_url, f"/visits/{page}", 50, 100)
    assert len(set(sent)) == 5000

    pids = await asyncio.to_thread(worker_pids, master, 2)
    per_process = await asyncio.to_thread(opened.of, *pids)
    most = 1 if broker_url.startswith("amqp") else 2
    # (The kernel may hand every keep-alive connection to one worker: it holds them all.)
    assert all(count <= most for count in per_process.values()), per_process
    assert sum(per_process.values()) >= 1
    assert await asyncio.to_thread(settled, stack, page, 5000) == 5000


async def test_gunicorn_preload_workers_send_on_connections_of_their_own(
    stack: ExampleStack, broker_url: str
) -> None:
    """The master sent before forking two workers: both workers send, each on its own
    connections (named with its pid); the master's are left alone."""
    page = new_page()
    stack.extra_env["PRELOAD_VISIT_PAGE"] = page
    opened = await asyncio.to_thread(NewConnections, broker_config(broker_url))
    master = start_gunicorn(stack, workers=2, threads=4, preload=True)
    await stack.wait_web_ready(timeout_s=60)
    stack.start_worker(workers=1)
    pids = await asyncio.to_thread(worker_pids, master, 2)
    master_before = await asyncio.to_thread(opened.activity, master.pid)
    assert master_before  # it sent before the fork
    quiet_since = time.monotonic()

    sent: list[str] = []

    async def both_sent() -> bool:
        sent.extend(
            await asyncio.to_thread(post_from_threads, stack.base_url, f"/visits/{page}", 8, 5)
        )
        counts = await asyncio.to_thread(opened.of, *pids)
        return all(counts[pid] >= 1 for pid in pids)

    await wait_until(both_sent, timeout=60, interval=0, what="both workers to send")
    assert await asyncio.to_thread(settled, stack, page, len(sent) + 1) == len(sent) + 1
    master_after = await asyncio.to_thread(opened.activity, master.pid)
    elapsed = time.monotonic() - quiet_since
    assert opened.untouched(master_before, master_after, elapsed), (master_before, master_after)


async def test_runserver_async_views_send_from_a_loop_per_request(
    stack: ExampleStack, broker_url: str
) -> None:
    """20 bursts of 20 concurrent requests to an async view that sends: runserver runs
    each in an event loop of its own; every one answers 202 within 5 s, every task is
    delivered once (on RabbitMQ 147 of 200 answered 500 before, on Redis one hung)."""
    page = new_page()
    start_runserver(stack)
    await stack.wait_web_ready(timeout_s=60)
    stack.start_worker(workers=1)
    sent = await post_in_bursts(stack.base_url, f"/visits/{page}/async", 20, 20, 5.0)
    assert len(set(sent)) == 400
    assert await asyncio.to_thread(settled, stack, page, 400) == 400
