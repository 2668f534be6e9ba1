"""``asyncjobs dlq list|show|replay|purge`` against the real Redis."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest

from asyncjobs.brokers.redis.streams import stream_key
from asyncjobs.cli import run
from asyncjobs.config import AsyncJobsConfig
from tests.support.helpers import wait_until
from tests.support.worker_harness import Worker
from tests.testapp import tasks

pytestmark = pytest.mark.redis
ROOT = Path(__file__).resolve().parents[2]


def cli(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    return run(list(argv), out=out), out.getvalue()


async def dead_lettered(start_worker: Callable[..., object]) -> Worker:
    worker: Worker = await start_worker()  # type: ignore[misc]
    await tasks.always_fails.kiq("x")
    await tasks.rejects.kiq("y")
    await wait_until(lambda: _count(worker, 2), what="two dead letters")
    await worker.stop()
    return worker


async def _count(worker: Worker, n: int) -> bool:
    return len(await worker.dead()) == n


async def test_list_and_show(start_worker: Callable[..., object]) -> None:
    await dead_lettered(start_worker)
    status, text = await _in_thread(cli, "dlq", "list")
    assert status == 0
    assert "max_attempts" in text and "rejected" in text and "RuntimeError: boom x" in text
    status, text = await _in_thread(cli, "dlq", "list", "--json")
    listed = orjson.loads(text)
    assert {item["reason"] for item in listed} == {"max_attempts", "rejected"}
    first = next(item for item in listed if item["reason"] == "max_attempts")
    assert first["attempts"] == 3 and first["queue"] == "default"
    status, text = await _in_thread(cli, "dlq", "show", first["id"], "--json")
    shown = orjson.loads(text)
    assert orjson.loads(shown["body"])["task_name"] == tasks.always_fails.task_name
    assert (await _in_thread(cli, "dlq", "show", "0-1"))[0] == 1  # not found: a clear error


async def test_replay_runs_the_task_again_with_fresh_attempts(
    start_worker: Callable[..., object], configured: AsyncJobsConfig
) -> None:
    worker = await dead_lettered(start_worker)
    letter = next(item for item in await worker.dead() if item.reason.value == "max_attempts")
    status, _ = await _in_thread(cli, "dlq", "replay", letter.id)
    assert status == 0
    [(_, fields)] = await worker.conn.xrange(stream_key(configured.key_prefix, "default"))
    assert "asyncjobs_attempt" not in orjson.loads(fields[b"data"])["labels"]
    again: Worker = await start_worker()  # type: ignore[misc]
    await wait_until(lambda: _count(again, 2), what="the replayed task to fail again")
    assert (await again.ledger()).count("fail:x") == 6  # three attempts, twice


async def test_list_and_replay_all_take_reason_and_task_filters(
    start_worker: Callable[..., object],
) -> None:
    await dead_lettered(start_worker)
    status, text = await _in_thread(cli, "dlq", "list", "--reason", "rejected", "--json")
    assert status == 0 and [item["reason"] for item in orjson.loads(text)] == ["rejected"]
    _, text = await _in_thread(cli, "dlq", "list", "--task", tasks.always_fails.task_name)
    assert "max_attempts" in text and "rejected" not in text
    status, text = await _in_thread(cli, "dlq", "replay", "--all", "--reason", "rejected")
    assert (status, text) == (0, "replayed 1 dead letters (0 skipped: gone meanwhile)\n")
    status, _ = await _in_thread(cli, "dlq", "replay", "0-1", "--task", "x")
    assert status == 1  # the filters go with --all
    _, text = await _in_thread(cli, "dlq", "list", "--json")
    assert [item["reason"] for item in orjson.loads(text)] == ["max_attempts"]


async def test_purge_needs_yes(start_worker: Callable[..., object]) -> None:
    worker = await dead_lettered(start_worker)
    status, text = await _in_thread(cli, "dlq", "purge")
    assert status == 2 and "would delete 2" in text
    assert len(await worker.dead()) == 2
    status, text = await _in_thread(cli, "dlq", "purge", "--yes", "--json")
    assert orjson.loads(text) == {"purged": {"default": 2, "other": 0}}
    assert await worker.dead() == []


async def test_unknown_queue_is_a_clear_error(configured: AsyncJobsConfig) -> None:
    status, _ = await _in_thread(cli, "dlq", "list", "--queue", "nope")
    assert status == 1


def test_manage_py_runs_the_same_cli(redis_url: str, prefix: str) -> None:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.django_settings",
        "ASYNCJOBS_KEY_PREFIX": prefix,
    }
    proc = subprocess.run(
        [sys.executable, "-m", "django", "asyncjobs", "dlq", "list", "--json"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert orjson.loads(proc.stdout) == []
    script = Path(sys.executable).with_name("asyncjobs")
    proc = subprocess.run(
        [str(script), "dlq", "list"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0 and "no dead letters" in proc.stdout, proc.stderr


async def _in_thread(func: Callable[..., tuple[int, str]], *args: str) -> tuple[int, str]:
    """The CLI runs its own event loop (asyncio.run), as from a shell."""
    import asyncio

    return await asyncio.to_thread(func, *args)
