"""Run what a test sent, in the test's own thread, through the real worker path.

The messages wait in the ``memory://`` broker the test's app sends to. ``LocalWorker``
fetches them one at a time and hands each to the worker's ``MessageRunner``: decoding,
argument checks, the task's limits, hooks, the result store and the retry or
dead-letter decision are the worker's own. Two things differ, both so that a task sees
what the test sees:

- A sync task runs in the test's thread (``sync_to_async(thread_sensitive=True)``: the
  thread that called ``run_pending()``, or the one Django runs an async test's sync
  code in), so on the test's database connection, inside its open transaction.
- Nothing wraps a task in a database context of its own (the Django adapter's
  ``DatabaseHygiene`` is not among the test app's hooks): an async task's ORM calls go
  to that same thread and connection.

Delayed messages (``delay``/``eta``, retries waiting for their backoff) are made due at
once: a test does not wait.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from asgiref.sync import sync_to_async

from asyncjobs.brokers.dead_letters import DeadLetter
from asyncjobs.brokers.home import settle_future
from asyncjobs.errors import AsyncJobsError
from asyncjobs.hooks import Hooks, Outcome, Run
from asyncjobs.worker import AsyncJobsReceiver, WorkerSettings
from asyncjobs.worker.limits import Limits
from asyncjobs.worker.runs import MessageRunner

if TYPE_CHECKING:
    from asyncjobs.app import App
    from asyncjobs.brokers.base import Delivery

T = TypeVar("T")


class DeadLetteredError(AsyncJobsError):
    """A message a test ran was dead-lettered without running (an unknown task name,
    arguments that do not fit, an undecodable body)."""


@dataclass(frozen=True, slots=True)
class Ran:
    """One run of a pending message: its task, id, attempt and how it ended."""

    task_name: str
    task_id: str
    attempt: int
    outcome: Outcome
    error: BaseException | None


class CallerThreadExecutor(concurrent.futures.Executor):
    """Runs each sync task in the thread that asked for the run (asgiref's
    thread-sensitive mode), not in a pool: the test's database connection is there."""

    def submit(
        self, fn: Callable[..., T], /, *args: Any, **kwargs: Any
    ) -> concurrent.futures.Future[T]:
        done: concurrent.futures.Future[T] = concurrent.futures.Future()
        running = asyncio.get_running_loop().create_task(
            sync_to_async(fn, thread_sensitive=True)(*args, **kwargs)
        )
        running.add_done_callback(lambda task: settle_future(done, task))
        return done


class _Outcomes(Hooks):
    """How each run ended, and each message dead-lettered without a run."""

    def __init__(self) -> None:
        self.ran: list[Ran] = []
        self.refused: list[DeadLetter] = []

    async def after_run(
        self, run: Run, outcome: Outcome, error: BaseException | None, duration_s: float
    ) -> None:
        self.ran.append(Ran(run.task_name, run.task_id, run.attempt, outcome, error))

    async def on_dead_letter(self, delivery: Delivery, record: DeadLetter) -> None:
        self.refused.append(record)  # a failed run's too: it comes before after_run


class _LocalRunner(MessageRunner):
    """The worker's pipeline, with retries optionally off (one attempt each)."""

    retries = True

    def limits(self, task: Any, run: Run) -> Limits:
        limits = super().limits(task, run)
        return limits if self.retries else Limits(1, limits.timeout_s)


class LocalWorker:
    """The worker side of a test's ``memory://`` app, run on demand."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.broker = app.broker
        self.outcomes = _Outcomes()
        config = app.config
        settings = WorkerSettings(
            concurrency=1,
            max_attempts=config.max_attempts,
            max_deliveries=config.max_deliveries,
            backoff=config.retry_backoff.backoff(),
            owns_process=False,
            hooks=(self.outcomes,),
        )
        self.receiver = AsyncJobsReceiver(
            app.broker, app=app, settings=settings, executor=CallerThreadExecutor()
        )
        self.runner = _LocalRunner(self.receiver, self.receiver.hooks, lambda: False)

    async def run_pending(self, *, retries: bool, raise_errors: bool) -> list[Ran]:
        """Run every pending message (and what they send) until none is left. With
        ``raise_errors``, the first failure ends the run: the task's own exception (or
        ``DeadLetteredError``) is raised, the rest stays pending."""
        self.runner.retries = retries
        done: list[Ran] = []
        while (delivery := await self._next()) is not None:
            first_ran, first_refused = len(self.outcomes.ran), len(self.outcomes.refused)
            await self.runner.process(delivery)
            ran = self.outcomes.ran[first_ran:]
            done += ran
            if raise_errors:
                _raise_failure(ran, self.outcomes.refused[first_refused:])
        return done

    async def _next(self) -> Delivery | None:
        await self.broker.ensure_started()
        self.broker.make_due()
        deliveries = await self.broker.fetch(1, 0)
        return deliveries[0] if deliveries else None


def _raise_failure(ran: list[Ran], dead: list[DeadLetter]) -> None:
    """Raise what ended one delivery for good: its task's exception (a retry is not the
    end), or, when it never ran, why it was dead-lettered."""
    for run in ran:
        if run.error is not None and run.outcome is Outcome.FAILED:
            raise run.error
    if dead and not ran:
        record = dead[0]
        error = f" ({record.error_type}: {record.error_message})" if record.error_type else ""
        raise DeadLetteredError(
            f"task {record.task_name or '?'} [{record.task_id or 'no id'}] was "
            f"dead-lettered without running: {record.reason}{error}"
        )
