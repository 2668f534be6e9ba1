"""A small harness for fault tests: real ``taskiq worker`` processes, killed on purpose.

Generic over the transport: the broker, result backend, key prefix and every other
setting reach the worker as ``ASYNCJOBS_*`` environment variables (see ``worker_env``).
Built on ``example.processes.ManagedProcess`` (own session, one log file per process,
SIGKILL of the whole process group as the last resort). Every wait has a deadline.

    proc = start_worker(worker_env(broker_url=..., prefix=...), log_dir=tmp_path)
    try:
        await wait_worker_ready(proc)
        ...
        old = kill_worker_child(proc)              # SIGKILL a worker child, not the manager
        await wait_worker_ready(proc, count=2)     # the manager started a new child
    finally:
        stop_worker(proc)

taskiq's process manager checks its children once a second and restarts a dead one on
the next check: a killed child is replaced within about 2 s.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from pathlib import Path

from asyncjobs.brokers.base import ReliableBroker
from example.processes import REPO_ROOT, ManagedProcess, ProcessError

WORKER_APP = "asyncjobs.django.worker:broker"
TEST_SETTINGS = "tests.django_settings"
READY_MARKER = "worker ready:"  # logged by asyncjobs.worker.receiver once it consumes

__all__ = [
    "READY_MARKER",
    "ProcessError",
    "configured_like",
    "kill_worker_child",
    "ledger",
    "ready_count",
    "running_worker",
    "start_worker",
    "stop_worker",
    "wait_worker_ready",
    "worker_children",
    "worker_env",
]


def worker_env(
    *,
    broker_url: str,
    prefix: str,
    result_backend_url: str | None = None,
    queues: Sequence[str] = ("default", "other"),
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The ``ASYNCJOBS_*`` overrides for a worker of one test (merged into os.environ)."""
    env = {
        "ASYNCJOBS_BROKER_URL": broker_url,
        "ASYNCJOBS_KEY_PREFIX": prefix,
        "ASYNCJOBS_QUEUES": ",".join(queues),
    }
    if result_backend_url:
        env["ASYNCJOBS_RESULT_BACKEND_URL"] = result_backend_url
    env.update(extra or {})
    return env


def start_worker(
    env: Mapping[str, str],
    *,
    log_dir: Path,
    workers: int = 1,
    name: str = "worker",
    extra_args: Sequence[str] = (),
) -> ManagedProcess:
    """``taskiq worker asyncjobs.django.worker:broker --workers N`` on the test settings.

    ``env`` (``ASYNCJOBS_*`` overrides) is applied on top of this process's environment;
    the log goes to ``log_dir/<name>.log``. Stop it with ``stop_worker`` in a finalizer.
    """
    full_env = dict(os.environ)
    pythonpath = [str(REPO_ROOT), *filter(None, full_env.get("PYTHONPATH", "").split(os.pathsep))]
    full_env.update(
        {
            "DJANGO_SETTINGS_MODULE": TEST_SETTINGS,
            "PYTHONPATH": os.pathsep.join(pythonpath),
            "PYTHONUNBUFFERED": "1",
        }
    )
    full_env.update(env)
    argv = [
        sys.executable, "-m", "taskiq", "worker", WORKER_APP,
        "--workers", str(workers),
        *extra_args,
    ]  # fmt: skip
    return ManagedProcess(name, argv, log_path=log_dir / f"{name}.log", env=full_env)


def stop_worker(proc: ManagedProcess, timeout: float = 10.0) -> int:
    """SIGTERM (a drain), wait up to ``timeout`` s, then SIGKILL the group; the exit code."""
    return proc.stop(timeout_s=timeout)


@contextlib.contextmanager
def running_worker(
    env: Mapping[str, str],
    *,
    log_dir: Path,
    workers: int = 1,
    name: str = "worker",
    stop_timeout: float = 10.0,
) -> Iterator[ManagedProcess]:
    """``start_worker`` that is always stopped (and its process group killed) on exit."""
    proc = start_worker(env, log_dir=log_dir, workers=workers, name=name)
    try:
        yield proc
    finally:
        stop_worker(proc, stop_timeout)


def worker_children(pid: int) -> list[int]:
    """The pids of the direct children of ``pid`` (taskiq's worker processes), sorted.

    Linux only: reads ``/proc/<pid>/task/*/children`` (or scans ``/proc/*/stat`` on
    kernels without that file).
    """
    children: set[int] = set()
    task_dir = Path(f"/proc/{pid}/task")
    found_file = False
    with contextlib.suppress(OSError):
        for task in task_dir.iterdir():
            path = task / "children"
            with contextlib.suppress(OSError):
                children.update(int(c) for c in path.read_text().split())
                found_file = True
    if not found_file:
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            with contextlib.suppress(OSError, ValueError, IndexError):
                stat = (entry / "stat").read_text()
                # pid (comm) state ppid ...: comm may hold spaces and parentheses
                ppid = int(stat.rsplit(")", 1)[1].split()[1])
                if ppid == pid:
                    children.add(int(entry.name))
    return sorted(children)


def kill_worker_child(proc: ManagedProcess, index: int = 0) -> int:
    """SIGKILL one worker child (not taskiq's manager, which then restarts it); its pid."""
    children = worker_children(proc.pid)
    if len(children) <= index:
        raise ProcessError(f"worker has children {children}, no #{index}\n{proc.describe()}")
    child = children[index]
    os.kill(child, signal.SIGKILL)
    return child


def ready_count(proc: ManagedProcess) -> int:
    """How many times a worker child of ``proc`` logged that it consumes."""
    try:
        return proc.log_path.read_text(errors="replace").count(READY_MARKER)
    except OSError:
        return 0


async def wait_worker_ready(
    proc: ManagedProcess, *, count: int = 1, timeout: float = 20.0, interval: float = 0.05
) -> None:
    """Wait until ``count`` worker children in total have logged READY_MARKER.

    With ``--workers N`` pass ``count=N``; after killing a child pass one more than
    before. Fails early, with the log, if the worker exits.
    """
    deadline = time.monotonic() + timeout
    while ready_count(proc) < count:
        if not proc.alive():
            raise ProcessError(f"worker exited before it was ready\n{proc.describe()}")
        if time.monotonic() > deadline:
            raise ProcessError(
                f"worker not ready ({ready_count(proc)}/{count}) after {timeout}s\n"
                f"{proc.describe()}"
            )
        await asyncio.sleep(interval)


async def ledger(redis_url: str, prefix: str) -> list[str]:
    """The events tests.testapp.tasks recorded under ``prefix`` (``{prefix}:ledger``)."""
    from redis.asyncio import Redis

    conn = Redis.from_url(redis_url, socket_connect_timeout=5, socket_timeout=10)
    try:
        raw = await conn.lrange(f"{prefix}:ledger", 0, -1)
    finally:
        await conn.aclose()
    return [item.decode() if isinstance(item, bytes) else str(item) for item in raw]


@contextlib.asynccontextmanager
async def configured_like(settings: Mapping[str, str]) -> AsyncIterator[ReliableBroker]:
    """asyncjobs configured in this process from a worker's ``ASYNCJOBS_*`` settings (to
    kick tasks and read results); the previous configuration is restored after."""
    from asyncjobs.config import load_config
    from tests.support.helpers import configured_app

    async with configured_app(load_config(None, environ=settings)) as broker:
        assert isinstance(broker, ReliableBroker)
        yield broker
