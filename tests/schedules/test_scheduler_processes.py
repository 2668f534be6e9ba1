"""Real ``taskiq scheduler asyncjobs.django.worker:scheduler`` processes, three at once,
sending an every-second schedule to Redis Streams with no worker running: the messages
in the stream are counted, tick by tick."""

from __future__ import annotations

import os
import signal
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from redis.asyncio import Redis

from asyncjobs import schedule_control
from asyncjobs.brokers.redis.streams import DATA, stream_key
from asyncjobs.config import load_config
from example.processes import REPO_ROOT, ManagedProcess
from tests.support.helpers import configured_app, wait_until

pytestmark = [pytest.mark.redis, pytest.mark.timeout(120)]

TASK = "tests.testapp.tasks:add"


def start_scheduler(redis_url: str, prefix: str, log_dir: Path, name: str) -> ManagedProcess:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.django_settings",
        "PYTHONPATH": str(REPO_ROOT),
        "PYTHONUNBUFFERED": "1",
        "ASYNCJOBS_BROKER_URL": redis_url,
        "ASYNCJOBS_KEY_PREFIX": prefix,
        "ASYNCJOBS_QUEUES": "default,other",
        "ASYNCJOBS_SCHEDULES": orjson.dumps(
            [{"TASK": TASK, "EVERY": 1, "ARGS": [1, 2], "ID": "every-second"}]
        ).decode(),
    }
    argv = [sys.executable, "-m", "taskiq", "scheduler", "asyncjobs.django.worker:scheduler"]
    return ManagedProcess(name, argv, log_path=log_dir / f"{name}.log", env=env)


async def ticks_sent(conn: Redis, prefix: str) -> Counter[int]:
    """How many messages the stream holds per tick (ms), from their task ids."""
    entries = await conn.xrange(stream_key(prefix, "default"))
    counts: Counter[int] = Counter()
    for _, fields in entries:
        message = orjson.loads(fields[DATA])
        assert message["task_name"] == TASK and message["args"] == [1, 2]
        schedule_id, tick = message["task_id"].rsplit(":", 1)
        assert schedule_id == "every-second"
        assert (
            message["labels"]["schedule_tick"]
            == datetime.fromtimestamp(int(tick) / 1000, UTC).isoformat()
        )
        counts[int(tick)] += 1
    return counts


def assert_once_without_gaps(counts: Counter[int]) -> None:
    assert counts and set(counts.values()) == {1}, {t: n for t, n in counts.items() if n != 1}
    ticks = sorted(counts)
    assert ticks == list(range(ticks[0], ticks[-1] + 1000, 1000)), "a tick is missing"


async def test_three_schedulers_send_every_tick_once_also_across_a_kill(
    redis_url: str, prefix: str, redis_cleanup: None, tmp_path: Path
) -> None:
    conn = Redis.from_url(redis_url)
    schedulers = [start_scheduler(redis_url, prefix, tmp_path, f"s{i}") for i in range(3)]
    try:

        async def at_least(n: int) -> Counter[int] | None:
            counts = await ticks_sent(conn, prefix)
            return counts if len(counts) >= n else None

        await wait_until(lambda: at_least(6), timeout=40, interval=0.2, what="6 ticks")
        schedulers[0].kill()  # SIGKILL: whatever it held is left behind
        schedulers[0] = start_scheduler(redis_url, prefix, tmp_path, "s0-again")
        before = len(await ticks_sent(conn, prefix))
        await wait_until(
            lambda: at_least(before + 8), timeout=40, interval=0.2, what="8 more ticks"
        )
        for proc in schedulers:
            proc.signal(signal.SIGTERM)  # a clean stop (claims marked sent)
        for proc in schedulers:
            assert proc.wait(15) is not None, proc.describe()
        assert_once_without_gaps(await ticks_sent(conn, prefix))
        logs = "".join(p.tail(400) for p in schedulers)
        assert "Traceback" not in logs, logs[-3000:]
    finally:
        for proc in schedulers:
            proc.stop(timeout_s=5)
        await conn.aclose()


async def messages(conn: Redis, prefix: str) -> list[dict[str, Any]]:
    return [orjson.loads(f[DATA]) for _, f in await conn.xrange(stream_key(prefix, "default"))]


async def test_pause_resume_and_run_now_with_a_running_scheduler(
    redis_url: str, prefix: str, redis_cleanup: None, tmp_path: Path
) -> None:
    settings = {
        "BROKER_URL": redis_url,
        "KEY_PREFIX": prefix,
        "QUEUES": ["default", "other"],
        "SCHEDULES": [{"TASK": TASK, "EVERY": 1, "ARGS": [1, 2], "ID": "every-second"}],
    }
    conn = Redis.from_url(redis_url)
    scheduler = start_scheduler(redis_url, prefix, tmp_path, "s")
    try:
        async with configured_app(load_config(settings, environ={})):

            async def count_at_least(n: int) -> int | None:
                found = len(await messages(conn, prefix))
                return found if found >= n else None

            await wait_until(lambda: count_at_least(3), timeout=40, interval=0.2, what="ticks")
            state = await schedule_control.pause("every-second")
            assert state.paused and state.next_tick is None
            # Within the reload interval (10 s) the ticks stop: none for two periods.
            quiet = await wait_until(Quiet(conn, prefix, 2.5), timeout=20, interval=0.2)
            task_id = await schedule_control.run_now("every-second")  # paused or not
            resumed_ms = time.time() * 1000
            state = await schedule_control.resume("every-second")
            assert not state.paused and state.next_tick is not None
            await wait_until(lambda: count_at_least(quiet + 3), timeout=20, interval=0.2)
        sent = await messages(conn, prefix)
        [manual] = [m for m in sent if m["task_id"] == task_id]
        assert manual["labels"]["schedule_id"] == "every-second" and manual["args"] == [1, 2]
        assert ":" not in task_id  # a fresh id, no tick's
        # Ticks sent after the resume are all newer than it: the pause is not caught up.
        after = [m for m in sent[quiet:] if m["task_id"] != task_id]
        assert all(int(m["task_id"].rsplit(":", 1)[1]) > resumed_ms - 1000 for m in after)
        assert_once_without_gaps(Counter(int(m["task_id"].rsplit(":", 1)[1]) for m in after))
    finally:
        scheduler.stop(timeout_s=5)
        await conn.aclose()


class Quiet:
    """A probe: the stream's message count once it has not changed for ``seconds``."""

    def __init__(self, conn: Redis, prefix: str, seconds: float) -> None:
        self.conn, self.prefix, self.seconds = conn, prefix, seconds
        self.seen, self.since = -1, time.monotonic()

    async def __call__(self) -> int | None:
        count, now = len(await messages(self.conn, self.prefix)), time.monotonic()
        if count != self.seen:
            self.seen, self.since = count, now
            return None
        return count if now - self.since >= self.seconds else None
