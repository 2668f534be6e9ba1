"""The example project running for the browser tests: a fresh SQLite database with its
users, uvicorn serving ``example.asgi:application`` and a real ``taskiq worker``, on a
key prefix of its own on the real Redis or RabbitMQ; stopped and forgotten afterwards.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from tests.support.processes import (
    REPO_ROOT,
    ExampleStack,
    ManagedProcess,
    ProcessError,
    delete_amqp_queues,
    delete_redis_prefix,
)

# The operator console's permissions (app label ``asyncjobs``, model ``Console``).
CONSOLE_PERMISSIONS = (
    "asyncjobs.view_console",
    "asyncjobs.replay_dead_letters",
    "asyncjobs.purge_dead_letters",
    "asyncjobs.change_schedules",
    "asyncjobs.view_message_bodies",
)
WORKER_READY = "worker ready"  # the worker's log line once it consumes (receiver.py)


def password_for(username: str) -> str:
    return f"pw-{username}-1234"


@dataclass(frozen=True)
class SiteUser:
    """A user of the site; ``granted``/``missing``: which of ``permissions`` exist."""

    username: str
    staff: bool = False
    superuser: bool = False
    permissions: tuple[str, ...] = ()
    granted: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()

    @property
    def password(self) -> str:
        return password_for(self.username)


DEFAULT_USERS = (
    SiteUser("admin", staff=True, superuser=True),
    SiteUser("viewer", staff=True, permissions=("asyncjobs.view_console",)),
    SiteUser("plain"),
)


@dataclass
class ConsoleSite:
    """One broker's site (``broker``: "redis" or "rabbitmq"); ``start()`` runs it."""

    broker: str
    broker_url: str
    result_backend_url: str
    key_prefix: str
    work_dir: Path
    users: dict[str, SiteUser] = field(default_factory=dict)
    workers: list[ManagedProcess] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.stack = ExampleStack(
            broker_url=self.broker_url,
            result_backend_url=self.result_backend_url,
            db_path=self.work_dir / "example.sqlite3",
            log_dir=self.work_dir / "logs",
            key_prefix=self.key_prefix,
        )

    @property
    def base_url(self) -> str:
        return self.stack.base_url

    @property
    def env(self) -> dict[str, str]:
        """The environment of the site's processes, for CLI commands on its settings."""
        return self.stack.env()

    @property
    def web(self) -> ManagedProcess:
        assert self.stack.web is not None, "start() first"
        return self.stack.web

    @property
    def worker(self) -> ManagedProcess:
        """The worker ``start()`` started (it may have been stopped since)."""
        return self.workers[0]

    def url(self, path: str) -> str:
        return f"{self.base_url}{path}"

    # -- life cycle ------------------------------------------------------------------
    def start(self, users: tuple[SiteUser, ...] = DEFAULT_USERS) -> None:
        """Migrate, start uvicorn and one worker, create ``users``; wait until all is up."""
        self.stack.migrate()
        web = self.stack.start_web()
        worker = self.start_worker(wait=False)
        self.add_users(*users)  # while the servers start
        asyncio.run(self.stack.wait_web_ready(timeout_s=60))
        self.wait_worker_ready(worker)
        assert web.alive(), web.describe()

    def start_worker(self, *, wait: bool = True, timeout_s: float = 60.0) -> ManagedProcess:
        """One more ``taskiq worker`` (one process) on the site; ``stop()`` it, or the
        site stops it at the end. With ``wait``, returns once it consumes."""
        worker = self.stack.start_worker(workers=1, name=f"worker-{len(self.workers) + 1}")
        self.workers.append(worker)
        if wait:
            self.wait_worker_ready(worker, timeout_s=timeout_s)
        return worker

    def start_scheduler(self) -> ManagedProcess:
        """``taskiq scheduler`` on the site (the example's static schedules)."""
        return self.stack.start_scheduler()

    def wait_worker_ready(self, worker: ManagedProcess, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        while WORKER_READY not in worker.tail(200):
            if not worker.alive() or time.monotonic() > deadline:
                state = "exited" if not worker.alive() else f"still starting after {timeout_s:.0f}s"
                raise ProcessError(f"{worker.name} not ready: {state}\n{worker.describe()}")
            time.sleep(0.1)  # polling its log, until the deadline

    def close(self) -> None:
        """Stop every process; delete the prefix's keys (and RabbitMQ queues)."""
        try:
            self.stack.stop(timeout_s=15)
        finally:
            asyncio.run(self._forget())

    async def _forget(self) -> None:
        async with asyncio.timeout(30):
            if self.broker == "rabbitmq":
                await delete_amqp_queues(self.broker_url, self.key_prefix)
            await delete_redis_prefix(self.result_backend_url, self.key_prefix)

    def describe(self, lines: int = 60) -> str:
        return self.stack.describe(lines)

    # -- users and commands ----------------------------------------------------------
    def add_users(self, *users: SiteUser) -> list[SiteUser]:
        """Create ``users`` (with the permissions of theirs that exist), in one process."""
        specs = [
            {
                "username": user.username,
                "password": user.password,
                "staff": user.staff,
                "superuser": user.superuser,
                "permissions": list(user.permissions),
            }
            for user in users
        ]
        done = self.run([sys.executable, "-m", "tests.support.site_users", json.dumps(specs)])
        outcome = json.loads(done.stdout.strip().splitlines()[-1])
        created = [
            replace(
                user,
                granted=tuple(outcome[user.username]["granted"]),
                missing=tuple(outcome[user.username]["missing"]),
            )
            for user in users
        ]
        self.users |= {user.username: user for user in created}
        return created

    def add_user(
        self,
        username: str,
        *,
        staff: bool = False,
        superuser: bool = False,
        permissions: tuple[str, ...] = (),
    ) -> SiteUser:
        """One more user, password ``pw-<username>-1234``."""
        user = SiteUser(username, staff=staff, superuser=superuser, permissions=permissions)
        return self.add_users(user)[0]

    def manage(
        self, *args: str, timeout_s: float = 60.0, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """``manage.py *args`` on the site's settings (e.g. ``"asyncjobs", "inspect",
        "--json"``); with ``check``, raises ProcessError when it fails."""
        manage = str(REPO_ROOT / "example" / "manage.py")
        return self.run([sys.executable, manage, *args], timeout_s=timeout_s, check=check)

    def run(
        self, argv: list[str], *, timeout_s: float = 60.0, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """``argv`` to completion in the site's environment, its output captured; with
        ``check``, raises ProcessError when it fails."""
        done = subprocess.run(
            argv,
            env=self.env,
            cwd=REPO_ROOT,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
        if check and done.returncode != 0:
            raise ProcessError(
                f"{' '.join(argv[:4])} ... failed (exit {done.returncode}):\n"
                f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
            )
        return done
