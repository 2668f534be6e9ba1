"""SIGTERM to the main ``taskiq worker`` process, as Kubernetes sends it, on both brokers.

The worker finishes what it runs within ``DRAIN_TIMEOUT``, cuts off and hands back what
outlasts it, leaves what it never started to other workers at once (``LEASE_TIMEOUT`` is
set far beyond the test's waits, so nothing here can come from a lease expiring), and
exits 0 by ``DRAIN_TIMEOUT`` + ``HARD_MARGIN_S``.
"""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from pathlib import Path

import pytest

from asyncjobs.brokers.base import ReliableBroker
from asyncjobs.worker.settings import HARD_MARGIN_S
from example.processes import REPO_ROOT, ManagedProcess, delete_amqp_queues
from tests.faults.redis_server import PrivateRedis
from tests.faults.workers import (
    configured_like,
    ledger,
    start_worker,
    stop_worker,
    wait_worker_ready,
    worker_env,
)
from tests.support.freeze import frozen
from tests.support.helpers import wait_until
from tests.testapp import tasks

pytestmark = [pytest.mark.redis, pytest.mark.timeout(180)]

QUEUES = ("default", "other")
MANAGER_POLL_S = 1.0  # taskiq's process manager looks at its signal queue once a second
StartWorker = Callable[..., ManagedProcess]


@pytest.fixture(params=["redis", "rabbitmq"])
def settings(request: pytest.FixtureRequest, redis_url: str, prefix: str) -> dict[str, str]:
    broker_url = request.getfixturevalue("amqp_url") if request.param == "rabbitmq" else redis_url
    return worker_env(
        broker_url=broker_url,
        result_backend_url=redis_url,
        prefix=prefix,
        queues=QUEUES,
        extra={"ASYNCJOBS_LEASE_TIMEOUT": "120", "ASYNCJOBS_WORKER_CONCURRENCY": "5"},
    )


@pytest.fixture
async def client(
    settings: dict[str, str], prefix: str, redis_cleanup: None
) -> AsyncIterator[ReliableBroker]:
    async with configured_like(settings) as broker:
        yield broker
    if settings["ASYNCJOBS_BROKER_URL"].startswith("amqp"):
        await delete_amqp_queues(settings["ASYNCJOBS_BROKER_URL"], prefix, QUEUES)


@pytest.fixture
def start(
    client: ReliableBroker, settings: dict[str, str], tmp_path: Path
) -> Iterator[StartWorker]:
    started: list[ManagedProcess] = []

    def start(name: str, extra: Mapping[str, str] | None = None) -> ManagedProcess:
        proc = start_worker({**settings, **(extra or {})}, log_dir=tmp_path, name=name)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        stop_worker(proc, timeout=10)
        print(proc.describe(lines=30))  # pytest shows it when the test failed


def sigterm_and_time_the_exit(proc: ManagedProcess, limit_s: float) -> tuple[int, float]:
    """SIGTERM the main process; (exit code, seconds until it exited)."""
    proc.signal(signal.SIGTERM)
    began = time.monotonic()
    code = proc.wait(limit_s + 10)
    assert code is not None, f"still running {limit_s + 10} s after SIGTERM"
    return code, time.monotonic() - began


async def wait_events(
    redis_url: str, prefix: str, kind: str, count: int, timeout: float
) -> list[str]:
    async def enough() -> list[str] | None:
        events = await ledger(redis_url, prefix)
        return events if sum(e.startswith(kind) for e in events) >= count else None

    found: list[str] = await wait_until(
        enough, timeout=timeout, interval=0.1, what=f"{count} {kind!r}"
    )
    return found


async def test_sigterm_lets_running_tasks_finish_and_leaves_the_queue_to_others(
    start: StartWorker, client: ReliableBroker, redis_url: str, prefix: str
) -> None:
    drain_s = 10.0
    first = start("first", {"ASYNCJOBS_DRAIN_TIMEOUT": str(drain_s)})
    await wait_worker_ready(first)
    for n in range(25):  # 5 run at once (WORKER_CONCURRENCY=5), 20 wait
        await tasks.sleeps.kiq(f"t{n}", 3.0)
    events = await wait_events(redis_url, prefix, "start:", 5, timeout=15)
    running = {e.removeprefix("start:") for e in events if e.startswith("start:")}

    code, took = sigterm_and_time_the_exit(first, drain_s + HARD_MARGIN_S)
    assert code == 0 and took < drain_s + HARD_MARGIN_S + MANAGER_POLL_S
    events = await ledger(redis_url, prefix)
    assert {e.removeprefix("end:") for e in events if e.startswith("end:")} == running
    assert sum(e.startswith("start:") for e in events) == 5  # it took nothing more

    second = start("second")
    began = time.monotonic()
    events = await wait_events(redis_url, prefix, "end:", 25, timeout=40)
    # 20 tasks of 3 s, 5 at a time: 4 rounds, not a 120 s lease.
    assert time.monotonic() - began < 30
    starts = Counter(e.removeprefix("start:") for e in events if e.startswith("start:"))
    assert set(starts) == {f"t{n}" for n in range(25)} and set(starts.values()) == {1}
    assert second.alive()


async def test_sigterm_cuts_off_long_tasks_at_the_deadline_and_they_run_again_elsewhere(
    start: StartWorker, client: ReliableBroker, redis_url: str, prefix: str
) -> None:
    drain_s = 5.0
    first = start("first", {"ASYNCJOBS_DRAIN_TIMEOUT": str(drain_s)})
    await wait_worker_ready(first)
    handles = [await tasks.sleeps.kiq(f"long{n}", 30.0) for n in range(5)]
    await wait_events(redis_url, prefix, "start:", 5, timeout=15)

    code, took = sigterm_and_time_the_exit(first, drain_s + HARD_MARGIN_S)
    assert code == 0 and took < drain_s + HARD_MARGIN_S + MANAGER_POLL_S
    events = await ledger(redis_url, prefix)
    assert sum(e.startswith("cancelled:") for e in events) == 5  # they saw CancelledError

    start("second")
    for handle in handles:  # handed back, not dead: all five run again, side by side
        assert (await handle.wait_result(timeout=45)).return_value.startswith("long")
    events = await ledger(redis_url, prefix)
    starts = Counter(e.removeprefix("start:") for e in events if e.startswith("start:"))
    assert set(starts.values()) == {2}  # cut off once, run once more: at most twice


@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
async def test_an_idle_worker_exits_0_within_2_s_of_sigterm(
    loop: str, start: StartWorker, client: ReliableBroker, tmp_path: Path
) -> None:
    extra: dict[str, str] = {}
    if loop == "asyncio":  # taskiq uses uvloop whenever it can import it
        hide = tmp_path / "no_uvloop" / "uvloop"
        hide.mkdir(parents=True)
        (hide / "__init__.py").write_text("raise ImportError('hidden by the test')\n")
        extra["PYTHONPATH"] = f"{hide.parent}:{REPO_ROOT}"
    worker = start("idle", extra)
    await wait_worker_ready(worker)
    ready = next(line for line in worker.tail(200).splitlines() if "worker ready" in line)
    assert f"loop {loop}" in ready, ready
    code, took = sigterm_and_time_the_exit(worker, 2.0)
    assert code == 0 and took < 2.0


async def test_a_worker_whose_broker_stops_answering_exits_by_the_deadline(
    tmp_path: Path, prefix: str
) -> None:
    drain_s = 3.0
    with PrivateRedis(tmp_path / "redis") as server:
        env = worker_env(
            broker_url=server.url,
            prefix=prefix,
            extra={"ASYNCJOBS_DRAIN_TIMEOUT": str(drain_s), "ASYNCJOBS_LEASE_TIMEOUT": "120"},
        )
        worker = start_worker(env, log_dir=tmp_path, name="frozen-broker")
        try:
            await wait_worker_ready(worker)
            assert server.process is not None
            with frozen(server.process.popen.pid):  # connections stay open, nothing answers
                code, took = sigterm_and_time_the_exit(worker, drain_s + HARD_MARGIN_S)
            assert took < drain_s + HARD_MARGIN_S + MANAGER_POLL_S + 0.5, worker.describe()
            assert code == 0
        finally:
            stop_worker(worker, timeout=5)


async def test_a_second_signal_does_not_skip_the_drain(
    start: StartWorker, client: ReliableBroker, redis_url: str, prefix: str
) -> None:
    worker = start("twice", {"ASYNCJOBS_DRAIN_TIMEOUT": "10"})
    await wait_worker_ready(worker)
    handles = [await tasks.sleeps.kiq(f"s{n}", 2.0) for n in range(2)]
    await wait_events(redis_url, prefix, "start:", 2, timeout=15)
    worker.signal(signal.SIGTERM)  # Kubernetes...
    await wait_until(lambda: _logged(worker, "draining"), timeout=5, what="the drain to begin")
    os.killpg(worker.pid, signal.SIGINT)  # ...then an impatient Ctrl-C to the whole group
    code = worker.wait(20)
    assert code == 0, worker.describe()
    for handle in handles:  # both finished and were acknowledged, not abandoned
        assert (await handle.wait_result(timeout=5)).return_value.startswith("s")
    assert "while draining: still finishing" in worker.tail(200)


async def _logged(worker: ManagedProcess, text: str) -> bool:
    return text in worker.tail(200)
