"""The delivery guarantees of the Redis Streams transport, with real ``taskiq worker``s.

Each test starts ``taskiq worker asyncjobs.django.worker:broker`` subprocesses on its
own key prefix (settings as ``ASYNCJOBS_*`` environment variables), sends tasks from this
process (asyncjobs configured in-process on the same broker and prefix), breaks something
on purpose (SIGKILL of a worker child, ``os._exit`` in a task, a Redis restart) and reads
what the tasks recorded in the ledger (``{prefix}:ledger``, see tests/testapp/tasks.py).

The restart test runs its own ``redis-server`` (tests/faults/redis_server.py); the others
use the shared Redis under their own prefix. Every wait polls state with a deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from pathlib import Path

import pytest
from redis.asyncio import Redis
from taskiq.message import BrokerMessage
from taskiq.result import TaskiqResult

from asyncjobs import current_broker
from asyncjobs.brokers.base import TransportOptions
from asyncjobs.brokers.dead_letters import DeadLetter, Reason
from asyncjobs.brokers.redis.broker import RedisStreamsBroker
from asyncjobs.brokers.redis.connection import RETRYABLE
from asyncjobs.brokers.redis.delivery import RedisDelivery
from asyncjobs.brokers.redis.leases import LeaseKeeper
from asyncjobs.brokers.redis.streams import GROUP, dead_letter_key, stream_key
from asyncjobs.config import AsyncJobsConfig, load_config
from asyncjobs.errors import BrokerConnectionError, SendOutcomeUnknownError
from example.processes import ManagedProcess
from tests.faults.redis_server import PrivateRedis
from tests.faults.workers import (
    kill_worker_child,
    ledger,
    ready_count,
    running_worker,
    wait_worker_ready,
    worker_children,
    worker_env,
)
from tests.support.helpers import configured_app, wait_until
from tests.testapp.tasks import add, crashes, sleeps

pytestmark = [pytest.mark.redis, pytest.mark.timeout(120)]


# -- helpers --------------------------------------------------------------------------
@contextlib.contextmanager
def worker(
    url: str,
    prefix: str,
    log_dir: Path,
    *,
    workers: int = 1,
    settings: Mapping[str, str] | None = None,
) -> Iterator[ManagedProcess]:
    """A ``taskiq worker`` on ``url``/``prefix``; always stopped, its log printed after
    (pytest shows it when the test fails)."""
    env = worker_env(
        broker_url=url,
        prefix=prefix,
        extra={"ASYNCJOBS_DRAIN_TIMEOUT": "3", **(settings or {})},
    )
    with running_worker(env, log_dir=log_dir, workers=workers) as proc:
        try:
            yield proc
        finally:
            print(proc.describe(lines=60))


async def wait_ledger(
    url: str,
    prefix: str,
    done: Callable[[list[str]], bool],
    *,
    timeout: float,
    what: str,
    interval: float = 0.05,
) -> list[str]:
    """Poll the ledger until ``done(events)``; the events."""
    seen: list[str] = []

    async def probe() -> bool:
        nonlocal seen
        seen = await ledger(url, prefix)
        return done(seen)

    try:
        await wait_until(probe, timeout=timeout, interval=interval, what=what)
    except AssertionError as exc:
        raise AssertionError(f"{exc}; ledger has {len(seen)} events: {seen[-20:]}") from None
    return seen


async def dead_letters(conn: Redis, prefix: str, queue: str = "default") -> list[DeadLetter]:
    entries = await conn.xrange(dead_letter_key(prefix, queue))
    return [DeadLetter.from_json(fields[b"record"], i.decode()) for i, fields in entries]


async def assert_queue_settled(conn: Redis, prefix: str, queue: str = "default") -> None:
    """Nothing left in the stream, nothing pending in the group."""
    stream = stream_key(prefix, queue)
    assert await conn.xlen(stream) == 0, await conn.xrange(stream, count=5)
    assert (await conn.xpending(stream, GROUP))["pending"] == 0


@contextlib.asynccontextmanager
async def producer(url: str, prefix: str) -> AsyncIterator[AsyncJobsConfig]:
    """asyncjobs configured in this process on ``url``/``prefix`` (like the ``configured``
    fixture, for a broker other than the shared one); restored after."""
    config = load_config(
        {"BROKER_URL": url, "QUEUES": ["default", "other"], "KEY_PREFIX": prefix},
        environ={},
    )
    async with configured_app(config):
        yield config


@pytest.fixture
async def conn(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url)
    yield client
    await client.aclose()


# -- 1. SIGKILL mid-task, idle queue -----------------------------------------------------
KILL_LEASE_S = 2.0
KILL_TASK_S = 1.0


async def test_sigkilled_task_runs_again_without_new_traffic(
    configured: AsyncJobsConfig, redis_url: str, prefix: str, tmp_path: Path, conn: Redis
) -> None:
    settings = {"ASYNCJOBS_LEASE_TIMEOUT": str(KILL_LEASE_S)}
    with worker(redis_url, prefix, tmp_path, settings=settings) as proc:
        await wait_worker_ready(proc, timeout=30)
        await sleeps.kiq("victim", KILL_TASK_S)
        await wait_ledger(
            redis_url, prefix, lambda e: "start:victim" in e, timeout=15, what="the task to start"
        )
        killed = kill_worker_child(proc)
        killed_at = time.monotonic()

        # Nothing else is sent: the lease must expire and a worker reclaim it on its own
        # (here the child taskiq's manager starts in place of the killed one).
        events = await wait_ledger(
            redis_url,
            prefix,
            lambda e: e.count("start:victim") == 2,
            timeout=KILL_LEASE_S + 5,
            what="the killed task to start again within the lease + 5 s",
        )
        restarted_after = time.monotonic() - killed_at
        events = await wait_ledger(
            redis_url,
            prefix,
            lambda e: "end:victim" in e,
            timeout=KILL_TASK_S + 5,
            what="the redelivered task to finish",
        )
        ended_after = time.monotonic() - killed_at
        print(f"redelivered {restarted_after:.2f} s after the kill, done {ended_after:.2f} s")

        assert events == ["start:victim", "start:victim", "end:victim"]
        assert ended_after < KILL_LEASE_S + 5 + KILL_TASK_S
        assert killed not in worker_children(proc.pid)
        assert proc.alive()
        await wait_until(
            lambda: _settled(conn, prefix), timeout=5, what="the redelivered task to be acked"
        )
        assert await dead_letters(conn, prefix) == []


async def _settled(conn: Redis, prefix: str) -> bool:
    stream = stream_key(prefix, "default")
    return await conn.xlen(stream) == 0 and (await conn.xpending(stream, GROUP))["pending"] == 0


# -- 2. A task longer than the lease is not started twice --------------------------------
RENEW_LEASE_S = 1.0
LONG_TASK_S = 3.5


async def test_task_longer_than_the_lease_starts_once_with_two_workers(
    configured: AsyncJobsConfig, redis_url: str, prefix: str, tmp_path: Path, conn: Redis
) -> None:
    settings = {"ASYNCJOBS_LEASE_TIMEOUT": str(RENEW_LEASE_S)}
    stream = stream_key(prefix, "default")
    with worker(redis_url, prefix, tmp_path, workers=2, settings=settings) as proc:
        await wait_worker_ready(proc, count=2, timeout=30)
        assert len(worker_children(proc.pid)) == 2
        await sleeps.kiq("long", LONG_TASK_S)

        # While it runs, its pending entry keeps being renewed: idle stays under the
        # lease, and it is never delivered a second time.
        max_idle_ms, max_times_delivered, observed = 0, 0, 0

        async def finished() -> bool:
            nonlocal max_idle_ms, max_times_delivered, observed
            for entry in await conn.xpending_range(stream, GROUP, "-", "+", 10):
                observed += 1
                max_idle_ms = max(max_idle_ms, int(entry["time_since_delivered"]))
                max_times_delivered = max(max_times_delivered, int(entry["times_delivered"]))
            return "end:long" in await ledger(redis_url, prefix)

        await wait_until(
            finished, timeout=LONG_TASK_S + 15, interval=0.05, what="the long task to finish"
        )
        events = await ledger(redis_url, prefix)
        assert events.count("start:long") == 1, events
        assert events.count("end:long") == 1, events
        assert observed > 10  # the entry was watched while it ran ...
        assert max_idle_ms < RENEW_LEASE_S * 1000, max_idle_ms  # ... and renewed in time
        assert max_times_delivered == 1
        await wait_until(lambda: _settled(conn, prefix), timeout=5, what="the ack")
        assert len(worker_children(proc.pid)) == 2 and ready_count(proc) == 2


# -- 3. A task that kills its worker ends up dead-lettered -------------------------------
CRASH_MAX_DELIVERIES = 3
CRASH_SETTINGS = {"ASYNCJOBS_LEASE_TIMEOUT": "1", "ASYNCJOBS_MAX_DELIVERIES": "3"}


async def test_crash_loop_is_dead_lettered_while_other_tasks_flow(
    configured: AsyncJobsConfig, redis_url: str, prefix: str, tmp_path: Path, conn: Redis
) -> None:
    # Tasks running beside the crashing one are redelivered with it; redelivered messages
    # run alone, so only the poison message counts its deliveries (see the next test).
    with worker(redis_url, prefix, tmp_path, workers=2, settings=CRASH_SETTINGS) as proc:
        await wait_worker_ready(proc, count=2, timeout=30)
        crash = await crashes.kiq("poison")

        # Other tasks keep flowing through the crash loop: a batch at a time, each batch
        # waited for (on its ledger entries), until the poison message is dead-lettered.
        sent: list[str] = []
        deadline = time.monotonic() + 60
        while not await conn.xlen(dead_letter_key(prefix, "default")):
            assert time.monotonic() < deadline, "the crashing task was never dead-lettered"
            batch = [f"add:{len(sent) + i}:0" for i in range(10)]
            for i in range(len(sent), len(sent) + len(batch)):
                await add.kiq(i, 0)
            sent += batch
            await wait_ledger(
                redis_url,
                prefix,
                lambda e, want=frozenset(sent): want <= set(e),
                timeout=20,
                what="the adds to complete during the crash loop",
            )

        await wait_until(lambda: _settled(conn, prefix), timeout=5, what="the queue to settle")
        events = await ledger(redis_url, prefix)
        assert events.count("crash:poison") == CRASH_MAX_DELIVERIES, Counter(events)
        assert set(sent) <= set(events)
        [letter] = await dead_letters(conn, prefix)  # the poison message, and only it
        assert letter.reason is Reason.MAX_DELIVERIES
        assert letter.task_id == crash.task_id and letter.task_name.endswith(":crashes")
        assert letter.deliveries == CRASH_MAX_DELIVERIES + 1
        # Each crash cost one child; taskiq's manager replaced every one of them.
        await wait_worker_ready(proc, count=2 + CRASH_MAX_DELIVERIES, timeout=15)
        assert len(worker_children(proc.pid)) == 2
        print(f"{len(sent)} adds completed during the crash loop")


async def test_a_task_running_beside_a_crashing_one_is_not_dead_lettered(
    configured: AsyncJobsConfig, redis_url: str, prefix: str, tmp_path: Path, conn: Redis
) -> None:
    with worker(redis_url, prefix, tmp_path, settings=CRASH_SETTINGS) as proc:
        await wait_worker_ready(proc, timeout=30)
        await sleeps.kiq("mate", 1.0)
        await wait_ledger(
            redis_url, prefix, lambda e: "start:mate" in e, timeout=15, what="the mate to start"
        )
        crash = await crashes.kiq("poison")

        async def poison_dead_and_mate_done() -> bool:
            letters = await dead_letters(conn, prefix)
            mate_dead = any(d.task_name.endswith(":sleeps") for d in letters)
            mate_ran = "end:mate" in await ledger(redis_url, prefix)
            return any(d.task_id == crash.task_id for d in letters) and (mate_ran or mate_dead)

        await wait_until(
            poison_dead_and_mate_done, timeout=45, interval=0.1, what="the crash loop to end"
        )
        events = await ledger(redis_url, prefix)
        letters = await dead_letters(conn, prefix)
        assert events.count("crash:poison") == CRASH_MAX_DELIVERIES, Counter(events)
        assert [d.task_id for d in letters] == [crash.task_id], [
            (d.task_name, d.reason.value, d.deliveries) for d in letters
        ]
        assert "end:mate" in events, Counter(events)


# -- 4. Redis restarts under load ------------------------------------------------------
RESTART_TASKS = 1000


async def test_tasks_survive_a_redis_restart(prefix: str, tmp_path: Path) -> None:
    with PrivateRedis(tmp_path / "redis") as server:
        url = server.url
        settings = {"ASYNCJOBS_LEASE_TIMEOUT": "3"}
        async with producer(url, prefix):
            with worker(url, prefix, tmp_path, settings=settings) as proc:
                await wait_worker_ready(proc, timeout=30)
                [child] = worker_children(proc.pid)
                failed_kiqs = 0
                task_ids: list[str] = []
                outage: asyncio.Task[None] | None = None
                kiq_failed = asyncio.Event()

                async def noticed() -> bool:
                    return kiq_failed.is_set()

                async def restart() -> None:
                    await asyncio.to_thread(server.stop)
                    # Keep it down until the producer noticed (a bounded wait on state).
                    await wait_until(noticed, timeout=10, what="a kiq to fail")
                    await asyncio.to_thread(server.start)

                started = time.monotonic()
                for i in range(RESTART_TASKS):
                    if i == RESTART_TASKS // 2:
                        await wait_ledger(
                            url,
                            prefix,
                            lambda e: len(e) >= RESTART_TASKS // 4,
                            timeout=30,
                            what="the worker to be busy",
                        )
                        outage = asyncio.create_task(restart())
                    retry_until = time.monotonic() + 20
                    while True:  # a kiq that raised does not count: send it again
                        try:
                            task_ids.append((await add.kiq(i, 0)).task_id)
                            break
                        # Not sent, or sent to the connection Redis closed as it stopped
                        # (unknown: it may run, and run twice once sent again).
                        except (BrokerConnectionError, SendOutcomeUnknownError) as exc:
                            if not isinstance(exc.__cause__, RETRYABLE):
                                raise
                            failed_kiqs += 1
                            kiq_failed.set()
                            assert time.monotonic() < retry_until, "Redis did not come back"
                            await asyncio.sleep(0.05)  # the producer's retry backoff
                assert outage is not None
                await asyncio.wait_for(outage, 30)
                assert server.starts == 2 and failed_kiqs > 0

                want = {f"add:{i}:0" for i in range(RESTART_TASKS)}
                events = await wait_ledger(
                    url,
                    prefix,
                    lambda e: want <= set(e),
                    timeout=60,
                    interval=0.2,
                    what="every sent task to complete after the restart",
                )
                elapsed = time.monotonic() - started
                duplicates = len(events) - len(set(events))
                print(
                    f"{RESTART_TASKS} tasks through a Redis restart in {elapsed:.1f} s; "
                    f"{failed_kiqs} failed kiq calls retried, {duplicates} ran twice"
                )
                async with Redis.from_url(url) as check:
                    await wait_until(
                        lambda: _settled(check, prefix), timeout=15, what="the queue to settle"
                    )
                    assert await dead_letters(check, prefix) == []
                # Results were stored through the restart too (none lost on a stale
                # pooled connection after Redis was back).
                backend = current_broker().result_backend
                missing = [t for t in task_ids if not await backend.is_result_ready(t)]
                assert not missing, f"{len(missing)} results lost"
                # The worker recovered by itself: same process, same child.
                assert proc.alive() and worker_children(proc.pid) == [child]
                assert "lost the lease" not in proc.log_path.read_text()


# -- 5. The stream holds only unfinished work -----------------------------------------
STEADY_TASKS = 5_000  # ~20 s: enough samples (> 20) with the producer held back by LEAD
BATCH = 250
LEAD = 1000  # the producer stays at most this many tasks ahead of the ledger
CONCURRENCY = 200


async def test_stream_stays_bounded_under_steady_load(
    configured: AsyncJobsConfig, redis_url: str, prefix: str, tmp_path: Path, conn: Redis
) -> None:
    stream = stream_key(prefix, "default")
    ledger_key = f"{prefix}:ledger"
    settings = {"ASYNCJOBS_WORKER_CONCURRENCY": str(CONCURRENCY)}
    with worker(redis_url, prefix, tmp_path, settings=settings) as proc:
        await wait_worker_ready(proc, timeout=30)
        started = 0  # kiq calls begun (an upper bound of what was added to the stream)
        producing = True
        samples: list[tuple[int, int]] = []  # (XLEN, the most the stream may hold then)

        async def sample() -> None:
            while producing:
                done = await conn.llen(ledger_key)  # read first: it only grows
                xlen = await conn.xlen(stream)
                # Unfinished work is what was sent minus what was acked; a task is acked
                # after it recorded, and at most CONCURRENCY recorded tasks await their ack.
                samples.append((xlen, started - done + CONCURRENCY))
                await asyncio.sleep(0.05)

        async def lead_ok() -> bool:
            return started - await conn.llen(ledger_key) <= LEAD

        sampler = asyncio.create_task(sample())
        began = time.monotonic()
        try:
            for first in range(0, STEADY_TASKS, BATCH):
                await wait_until(lead_ok, timeout=30, interval=0.01, what="the worker to catch up")
                started += BATCH
                await asyncio.gather(*(add.kiq(i, 1) for i in range(first, first + BATCH)))
            await wait_until(
                lambda: _llen_at_least(conn, ledger_key, STEADY_TASKS),
                timeout=60,
                interval=0.05,
                what="all tasks to complete",
            )
            elapsed = time.monotonic() - began
        finally:
            producing = False
            await asyncio.wait_for(sampler, 10)
        await wait_until(lambda: _settled(conn, prefix), timeout=10, what="the stream to drain")

        info = await conn.xinfo_stream(stream)
        events = await ledger(redis_url, prefix)
        over = [(xlen, bound) for xlen, bound in samples if xlen > bound]
        peak = max(xlen for xlen, _ in samples)
        print(
            f"{STEADY_TASKS} tasks in {elapsed:.1f} s ({STEADY_TASKS / elapsed:.0f}/s); "
            f"XLEN peaked at {peak} over {len(samples)} samples; "
            f"{info['entries-added']} entries added in all"
        )
        assert set(events) == {f"add:{i}:1" for i in range(STEADY_TASKS)}
        assert info["entries-added"] >= STEADY_TASKS and info["length"] == 0
        assert len(samples) > 20
        assert not over, over[:10]
        assert peak <= LEAD + BATCH + CONCURRENCY
        assert proc.alive()
        assert "lost the lease" not in proc.log_path.read_text()  # no false alarms


async def _llen_at_least(conn: Redis, key: str, n: int) -> bool:
    return int(await conn.llen(key)) >= n


# -- Regressions found by these tests ---------------------------------------------------
async def test_pooled_connections_work_at_once_after_a_redis_restart(
    prefix: str, tmp_path: Path
) -> None:
    """A restart leaves every pooled connection stale; the next command on each must
    still succeed (it failed with "Connection closed by server": a lost result, a failed
    ``kiq()``, although Redis was back)."""
    with PrivateRedis(tmp_path / "redis") as server:
        async with producer(server.url, prefix):
            backend = current_broker().result_backend
            result: TaskiqResult[int] = TaskiqResult(
                is_err=False, return_value=3, execution_time=0.0
            )
            await add.kiq(1, 2)
            await backend.set_result("before", result)
            await asyncio.to_thread(server.restart)
            await add.kiq(3, 4)
            await backend.set_result("after", result)
            assert await backend.is_result_ready("after")


async def test_renewal_does_not_report_a_lease_lost_when_the_task_was_acked(
    redis_url: str, prefix: str, redis_cleanup: None, caplog: pytest.LogCaptureFixture
) -> None:
    """Renewal snapshots the held deliveries, then XCLAIMs them: one acked in between is
    done, not lost (under load every worker logged floods of false "lost the lease")."""
    options = TransportOptions(queues=("default",), key_prefix=prefix, lease_timeout_s=15)
    broker = RedisStreamsBroker(redis_url, options)
    broker.is_worker_process = True
    broker.receiver_attached = True
    await broker.startup()
    try:
        for body in (b"acked", b"stolen"):
            await broker.publish(
                "default", BrokerMessage(task_id="id", task_name="t", message=body, labels={})
            )
        acked, stolen = await broker.fetch(2, 1.0)
        assert isinstance(acked, RedisDelivery) and isinstance(stolen, RedisDelivery)
        await acked.ack()
        stream = stream_key(prefix, "default")
        async with broker.redis() as conn:
            await conn.xack(stream, GROUP, stolen.entry_id)  # taken away behind our back
            keeper = LeaseKeeper(
                broker.redis, [stream], GROUP, broker.consumer_name, 15, lambda: [acked, stolen]
            )
            with caplog.at_level(logging.WARNING, logger="asyncjobs.broker.redis"):
                await keeper.renew(conn)
        lost = [r.getMessage() for r in caplog.records if "lost the lease" in r.getMessage()]
        assert len(lost) == 1 and stolen.entry_id.decode() in lost[0], lost
    finally:
        await broker.shutdown()
