"""Worker processes and producers for the two sides of every comparison.

Workers are real ``taskiq worker ... --workers 1`` processes (``ManagedProcess``: own
session, one log file, SIGKILL of the group as the last resort). Producers live in this
process: asyncjobs configured from the same settings as its worker, or a raw taskiq
broker built by ``bench.raw_app.make_broker``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil  # type: ignore[import-untyped]

from example.processes import REPO_ROOT, ManagedProcess

ASYNCJOBS = "asyncjobs"
RAW = "raw"
SETTINGS_MODULE = "bench.settings"
QUEUES = ("default", "emails")
AJ_APP = "asyncjobs.django.worker:broker"
RAW_APP = "bench.raw_app:broker"


@dataclass(frozen=True)
class Target:
    """One side of one comparison: ``kind`` (asyncjobs / raw) on ``broker_url``."""

    kind: str
    broker: str  # "redis" / "amqp"
    broker_url: str
    redis_url: str  # the ledger's (and asyncjobs' result backend's on Redis)
    name: str  # asyncjobs KEY_PREFIX / raw stream, queue and exchange name

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
        """``taskiq worker`` at its default log level (INFO), or at ``log_level``;
        ``env``: more environment variables (e.g. ``ASYNCJOBS_MONITOR``)."""
        app = "asyncjobs.django.worker:broker" if self.kind == ASYNCJOBS else "bench.raw_app:broker"
        argv = [sys.executable, "-m", "taskiq", "worker", app, "--workers", "1"]
        if log_level is not None:
            argv += ["--log-level", log_level]
        name = f"{self.kind}-{self.broker}-{label}"
        full_env = self.env() | (env or {})
        return ManagedProcess(name, argv, log_path=log_dir / f"{name}.log", env=full_env)


def worker_rss_mb(proc: ManagedProcess) -> float | None:
    """VmRSS of taskiq's worker child (the manager forks it), in MiB."""
    try:
        children = psutil.Process(proc.pid).children()
        return children[0].memory_info().rss / 2**20 if children else None
    except psutil.Error:
        return None


Kiq = Callable[..., Awaitable[Any]]


class Producer:
    """``kiq(task, *args)`` for one target, from this process."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self._close: Callable[[], Awaitable[None]] | None = None
        self._tasks: dict[str, Any] = {}

    async def __aenter__(self) -> Producer:
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
        return self._tasks[task].kiq(*args)  # type: ignore[no-any-return]

    async def __aexit__(self, *exc: object) -> None:
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
