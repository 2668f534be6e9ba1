"""The worker registry and per-minute counters (``asyncjobs.worker.registry``), written
by real ``taskiq worker`` processes and read through ``asyncjobs.monitor`` and
``asyncjobs workers``. Heartbeats every 0.5 s (``MONITOR_HEARTBEAT``): TTL 1.5 s."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import orjson
import pytest
from redis.asyncio import Redis

from asyncjobs.app import App, current_app
from asyncjobs.brokers.inspection import QueueStats, inspect_queues
from asyncjobs.config import AsyncJobsConfig, load_config
from asyncjobs.errors import MonitorUnavailableError
from asyncjobs.monitor import WorkerInfo, live_workers, queue_history
from asyncjobs.worker.process_hooks import worker_hooks
from asyncjobs.worker.registry import RegistryHooks, minute_of
from example.processes import REPO_ROOT, ManagedProcess
from tests.conftest import AMQP_URL
from tests.faults.workers import (
    configured_like,
    ledger,
    running_worker,
    wait_worker_ready,
    worker_children,
    worker_env,
)
from tests.support.helpers import wait_until
from tests.testapp import tasks

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

FAST = {"ASYNCJOBS_MONITOR_HEARTBEAT": "0.5", "ASYNCJOBS_DRAIN_TIMEOUT": "1"}
SCRIPT = "import sys; from asyncjobs.django.cli import main; sys.exit(main())"


def cli(env: dict[str, str], *argv: str) -> subprocess.CompletedProcess[str]:
    """``asyncjobs ...`` in a process of its own, on the workers' settings."""
    full = {k: v for k, v in os.environ.items() if not k.startswith("ASYNCJOBS_")}
    full |= {"DJANGO_SETTINGS_MODULE": "tests.django_settings", **env}
    return subprocess.run(
        [sys.executable, "-c", SCRIPT, *argv],
        cwd=REPO_ROOT,
        env=full,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def workers_with(pids: Sequence[int]) -> list[WorkerInfo]:
    found = await live_workers()
    return found if sorted(w.pid for w in found) == sorted(pids) else []


@contextlib.asynccontextmanager
async def listed_worker(
    env: dict[str, str], log_dir: Path, timeout: float = 10
) -> AsyncIterator[tuple[ManagedProcess, WorkerInfo]]:
    """A real worker on ``env``'s settings (asyncjobs configured alike in this process),
    once the registry lists its task process: (the worker, its entry)."""
    async with configured_like(env):
        with running_worker(env, log_dir=log_dir) as proc:
            await wait_worker_ready(proc)
            (child,) = worker_children(proc.pid)
            found = await wait_until(
                lambda: workers_with([child]), timeout=timeout, what="the worker"
            )
            yield proc, found[0]


async def test_a_worker_is_listed_with_its_running_tasks_until_it_drains(
    redis_url: str, prefix: str, redis_cleanup: None, tmp_path: Path
) -> None:
    env = worker_env(broker_url=redis_url, prefix=prefix, extra=FAST)
    async with listed_worker(env, tmp_path) as (proc, info):
        child = info.pid
        assert info.queues == ("default", "other") and info.concurrency == 500
        assert info.id.startswith(f"{info.host}:{child}:") and info.running == 0
        assert info.heartbeat_at >= info.started_at

        for tag in ("a", "b"):
            await tasks.sleeps.kiq(tag, 30)

        async def running_two() -> bool:
            found = await live_workers()
            return len(found) == 1 and found[0].running == 2

        await wait_until(running_two, timeout=10, what="2 running tasks")
        done = await asyncio.to_thread(cli, env, "workers", "--json")
        assert done.returncode == 0, done.stderr
        (listed,) = orjson.loads(done.stdout)["workers"]
        assert listed["pid"] == child and listed["running"] == 2
        assert listed["queues"] == ["default", "other"] and listed["id"] == info.id
        table = await asyncio.to_thread(cli, env, "workers")
        assert table.returncode == 0 and str(child) in table.stdout
        assert table.stdout.startswith("HOST")

        proc.stop(timeout_s=15)  # SIGTERM: the tasks are cut off after 1 s
        assert proc.stopped_cleanly()
        assert await live_workers() == []  # at once, no TTL to wait for


async def test_a_killed_worker_disappears_when_its_heartbeat_expires(
    redis_url: str, prefix: str, redis_cleanup: None, tmp_path: Path
) -> None:
    env = worker_env(broker_url=redis_url, prefix=prefix, extra=FAST)
    async with listed_worker(env, tmp_path) as (proc, info):
        child = info.pid
        proc.kill()  # SIGKILL, the manager with it: nothing unregisters
        killed_at = time.monotonic()
        assert [w.pid for w in await live_workers()] == [child]

        async def gone() -> bool:
            return await live_workers() == []

        await wait_until(gone, timeout=5, what="the TTL (1.5 s) to expire")
        assert time.monotonic() - killed_at < 5


async def test_the_minute_counts_runs_failures_and_dead_letters(
    redis_url: str, prefix: str, redis_cleanup: None, tmp_path: Path
) -> None:
    env = worker_env(broker_url=redis_url, prefix=prefix, extra=FAST)
    async with configured_like(env):
        with running_worker(env, log_dir=tmp_path) as proc:
            await wait_worker_ready(proc)
            for i in range(5):
                await tasks.add.kiq(i, i)
            for tag in ("x", "y"):
                await tasks.always_fails.kiq(tag)  # 3 attempts, then dead-lettered

            async def counted() -> dict[str, int]:
                history = await queue_history(["default"], minutes=3)  # a minute may turn
                points = history["default"]
                totals = {
                    "succeeded": sum(p.succeeded for p in points),
                    "failed": sum(p.failed for p in points),
                    "dead_lettered": sum(p.dead_lettered for p in points),
                }
                expected = {"succeeded": 5, "failed": 6, "dead_lettered": 2}
                return totals if totals == expected else {}

            await wait_until(counted, timeout=20, what="the counts of 5 + 2 x 3 runs")
            history = await queue_history(minutes=3)
            assert set(history) == {"default", "other"}
            assert all(p.succeeded == p.failed == 0 for p in history["other"])
            assert len(await ledger(redis_url, prefix)) == 11


async def test_one_worker_samples_the_backlog_each_minute(
    configured: AsyncJobsConfig, redis_url: str
) -> None:
    """Two workers' heartbeats: one inspects the queues, once per minute."""
    app = current_app()
    store = app.monitor_store
    assert store is not None

    async def not_near_a_minute_turn() -> bool:  # the beats below must share a minute
        return time.time() % 60 < 55

    await wait_until(not_near_a_minute_turn, timeout=10, interval=0.2, what="a new minute")
    for i in range(3):
        await tasks.add.kiq(i, i)  # nobody consumes: a backlog of 3
    inspected: list[tuple[str, ...]] = []

    async def inspect(queues: Sequence[str]) -> list[QueueStats]:
        inspected.append(tuple(queues))
        return await inspect_queues(app.broker, queues)

    hooks = [
        RegistryHooks(
            store, inspect, queues=["default"], all_queues=app.config.queues, concurrency=1
        )
        for _ in range(2)
    ]
    for _ in range(3):  # heartbeats in the same minute sample once
        for hook in hooks:
            await hook.beat()
    await asyncio.gather(*(h._sample for h in hooks if h._sample is not None))
    minute = minute_of(time.time())
    assert inspected == [("default", "other")]
    history = await queue_history(minutes=1)
    assert history["default"][-1].backlog == 3 and history["other"][-1].backlog == 0
    assert history["default"][-1].minute.timestamp() == minute
    for hook in hooks:
        await hook.on_worker_stopped()


async def test_rabbitmq_keeps_its_registry_in_the_result_backends_redis(
    redis_url: str, prefix: str, redis_cleanup: None, tmp_path: Path, amqp_url: str
) -> None:
    from example.processes import delete_amqp_queues

    env = worker_env(broker_url=amqp_url, prefix=prefix, result_backend_url=redis_url, extra=FAST)
    try:
        async with listed_worker(env, tmp_path, timeout=15) as (proc, _):
            await tasks.add.kiq(1, 2)

            async def one_success() -> bool:
                points = (await queue_history(["default"], minutes=2))["default"]
                return sum(p.succeeded for p in points) == 1

            await wait_until(one_success, timeout=15, what="the run counted")
            proc.stop(timeout_s=15)
            assert await live_workers() == []
    finally:
        await delete_amqp_queues(amqp_url, prefix, ("default", "other"))


async def test_rabbitmq_alone_keeps_no_registry(tmp_path: Path) -> None:
    settings = {"BROKER_URL": AMQP_URL, "KEY_PREFIX": "nomonitor"}
    app = App.from_config(load_config(settings, environ={}))
    assert app.monitor_store is None
    assert not any(isinstance(h, RegistryHooks) for h in worker_hooks(app))
    previous = app.activate()
    try:
        with pytest.raises(MonitorUnavailableError, match="set RESULT_BACKEND_URL to a redis"):
            await live_workers()
        with pytest.raises(MonitorUnavailableError, match="rabbitmq cannot"):
            await queue_history()
    finally:
        from asyncjobs.app import restore

        restore(previous)
        await app.close()
    env = {"ASYNCJOBS_BROKER_URL": AMQP_URL}
    done = await asyncio.to_thread(cli, env, "workers")
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.startswith("asyncjobs: no store keeps the worker registry")
    assert "RESULT_BACKEND_URL" in done.stderr and len(done.stderr.splitlines()) == 1


async def test_monitor_off_writes_nothing(
    redis_url: str, prefix: str, conn: Redis, tmp_path: Path
) -> None:
    env = worker_env(broker_url=redis_url, prefix=prefix, extra={**FAST, "ASYNCJOBS_MONITOR": "0"})
    async with configured_like(env):
        assert current_app().monitor_store is None
        with running_worker(env, log_dir=tmp_path) as proc:
            await wait_worker_ready(proc)
            await tasks.add.kiq(1, 1)
            await wait_until(lambda: ledger(redis_url, prefix), what="the task to run")
            with pytest.raises(MonitorUnavailableError, match="MONITOR is false"):
                await live_workers()
            proc.stop(timeout_s=15)  # with a registry, ready registered and stop flushed
            assert proc.stopped_cleanly()
    keys = [key async for key in conn.scan_iter(match=f"{prefix}:monitor*")]
    assert keys == []
