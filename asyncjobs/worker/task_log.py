"""The worker's log of its tasks: one line per event, each naming the task and its id,
on the logger ``asyncjobs.worker.tasks``.

- DEBUG: ``received`` when a message is decoded (the line costs as much as the run of a
  tiny task; ``inspect`` and the in-flight metrics say what is running);
- INFO: how the run ended: ``succeeded`` (with the attempt and the duration) or
  ``postponed`` (a ``before_run`` hook asked);
- WARNING: a failed attempt that will be retried, and a task cut off at the drain
  deadline (handed back), each with its traceback;
- ERROR: a dead letter: the failed attempt that ends a task, with its traceback, or the
  reason a message could not run at all.

taskiq's receiver logs every exception a task raises itself, at ERROR with the traceback
("Exception found while executing function."), before anyone knows whether the attempt
will be retried: every failed attempt showed its traceback twice, once as an error. A
filter on taskiq's receiver logger drops exactly that record, and only for the runs of
this receiver (``reporting_task_errors``); every other record of taskiq's passes.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from contextvars import ContextVar

from asyncjobs.brokers.dead_letters import DeadLetter, excerpt
from asyncjobs.hooks import Run
from asyncjobs.worker.outcomes import describe

logger = logging.getLogger("asyncjobs.worker.tasks")

TASKIQ_RECEIVER_LOGGER = "taskiq.receiver.receiver"
# taskiq's receiver.run_task: logger.exception(...) for every exception of a task.
TASKIQ_TASK_ERROR = "Exception found while executing function."

_reporting: ContextVar[bool] = ContextVar("asyncjobs_reports_task_errors", default=False)


class TaskiqTaskErrorFilter(logging.Filter):
    """Drops taskiq's ERROR record of a task's exception inside a run of ours: our own
    line says what became of the attempt, with the same traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (_reporting.get() and record.msg == TASKIQ_TASK_ERROR)


def install_taskiq_filter() -> None:
    """Add the filter to taskiq's receiver logger, once per process."""
    taskiq_logger = logging.getLogger(TASKIQ_RECEIVER_LOGGER)
    if not any(isinstance(f, TaskiqTaskErrorFilter) for f in taskiq_logger.filters):
        taskiq_logger.addFilter(TaskiqTaskErrorFilter())


@contextlib.contextmanager
def reporting_task_errors() -> Iterator[None]:
    """Around ``run_task``: a task's exception is reported here, not by taskiq."""
    token = _reporting.set(True)
    try:
        yield
    finally:
        _reporting.reset(token)


def received(run: Run) -> None:
    logger.debug(
        "task %s [%s] received from queue %s, attempt %d",
        run.task_name,
        run.task_id,
        run.queue,
        run.attempt,
    )


def succeeded(run: Run, duration_s: float) -> None:
    logger.info(
        "task %s [%s] succeeded on attempt %d in %.3f s",
        run.task_name,
        run.task_id,
        run.attempt,
        duration_s,
    )


def postponed(run: Run, delay_s: float) -> None:
    logger.info(
        "task %s [%s] postponed by a hook for %.2f s, before attempt %d",
        run.task_name,
        run.task_id,
        delay_s,
        run.attempt,
    )


def retrying(run: Run, max_attempts: int, error: BaseException | None, delay_s: float) -> None:
    logger.warning(
        "task %s [%s] failed on attempt %d/%d: %s; retrying in %.2f s",
        run.task_name,
        run.task_id,
        run.attempt,
        max_attempts,
        describe(error),
        delay_s,
        exc_info=error,
    )


def cut_off(run: Run) -> None:
    logger.warning(
        "task %s [%s] cut off at the drain deadline on attempt %d; handed back to run again",
        run.task_name,
        run.task_id,
        run.attempt,
        exc_info=run.error,
    )


def gave_up(
    run: Run, max_attempts: int, error: BaseException | None, record: DeadLetter, why: str
) -> None:
    """The last failed attempt of a task, dead-lettered (``why``: a failure to send the
    retry, when that is what ended it)."""
    logger.error(
        "task %s [%s] failed on attempt %d/%d: %s; giving up (%s): dead-lettered in queue %s%s",
        run.task_name,
        run.task_id,
        run.attempt,
        max_attempts,
        describe(error),
        record.reason.value,
        record.queue,
        f" ({why})" if why else "",
        exc_info=error,
    )


def not_run(record: DeadLetter, error: BaseException | None) -> None:
    """A message dead-lettered without running (undecodable, unknown task, ...)."""
    logger.error(
        "dead-lettered %s [%s] from queue %s without running it: %s%s; payload starts %r",
        record.task_name or "a message",
        record.task_id or "no id",
        record.queue,
        record.reason.value,
        f" ({describe(error)})" if error is not None else "",
        excerpt(record.body),
    )
