"""Worker processes and producers for the sides of every comparison.

Workers are real processes, one worker process each (``ManagedProcess``: own session, one
log file, SIGKILL of the group as the last resort): ``taskiq worker ... --workers 1``
(asyncjobs, raw taskiq), ``celery -A bench.celery_app worker`` and ``dramatiq
bench.dramatiq_app --processes 1``. Producers live in this process: asyncjobs configured
from the same settings as its worker, a raw taskiq broker built by
``bench.raw_app.make_broker``, or a sync side's ``bench.sync_sides.SyncSender``.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil  # type: ignore[import-untyped]

from bench.sync_sides import CELERY, DRAMATIQ, SyncSender, worker_args
from example.processes import REPO_ROOT, ManagedProcess

ASYNCJOBS = "asyncjobs"
RAW = "raw"
SIDES = (ASYNCJOBS, RAW, CELERY, DRAMATIQ)  # the order of the table's columns
SETTINGS_MODULE = "bench.settings"
QUEUES = ("default", "emails")
AJ_APP = "asyncjobs.django.worker:broker"
RAW_APP = "bench.raw_app:broker"


@dataclass(frozen=True)
class Target:
    """One side of one comparison: ``kind`` (one of ``SIDES``) on ``broker_url``."""

    kind: str
    broker: str  # "redis" / "amqp"
    broker_url: str
    redis_url: str  # the ledger's (and asyncjobs' result backend's on Redis)
    name: str  # asyncjobs KEY_PREFIX / the others' stream, queue and exchange name

    def settings(self) -> dict[str, Any]:
        return {"BROKER_URL": self.broker_url, "KEY_PREFIX": self.name, "QUEUES": list(QUEUES)}

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        path = [str(REPO_ROOT), *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))]
        env.update(PYTHONPATH=os.pathsep.join(path), PYTHONUNBUFFERED="1")
        env["BENCH_REDIS_URL"] = self.redis_url
        if self.kind == ASYNCJOBS:
            env["DJANGO_SETTINGS_MODULE"] = SETTINGS_MODULE
            env["ASYNCJOBS_BROKER_URL"] = self.broker_url
            env["ASYNCJOBS_KEY_PREFIX"] = self.name
            env["ASYNCJOBS_QUEUES"] = ",".join(QUEUES)
        else:
            env["BENCH_RAW_BROKER_URL"] = self.broker_url
            env["BENCH_RAW_QUEUE"] = self.name
        return env

    def start_worker(
        self,
        log_dir: Path,
        label: str,
        *,
        log_level: str | None = None,
        env: dict[str, str] | None = None,
    ) -> ManagedProcess:
        """The side's worker at its default log level (taskiq: INFO), or at
        ``log_level``; ``env``: more environment variables (e.g. ``ASYNCJOBS_MONITOR``)."""
        argv = self.worker_argv()
        if log_level is not None:  # Dramatiq's CLI has only -v (more verbose)
            argv += ["--loglevel" if self.kind == CELERY else "--log-level", log_level]
        name = f"{self.kind}-{self.broker}-{label}"
        full_env = self.env() | (env or {})
        return ManagedProcess(name, argv, log_path=log_dir / f"{name}.log", env=full_env)

    def worker_argv(self) -> list[str]:
        if self.kind == CELERY:
            command = ["-m", "celery", "-A", "bench.celery_app", "worker"]
            return [sys.executable, *command, *worker_args(CELERY)]
        if self.kind == DRAMATIQ:
            command = ["-m", "dramatiq", "bench.dramatiq_app"]
            return [sys.executable, *command, *worker_args(DRAMATIQ)]
        app = AJ_APP if self.kind == ASYNCJOBS else RAW_APP
        return [sys.executable, "-m", "taskiq", "worker", app, "--workers", "1"]


def task_process(proc: ManagedProcess) -> psutil.Process | None:
    """The worker's process that runs the tasks: the child that taskiq's manager and
    Dramatiq's supervisor fork; Celery's threads pool runs them in the main process."""
    try:
        root = psutil.Process(proc.pid)
        children = root.children()
    except psutil.Error:
        return None
    return children[0] if children else root


def worker_rss_mb(proc: ManagedProcess) -> float | None:
    """VmRSS of the worker's task process, in MiB."""
    found = task_process(proc)
    try:
        return found.memory_info().rss / 2**20 if found else None
    except psutil.Error:
        return None


Kiq = Callable[..., Awaitable[Any]]


class Producer:
    """``kiq(task, *args)`` for one target, from this process; ``send_each`` (one after
    another) and ``send_concurrently`` (asyncio.gather of ``chunk``, or a sync side's
    thread pool) for many."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self._close: Callable[[], Awaitable[None]] | None = None
        self._tasks: dict[str, Any] = {}
        self.sync: SyncSender | None = None

    async def __aenter__(self) -> Producer:
        if self.target.kind in (CELERY, DRAMATIQ):
            self.sync = SyncSender(self.target.kind, self.target.broker_url, self.target.name)
            await asyncio.to_thread(self.sync.warm)
            return self
        if self.target.kind == ASYNCJOBS:
            from asyncjobs import app as app_state
            from asyncjobs import load_config
            from bench.tasksapp import tasks

            broker = app_state.configure(load_config(self.target.settings(), environ={})).broker
            # This loop holds the client, as an ASGI server's does (its lifespan claims
            # it); unclaimed, each send would cross to asyncjobs' own loop (send_paths
            # measures that path: kiq_sync).
            await broker.startup()
            self._tasks = {"noop": tasks.noop, "sleep": tasks.sleep, "latency": tasks.latency}
        else:
            from bench.raw_app import make_broker, register

            broker = make_broker(self.target.broker_url, self.target.name)
            await broker.startup()
            self._tasks = register(broker)
        self._close = broker.shutdown
        return self

    def kiq(self, task: str, *args: Any) -> Awaitable[Any]:
        if self.sync is not None:
            return self._sync_kiq(task, *args)
        return self._tasks[task].kiq(*args)  # type: ignore[no-any-return]

    async def _sync_kiq(self, task: str, *args: Any) -> None:
        assert self.sync is not None
        self.sync.send(task, *args)  # blocking, in this loop: as a sync caller sends

    async def send_each(self, task: str, key: str, indices: range) -> None:
        if self.sync is not None:
            self.sync.send_each(task, key, indices)  # nothing else runs meanwhile
            return
        for i in indices:
            await self.kiq(task, key, i)

    async def send_concurrently(self, task: str, key: str, indices: range, chunk: int) -> None:
        if self.sync is not None:
            await asyncio.to_thread(self.sync.send_threaded, task, key, indices)
            return
        for start in range(indices.start, indices.stop, chunk):
            stop = min(indices.stop, start + chunk)
            await asyncio.gather(*(self.kiq(task, key, i) for i in range(start, stop)))

    async def __aexit__(self, *exc: object) -> None:
        if self.sync is not None:
            await asyncio.to_thread(self.sync.close)
        if self._close is not None:
            await self._close()


async def delete_raw_amqp(url: str, name: str) -> None:
    """Delete what ``bench.raw_app.make_broker`` declared on RabbitMQ under ``name``."""
    import aio_pika

    connection = await aio_pika.connect(url, timeout=10)
    try:
        channel = await connection.channel()
        for queue in (name, f"{name}.dead_letter"):
            await channel.queue_delete(queue)
        await channel.exchange_delete(name)
    finally:
        await connection.close()


def task_backend_sends(target: Target, key: str, n: int) -> dict[str, float]:
    """Run ``bench.task_backend`` in a process of its own: ``aenqueue`` beside ``kiq``."""
    argv = [sys.executable, "-m", "bench.task_backend", key, str(n)]
    done = subprocess.run(  # noqa: S603 - our own interpreter and module
        argv, env=target.env(), cwd=REPO_ROOT, capture_output=True, text=True, timeout=600
    )
    if done.returncode != 0:
        raise RuntimeError(f"bench.task_backend failed ({done.returncode}):\n{done.stderr[-3000:]}")
    figures: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return figures


def send_paths(target: Target, key: str, n: int, threads: int) -> dict[str, float]:
    """Run ``bench.send_paths`` in a process of its own; its rates per sending path."""
    env = {**target.env(), "BENCH_SEND_SETTINGS": json.dumps(target.settings())}
    argv = [sys.executable, "-m", "bench.send_paths", key, str(n), str(threads)]
    done = subprocess.run(  # noqa: S603 - our own interpreter and module
        argv, env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=600, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"bench.send_paths failed ({done.returncode}):\n{done.stderr[-3000:]}")
    rates: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return rates
