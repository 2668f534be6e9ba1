"""Retries, backoff and timeouts with the worker in-process, on Redis Streams and RabbitMQ.

The test tasks (``tests/testapp/tasks.py``) write each attempt, with the time it started,
to the Redis ledger; the gaps between attempts are measured from those times.
"""

from __future__ import annotations

import io
import itertools
import logging
import time
from collections.abc import Callable

import pytest

from asyncjobs import failed_attempts, job
from asyncjobs.brokers.dead_letters import DeadLetter, Reason
from asyncjobs.cli import run
from tests.support.helpers import wait_until
from tests.support.worker_harness import Worker
from tests.testapp import tasks

pytestmark = pytest.mark.redis

# A retry or a delayed message arrives this long after it is due at most: the worker's
# fetch wait, RabbitMQ's delay-queue rounding (< 10 %, 100 ms below 1 s), slow CI.
LATE_S = 0.6
EARLY_S = 0.01  # clock granularity (Redis's ms scores)


async def one_dead_letter(worker: Worker, timeout: float = 15.0) -> DeadLetter:
    [record] = await wait_until(worker.dead, timeout=timeout, what="a dead letter")
    return record


def stamps(events: list[str], kind: str, tag: str) -> list[tuple[int, float]]:
    """(attempt, time) of the ledger's ``{kind}:{tag}:{attempt}:{time}`` events."""
    found = [e.split(":") for e in events if e.startswith(f"{kind}:{tag}:")]
    return [(int(parts[2]), float(parts[3])) for parts in found]


async def test_a_task_failing_three_times_completes_on_attempt_4_after_backoff(
    start_any_worker: Callable[..., object], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="asyncjobs.worker")
    worker: Worker = await start_any_worker()  # type: ignore[misc]
    handle = await tasks.flaky.kiq("f", 3)
    result = await handle.wait_result(timeout=20)
    assert not result.is_err and result.return_value == 4
    tries = stamps(await worker.ledger(), "try", "f")
    assert [attempt for attempt, _ in tries] == [1, 2, 3, 4]
    for failed, ((_, before), (_, after)) in enumerate(itertools.pairwise(tries), start=1):
        low, high = tasks.FLAKY_BACKOFF.bounds_s(failed)
        gap = after - before
        assert low - EARLY_S <= gap <= high + LATE_S, f"gap {failed}: {gap:.3f} s"
    # Visibility: every failure is in the result's labels, the attempt record and the log.
    history = result.labels["asyncjobs_history"]
    assert [(h["attempt"], h["error_type"]) for h in history] == [
        (1, "ConnectionError"),
        (2, "ConnectionError"),
        (3, "ConnectionError"),
    ]
    recorded = await failed_attempts(handle.task_id)
    assert [(r["attempt"], r["error_message"]) for r in recorded] == [
        (n, f"flaky f failed attempt {n}") for n in (1, 2, 3)
    ]
    logged = [r.getMessage() for r in caplog.records if "failed on attempt" in r.getMessage()]
    assert len(logged) == 3 and "attempt 3/5" in logged[2] and "retrying in" in logged[2]
    assert await worker.dead() == []


async def test_max_attempts_3_runs_exactly_3_times_then_dead_letters_with_history(
    start_any_worker: Callable[..., object],
) -> None:
    worker: Worker = await start_any_worker()  # type: ignore[misc]
    handle = await tasks.always_fails.kiq("h")
    record = await one_dead_letter(worker)
    assert record.reason is Reason.MAX_ATTEMPTS and record.attempts == 3
    assert [(h["attempt"], h["error_type"], h["error_message"]) for h in record.history] == [
        (n, "RuntimeError", "boom h") for n in (1, 2, 3)
    ]
    result = await handle.wait_result(timeout=5)
    assert result.is_err and len(result.labels["asyncjobs_history"]) == 3
    assert await worker.ledger() == ["fail:h"] * 3

    # `asyncjobs dlq show` prints the history; `dlq replay` runs the task again, afresh.
    # (The CLI is a process of its own with its own event loop: no worker shares it here.)
    await worker.stop()
    status, shown = await _cli("dlq", "show", record.id)
    assert status == 0 and "attempt 3 at " in shown and "RuntimeError: boom h" in shown
    status, _ = await _cli("dlq", "replay", record.id)
    assert status == 0
    worker = await start_any_worker()  # type: ignore[misc]
    again = await one_dead_letter(worker)
    assert again.id != record.id and again.attempts == 3 and len(again.history) == 3
    assert await worker.ledger() == ["fail:h"] * 6


async def test_reject_and_errors_outside_retry_on_are_not_retried(
    start_any_worker: Callable[..., object],
) -> None:
    worker: Worker = await start_any_worker()  # type: ignore[misc]
    await tasks.picky.kiq("k", "KeyError")  # a LookupError, but in no_retry_on
    await tasks.picky.kiq("v", "ValueError")  # not a LookupError
    await tasks.picky.kiq("i", "IndexError")  # retried up to max_attempts
    await tasks.rejects.kiq("r")
    records = await wait_until(lambda: _at_least(worker, 4), timeout=15, what="four dead letters")
    by_error = {r.error_type or r.reason.value: r for r in records}
    assert by_error["KeyError"].reason is Reason.NOT_RETRYABLE
    assert by_error["ValueError"].reason is Reason.NOT_RETRYABLE
    assert by_error["IndexError"].reason is Reason.MAX_ATTEMPTS
    assert by_error["Reject"].reason is Reason.REJECTED
    events = await worker.ledger()
    assert events.count("picky:k:1") == 1 and events.count("picky:v:1") == 1
    assert [e for e in events if e.startswith("picky:i:")] == [f"picky:i:{n}" for n in (1, 2, 3)]


async def test_a_timed_out_async_task_is_cancelled_at_its_deadline_and_retried(
    start_any_worker: Callable[..., object],
) -> None:
    worker: Worker = await start_any_worker()  # type: ignore[misc]
    handle = await tasks.overruns.kiq("t")
    record = await one_dead_letter(worker)
    assert record.reason is Reason.MAX_ATTEMPTS and record.attempts == 2
    assert [h["error_type"] for h in record.history] == ["TimeoutError", "TimeoutError"]
    events = await wait_until(
        lambda: _ledger_with(worker, "cancelled:t:2"), what="the second cancellation"
    )
    starts, cancels = stamps(events, "start", "t"), stamps(events, "cancelled", "t")
    assert [a for a, _ in starts] == [1, 2] and [a for a, _ in cancels] == [1, 2]
    for (_, started), (_, cancelled) in zip(starts, cancels, strict=True):
        assert 0.5 - EARLY_S <= cancelled - started <= 0.5 + LATE_S  # timeout=0.5
    assert (await handle.wait_result(timeout=5)).is_err


async def test_a_sync_task_past_its_timeout_fails_and_its_late_result_is_ignored(
    start_any_worker: Callable[..., object],
) -> None:
    worker: Worker = await start_any_worker()  # type: ignore[misc]
    handle = await tasks.sync_overruns.kiq("s", 1.0)  # timeout=0.3, max_attempts=1
    record = await one_dead_letter(worker)
    assert record.reason is Reason.MAX_ATTEMPTS and record.error_type == "TimeoutError"
    # The thread could not be stopped: it finishes later, and what it returns goes nowhere.
    await wait_until(lambda: _ledger_with(worker, "sync-finished:s"), what="the thread's end")
    result = await job(handle.task_id).get_result()
    assert result.is_err and result.return_value is None


async def test_a_delayed_kiq_runs_after_its_delay_not_before(
    start_any_worker: Callable[..., object],
) -> None:
    await start_any_worker()
    before = time.time()
    handle = await tasks.stamp.kicker().with_labels(delay=2).kiq("d")
    after = time.time()
    ran = (await handle.wait_result(timeout=10)).return_value
    assert before + 2 - EARLY_S <= ran <= after + 2 + LATE_S


async def _at_least(worker: Worker, count: int) -> list[DeadLetter] | None:
    found = await worker.dead()
    return found if len(found) >= count else None


async def _ledger_with(worker: Worker, start: str) -> list[str] | None:
    """The ledger once it holds an event starting with ``start``."""
    events = await worker.ledger()
    return events if any(e.startswith(start) for e in events) else None


async def _cli(*argv: str) -> tuple[int, str]:
    """The CLI runs its own event loop (asyncio.run), as from a shell: in a thread."""
    import asyncio

    def call() -> tuple[int, str]:
        out = io.StringIO()
        return run(list(argv), out=out), out.getvalue()

    return await asyncio.to_thread(call)
