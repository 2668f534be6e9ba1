"""The worker's task log, with the receiver in-process against the real Redis: a line when
a task is received (DEBUG) and when it succeeded (INFO), one WARNING per failed attempt and one
ERROR for the dead letter, each with its traceback once; taskiq's own ERROR record of the
same exception is dropped, and only that one."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest

from asyncjobs.worker.task_log import (
    TASKIQ_RECEIVER_LOGGER,
    TASKIQ_TASK_ERROR,
    TaskiqTaskErrorFilter,
    install_taskiq_filter,
    reporting_task_errors,
)
from tests.support.helpers import wait_until
from tests.support.worker_harness import Worker
from tests.testapp import tasks

pytestmark = pytest.mark.redis

TASK_LOGGER = "asyncjobs.worker.tasks"
TRACEBACK = "Traceback (most recent call last)"


def lines_of(caplog: pytest.LogCaptureFixture, task_id: str) -> list[logging.LogRecord]:
    """The task log's records about ``task_id``, in order."""
    return [r for r in caplog.records if r.name == TASK_LOGGER and task_id in r.getMessage()]


def from_taskiq(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name.startswith("taskiq") and r.levelno >= logging.ERROR]


async def test_a_success_is_one_received_and_one_succeeded_line(
    start_worker: Callable[..., object], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger=TASK_LOGGER)
    await start_worker()
    handle = await tasks.add.kiq(2, 3)
    assert (await handle.wait_result(timeout=10)).return_value == 5

    async def both() -> list[logging.LogRecord]:
        found = lines_of(caplog, handle.task_id)
        return found if len(found) == 2 else []

    received, succeeded = await wait_until(both, what="received and succeeded lines")
    name = tasks.add.task_name
    assert (received.levelno, succeeded.levelno) == (logging.DEBUG, logging.INFO)
    assert received.getMessage() == (
        f"task {name} [{handle.task_id}] received from queue default, attempt 1"
    )
    assert succeeded.getMessage().startswith(
        f"task {name} [{handle.task_id}] succeeded on attempt 1 in 0.0"
    )
    assert succeeded.getMessage().endswith(" s")


async def test_at_info_a_success_is_one_line(
    start_worker: Callable[..., object], caplog: pytest.LogCaptureFixture
) -> None:
    """taskiq worker's default level: the outcome only (received is DEBUG)."""
    caplog.set_level(logging.INFO)
    await start_worker()
    handle = await tasks.add.kiq(1, 1)
    assert (await handle.wait_result(timeout=10)).return_value == 2

    async def logged() -> list[logging.LogRecord]:
        return lines_of(caplog, handle.task_id)

    [succeeded] = await wait_until(logged, what="the succeeded line")
    assert succeeded.levelno == logging.INFO and " succeeded on attempt 1 in " in (
        succeeded.getMessage()
    )


async def test_each_failed_attempt_is_one_warning_with_its_traceback_once(
    start_worker: Callable[..., object], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    caplog.set_level(logging.DEBUG, logger=TASK_LOGGER)
    await start_worker()
    handle = await tasks.flaky.kiq("logs", 2)  # fails attempts 1 and 2, then succeeds
    assert (await handle.wait_result(timeout=20)).return_value == 3

    async def all_lines() -> list[logging.LogRecord]:
        found = lines_of(caplog, handle.task_id)
        return found if len(found) == 6 else []

    found = await wait_until(all_lines, what="the task's six lines")
    expected = [
        ("DEBUG", "received from queue default, attempt 1"),
        ("WARNING", "failed on attempt 1/5: "),
        ("DEBUG", "received from queue default, attempt 2"),
        ("WARNING", "failed on attempt 2/5: "),
        ("DEBUG", "received from queue default, attempt 3"),
        ("INFO", "succeeded on attempt 3 in "),
    ]
    for record, (level, start) in zip(found, expected, strict=True):
        assert record.levelname == level
        assert record.getMessage().startswith(
            f"task {tasks.flaky.task_name} [{handle.task_id}] {start}"
        )
    for attempt, warning in ((1, found[1]), (2, found[3])):
        assert f"ConnectionError: flaky logs failed attempt {attempt}; retrying in" in (
            warning.getMessage()
        )
        assert warning.exc_info is not None and isinstance(warning.exc_info[1], ConnectionError)
    # Two failed attempts, two tracebacks: ours. taskiq's ERROR copy of each is gone.
    assert caplog.text.count(TRACEBACK) == 2
    assert from_taskiq(caplog) == []


async def test_the_last_failed_attempt_is_one_error_naming_the_dead_letter(
    start_worker: Callable[..., object], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    caplog.set_level(logging.DEBUG, logger=TASK_LOGGER)
    worker: Worker = await start_worker()  # type: ignore[misc]
    handle = await tasks.picky.kiq("last", "IndexError")  # 3 attempts, fast backoff
    [letter] = await wait_until(worker.dead, what="a dead letter")

    async def all_lines() -> list[logging.LogRecord]:
        found = lines_of(caplog, handle.task_id)
        return found if len(found) == 6 else []

    found = await wait_until(all_lines, what="the task's six lines")
    assert [r.levelname for r in found] == ["DEBUG", "WARNING"] * 2 + ["DEBUG", "ERROR"]
    final = found[-1]
    assert final.getMessage() == (
        f"task {tasks.picky.task_name} [{handle.task_id}] failed on attempt 3/3: "
        "IndexError: last; giving up (max_attempts): dead-lettered in queue default"
    )
    assert final.exc_info is not None and isinstance(final.exc_info[1], IndexError)
    assert letter.task_id == handle.task_id
    assert caplog.text.count(TRACEBACK) == 3  # one per attempt
    assert from_taskiq(caplog) == []
    assert "dead-lettered" not in " ".join(r.getMessage() for r in found[:-1])


async def test_the_received_and_succeeded_lines_turn_off_with_their_logger(
    start_worker: Callable[..., object], caplog: pytest.LogCaptureFixture
) -> None:
    """What README "Running workers" says: the INFO lines go, the failures stay."""
    caplog.set_level(logging.INFO)
    caplog.set_level(logging.WARNING, logger=TASK_LOGGER)
    await start_worker()
    handle = await tasks.flaky.kiq("quiet", 1)
    assert (await handle.wait_result(timeout=20)).return_value == 2

    async def logged() -> list[logging.LogRecord]:
        return lines_of(caplog, handle.task_id)

    [warning] = await wait_until(logged, what="the warning")
    assert warning.levelno == logging.WARNING and "failed on attempt 1/5" in warning.getMessage()
    assert lines_of(caplog, handle.task_id) == [warning]  # and nothing at INFO


def test_only_taskiqs_record_of_a_task_exception_inside_our_runs_is_dropped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    install_taskiq_filter()
    install_taskiq_filter()  # once per process, however many receivers
    taskiq_logger = logging.getLogger(TASKIQ_RECEIVER_LOGGER)
    assert sum(isinstance(f, TaskiqTaskErrorFilter) for f in taskiq_logger.filters) == 1
    with caplog.at_level(logging.INFO):
        taskiq_logger.error(TASKIQ_TASK_ERROR)  # outside a run of ours: kept
        with reporting_task_errors():
            taskiq_logger.error(TASKIQ_TASK_ERROR)  # ours reports it: dropped
            taskiq_logger.error("Can't set result in result backend.")  # anything else: kept
            taskiq_logger.warning("Timeouts for sync tasks don't work in python well.")
    assert [r.getMessage() for r in caplog.records if r.name == TASKIQ_RECEIVER_LOGGER] == [
        TASKIQ_TASK_ERROR,
        "Can't set result in result backend.",
        "Timeouts for sync tasks don't work in python well.",
    ]
