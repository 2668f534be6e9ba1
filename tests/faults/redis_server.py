"""A private ``redis-server`` for fault tests: started, restarted and stopped on purpose.

Fault tests never touch the shared Redis. This one listens on a free port, keeps its data
in a temporary directory with an append-only file fsynced on every write (so a restart
loses nothing a client was told was written), and is always stopped by the context
manager, even when the test fails:

    with PrivateRedis(tmp_path / "redis") as server:
        ...server.url...
        server.restart()          # SIGTERM, then start again: same port, same data

The binary is the system ``redis-server`` (override with ``ASYNCJOBS_TEST_REDIS_SERVER``).
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from types import TracebackType

import pytest

from example.processes import ManagedProcess, ProcessError, free_port, redis_server_pid

HOST = "127.0.0.1"


def redis_server_binary() -> str:
    """The ``redis-server`` to run; skips the test (fails under CI) when there is none."""
    binary = os.environ.get("ASYNCJOBS_TEST_REDIS_SERVER") or shutil.which("redis-server")
    if not binary:
        if os.environ.get("CI"):
            pytest.fail("redis-server is not on PATH, and CI is set: install Redis >= 7")
        pytest.skip("redis-server is not on PATH")
    return binary


class PrivateRedis:
    """One ``redis-server --appendonly yes --appendfsync always`` on a free port."""

    def __init__(self, work_dir: Path, *, port: int | None = None) -> None:
        self.work_dir = work_dir
        self.port = port or free_port()
        self.process: ManagedProcess | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}/0"

    def argv(self) -> list[str]:
        return [
            redis_server_binary(),
            "--port", str(self.port),
            "--bind", HOST,
            "--dir", str(self.work_dir),
            "--appendonly", "yes",
            "--appendfsync", "always",
            "--save", "",
            "--daemonize", "no",
            "--protected-mode", "no",
            "--loglevel", "notice",
        ]  # fmt: skip

    def alive(self) -> bool:
        return self.process is not None and self.process.alive()

    def start(self, timeout_s: float = 10.0) -> PrivateRedis:
        """Start (again) on the same port and directory; returns once it answers PING."""
        if self.alive():
            raise ProcessError(f"redis-server on port {self.port} is already running")
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.starts += 1
        self.process = ManagedProcess(
            f"redis-{self.port}", self.argv(), log_path=self.work_dir / "redis.log"
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not self.process.alive():
                raise ProcessError(f"redis-server exited at start\n{self.process.describe()}")
            # Its own pid, not only a PONG: a port both test lines of CI picked must not
            # let a test freeze or stop one server while it talks to another.
            if redis_server_pid(HOST, self.port, timeout_s=0.5) == self.process.popen.pid:
                return self
            time.sleep(0.02)
        self.stop()
        raise ProcessError(f"redis-server not answering on port {self.port} after {timeout_s}s")

    def stop(self, timeout_s: float = 10.0) -> None:
        """SIGTERM (Redis flushes its AOF and exits), SIGKILL after ``timeout_s``."""
        if self.process is not None:
            self.process.stop(timeout_s=timeout_s)

    def restart(self, timeout_s: float = 10.0) -> None:
        """SIGTERM it and start it again on the same port with the same data."""
        self.stop(timeout_s)
        self.start(timeout_s)

    def describe(self, lines: int = 20) -> str:
        if self.process is None:
            return f"redis-server on port {self.port}: never started"
        return self.process.describe(lines)

    def __enter__(self) -> PrivateRedis:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
