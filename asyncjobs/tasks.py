"""``@task``: typed options on top of taskiq's shared-task registry.

Tasks register at import time, before any broker exists (Django imports ``tasks.py``
while settings may still be loading); ``kiq()`` resolves the configured broker then.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, ParamSpec, TypeVar, overload

from taskiq.brokers.shared_broker import AsyncSharedBroker, SharedDecoratedTask
from taskiq.kicker import AsyncKicker

from asyncjobs.brokers import envelope
from asyncjobs.brokers.errors import ConfigurationError
from asyncjobs.config import QUEUE_NAME
from asyncjobs.kicker import JobKicker
from asyncjobs.retries import Backoff, exception_types
from asyncjobs.schedules.definitions import Schedule
from asyncjobs.schedules.registry import declare

P = ParamSpec("P")
R = TypeVar("R")


@dataclass(frozen=True, slots=True)
class TaskOptions:
    """What ``@task(...)`` accepts; ``None`` means the project-wide default."""

    queue: str | None = None
    max_attempts: int | None = None
    timeout_s: float | None = None
    task_name: str | None = None
    # Worker-side only (not sent with the message): the worker's own task definition.
    retry_on: tuple[type[BaseException], ...] | None = None  # None: any Exception
    no_retry_on: tuple[type[BaseException], ...] | None = None  # wins over retry_on
    backoff: Backoff | None = None  # None: RETRY_BACKOFF

    def validate(self, where: str) -> None:
        if self.queue is not None and not QUEUE_NAME.match(self.queue):
            raise ConfigurationError(f"{where}: queue={self.queue!r} is not a valid queue name")
        if self.max_attempts is not None and self.max_attempts < 1:
            raise ConfigurationError(f"{where}: max_attempts must be >= 1, got {self.max_attempts}")
        if self.timeout_s is not None and not (
            self.timeout_s > 0 and math.isfinite(self.timeout_s)
        ):
            raise ConfigurationError(f"{where}: timeout must be > 0 seconds, got {self.timeout_s}")

    def labels(self) -> dict[str, Any]:
        return envelope.task_labels(self.queue, self.max_attempts, self.timeout_s)


class JobTask(SharedDecoratedTask[P, R]):
    """A registered task. ``await fn.kiq(...)`` returns a ``JobHandle`` (taskiq's
    ``AsyncTaskiqTask`` with a ``wait_result(timeout=...)`` that keeps its timeout)."""

    options: TaskOptions

    def kicker(self) -> AsyncKicker[P, R]:
        from asyncjobs.app import current_app

        app = current_app()
        # taskiq's shared task hands its own label dict to the kicker, so
        # ``fn.kicker().with_labels(...)`` would change the task for good: copy it.
        return JobKicker(  # taskiq's, telling the hooks about failed sends
            task_name=self.task_name,
            broker=app.broker,
            labels=dict(self.labels),
            return_type=self.return_type,
            hooks=app.hooks,
        )


class TaskRegistry(AsyncSharedBroker):
    """Where ``@task`` registers; the configured broker is found at ``kiq()`` time."""

    def __init__(self) -> None:
        super().__init__()
        self.decorator_class = JobTask


registry = TaskRegistry()


@overload
def task(func: Callable[P, R], /) -> JobTask[P, R]: ...


@overload
def task(
    *,
    queue: str | None = None,
    max_attempts: int | None = None,
    timeout: float | timedelta | None = None,
    task_name: str | None = None,
    retry_on: type[BaseException] | Iterable[type[BaseException]] | None = None,
    no_retry_on: type[BaseException] | Iterable[type[BaseException]] | None = None,
    backoff: Backoff | None = None,
    schedule: Schedule | Iterable[Schedule] = (),
) -> Callable[[Callable[P, R]], JobTask[P, R]]: ...


def task(
    func: Callable[P, R] | None = None,
    /,
    *,
    queue: str | None = None,
    max_attempts: int | None = None,
    timeout: float | timedelta | None = None,
    task_name: str | None = None,
    retry_on: type[BaseException] | Iterable[type[BaseException]] | None = None,
    no_retry_on: type[BaseException] | Iterable[type[BaseException]] | None = None,
    backoff: Backoff | None = None,
    schedule: Schedule | Iterable[Schedule] = (),
) -> JobTask[P, R] | Callable[[Callable[P, R]], JobTask[P, R]]:
    """Register an ``async def`` (or plain ``def``) function as a task.

    ``queue`` routes it (one of ``QUEUES``), ``max_attempts`` overrides ``MAX_ATTEMPTS``,
    ``timeout`` (seconds or timedelta) cancels an async task at the deadline (a sync
    task's thread cannot be killed: its late result is ignored). A failure is retried
    when it is an instance of ``retry_on`` (default: any ``Exception``) and not of
    ``no_retry_on`` (``Reject`` never is), after a ``backoff`` (default:
    ``RETRY_BACKOFF``); otherwise it is dead-lettered. ``current_attempt()`` tells the
    task which attempt it is on. ``schedule`` (``cron(...)``, ``every(...)``, or a list)
    has the scheduler process send it on those ticks, exactly once each.
    """
    timeout_s = timeout.total_seconds() if isinstance(timeout, timedelta) else timeout
    if backoff is not None and not isinstance(backoff, Backoff):
        raise ConfigurationError(f"@task: backoff must be an asyncjobs.Backoff, got {backoff!r}")
    options = TaskOptions(
        queue,
        max_attempts,
        None if timeout_s is None else float(timeout_s),
        task_name,
        exception_types(retry_on, "@task"),
        exception_types(no_retry_on, "@task", allow_empty=True),
        backoff,
    )

    def register(fn: Callable[P, R]) -> JobTask[P, R]:
        options.validate(f"@task on {fn.__module__}.{fn.__qualname__}")
        decorated = registry.task(task_name, **options.labels())(fn)
        assert isinstance(decorated, JobTask)
        decorated.options = options
        declare(bind_schedules(schedule, decorated.task_name))
        return decorated

    return register(func) if func is not None else register


def bind_schedules(schedule: Schedule | Iterable[Schedule], task_name: str) -> list[Schedule]:
    items = [schedule] if isinstance(schedule, Schedule) else list(schedule)
    for item in items:
        if not isinstance(item, Schedule):
            raise ConfigurationError(
                f"@task on {task_name}: schedule takes cron(...) or every(...), got {item!r}"
            )
    return [item.for_task(task_name) for item in items]


def registered_tasks() -> dict[str, JobTask[Any, Any]]:
    return {name: t for name, t in registry.get_all_tasks().items() if isinstance(t, JobTask)}
