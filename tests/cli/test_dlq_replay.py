"""``replay --all`` replays a snapshot: the dead letters there when it started, each once,
on both transports; its filters, and letters another operator removed meanwhile."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator, Callable, Mapping
from functools import partial
from pathlib import Path

import orjson
import pytest

from asyncjobs import current_broker
from asyncjobs.brokers.base import ReliableBroker
from asyncjobs.brokers.dead_letters import DeadLetter, Reason
from asyncjobs.brokers.factory import build_broker
from asyncjobs.config import AsyncJobsConfig
from asyncjobs.dead_letters import DeadLetters, ReplayCount
from asyncjobs.errors import ConfigurationError
from tests.support.helpers import django_env, wait_until
from tests.support.worker_harness import Worker
from tests.testapp import tasks

ROOT = Path(__file__).resolve().parents[2]


def cli_process(config: AsyncJobsConfig, *argv: str) -> str:
    """``python -m django asyncjobs ...`` in a process of its own, as an operator runs it
    next to running workers (this checkout's code, this test's prefix)."""
    env = django_env(config)
    proc = subprocess.run(
        [sys.executable, "-m", "django", "asyncjobs", *argv],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


async def dead_letters(worker: Worker, count: int) -> list[DeadLetter]:
    """The worker's dead letters once there are exactly ``count`` (else [])."""
    letters = await worker.dead()
    return letters if len(letters) == count else []


@pytest.fixture
async def second_operator(configured_any: AsyncJobsConfig) -> AsyncIterator[ReliableBroker]:
    """Another process's client on the same broker (its own connections)."""
    broker = build_broker(configured_any.broker_url, configured_any.transport_options())
    assert isinstance(broker, ReliableBroker)
    await broker.home.claim()  # its client lives in this loop, as a process's would
    await broker.ensure_started()
    yield broker
    await broker.shutdown()


async def five_dead_letters(worker: Worker) -> list[DeadLetter]:
    """Five ``rejects`` letters (straight to the dead letters, no retry)."""
    for n in range(5):
        await tasks.rejects.kiq(f"r{n}")
    return await wait_until(lambda: dead_letters(worker, 5), timeout=20, what="5 dead letters")


async def back_again(worker: Worker, first: list[DeadLetter]) -> list[DeadLetter]:
    """The 5 letters once each replayed one ran and was dead-lettered again (new ids)."""
    old_ids = {letter.id for letter in first}

    async def five_new_letters() -> list[DeadLetter]:
        letters = await dead_letters(worker, 5)
        return letters if not old_ids & {letter.id for letter in letters} else []

    again = await wait_until(five_new_letters, timeout=20, what="the 5 replayed to fail again")
    assert sorted(letter.task_id for letter in again) == sorted(x.task_id for x in first)
    assert Counter(await worker.ledger()) == {f"reject:r{n}": 2 for n in range(5)}
    return again


async def test_letters_failing_again_during_replay_all_are_not_replayed_again(
    start_any_worker: Callable[..., object],
    second_operator: ReliableBroker,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """D7: ``replay --all`` while workers run replayed 5 letters 581 times: it drained the
    queue the replayed letters kept coming back to. Here the race is forced: after each
    replay call, the worker runs what was replayed and dead-letters it again before the
    replay goes on (and Redis reads its snapshot 2 letters a page)."""
    worker: Worker = await start_any_worker()  # type: ignore[misc]
    first = await five_dead_letters(worker)
    replay, snapshot = second_operator.replay_dead_letters, second_operator.dead_letter_snapshot
    replayed: list[str] = []

    async def replay_then_fail_again(queue: str, bodies: Mapping[str, bytes]) -> set[str]:
        gone = await replay(queue, bodies)
        replayed.extend(letter_id for letter_id in bodies if letter_id not in gone)
        assert len(replayed) == len(set(replayed)) <= 5, "a dead letter was replayed twice"
        runs = 5 + len(replayed)
        await wait_until(lambda: failed_again(worker, runs), timeout=20, what="failing again")
        return gone

    monkeypatch.setattr(second_operator, "replay_dead_letters", replay_then_fail_again)
    monkeypatch.setattr(second_operator, "dead_letter_snapshot", partial(snapshot, page_size=2))
    report = await DeadLetters(second_operator).replay_all()

    assert report.queues == {"default": ReplayCount(5, 0), "other": ReplayCount(0, 0)}
    assert sorted(replayed) == sorted(letter.id for letter in first)
    await back_again(worker, first)


async def failed_again(worker: Worker, runs: int) -> bool:
    """The task ran ``runs`` times in all, and each run is in the dead letters again."""
    return len(await worker.ledger()) == runs and len(await worker.dead()) == 5


async def test_cli_replay_all_reports_the_count_while_workers_run(
    start_any_worker: Callable[..., object], configured_any: AsyncJobsConfig
) -> None:
    """The same from a shell, unforced: the command prints what it replayed, once each."""
    worker: Worker = await start_any_worker()  # type: ignore[misc]
    first = await five_dead_letters(worker)

    out = await asyncio.to_thread(cli_process, configured_any, "dlq", "replay", "--all", "--json")

    assert orjson.loads(out) == {"replayed": 5, "skipped": 0}
    await back_again(worker, first)


async def rejected_and_failed(start_any_worker: Callable[..., object]) -> DeadLetters:
    """Two ``rejects`` letters (rejected) and one ``always_fails`` (max_attempts); the
    worker stopped, so nothing replayed comes back."""
    worker: Worker = await start_any_worker()  # type: ignore[misc]
    await tasks.rejects.kiq("a")
    await tasks.rejects.kiq("b")
    await tasks.always_fails.kiq("c")
    await wait_until(lambda: dead_letters(worker, 3), timeout=20, what="3 dead letters")
    await worker.stop()
    return DeadLetters.of(current_broker())


def task_tags(letters: list[DeadLetter]) -> list[str]:
    return sorted(orjson.loads(letter.body)["args"][0] for letter in letters)


async def test_list_and_replay_all_filter_by_reason_and_task(
    start_any_worker: Callable[..., object],
) -> None:
    letters = await rejected_and_failed(start_any_worker)
    rejects = tasks.rejects.task_name
    assert task_tags(await letters.list(reason="rejected")) == ["a", "b"]
    assert task_tags(await letters.list(task_name=tasks.always_fails.task_name)) == ["c"]
    assert await letters.list(reason=Reason.MAX_ATTEMPTS, task_name=rejects) == []
    assert task_tags(await letters.list(reason="rejected", limit=1)) in (["a"], ["b"])
    with pytest.raises(ConfigurationError, match="unknown dead-letter reason 'nope'"):
        await letters.replay_all(reason="nope")

    report = await letters.replay_all(reason="max_attempts")
    assert (report.replayed, report.skipped) == (1, 0)
    assert report.queues == {"default": ReplayCount(1, 0), "other": ReplayCount(0, 0)}
    assert task_tags(await letters.list()) == ["a", "b"]

    report = await letters.replay_all("default", reason="rejected", task_name=rejects)
    assert report.queues == {"default": ReplayCount(2, 0)}
    assert await letters.list() == []


async def test_a_letter_removed_after_the_snapshot_is_skipped_and_counted(
    start_any_worker: Callable[..., object],
    second_operator: ReliableBroker,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    letters = await rejected_and_failed(start_any_worker)
    snapshot = letters.broker.dead_letter_snapshot

    async def another_operator_deletes_one(
        queue: str, page_size: int = 500
    ) -> AsyncIterator[list[DeadLetter]]:
        async for page in snapshot(queue, page_size):
            # The page is read; before its replay, someone else deletes its second letter.
            await second_operator.delete_dead_letter(queue, page[1].id)
            yield page

    monkeypatch.setattr(letters.broker, "dead_letter_snapshot", another_operator_deletes_one)
    report = await letters.replay_all("default")

    assert report.queues == {"default": ReplayCount(replayed=2, skipped=1)}
    assert await letters.list() == []
