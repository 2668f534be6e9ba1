"""``@task``: typed options on top of taskiq's shared-task registry.

Tasks register at import time, before any broker exists (Django imports ``tasks.py``
while settings may still be loading); ``kiq()`` resolves the configured broker then.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar, overload

from taskiq.brokers.shared_broker import AsyncSharedBroker, SharedDecoratedTask

from asyncjobs.arguments import ArgumentValidator, InvalidArguments
from asyncjobs.brokers import envelope
from asyncjobs.brokers.errors import ConfigurationError
from asyncjobs.config import QUEUE_NAME
from asyncjobs.errors import ArgumentsError
from asyncjobs.handles import JobHandle
from asyncjobs.kicker import JobKicker, coroutine_function
from asyncjobs.retries import Backoff, exception_types
from asyncjobs.schedules.definitions import Schedule
from asyncjobs.schedules.registry import declare

if TYPE_CHECKING:
    from asyncjobs.app import App

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
    # Sender-side: sends made inside a database transaction wait for its commit.
    on_commit: bool = False

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
    """A registered task. ``await fn.kiq(...)`` (async code) or ``fn.kiq_sync(...)`` (sync
    code, any thread) returns a ``JobHandle`` (taskiq's ``AsyncTaskiqTask`` with a
    ``wait_result(timeout=...)`` that keeps its timeout); ``fn.kiq_on_commit(...)`` sends
    once the database transaction commits."""

    options: TaskOptions
    _arguments: ArgumentValidator | None = None

    @coroutine_function
    def kiq(self, *args: P.args, **kwargs: P.kwargs) -> Coroutine[Any, Any, JobHandle[Any]]:
        return self.kicker().kiq(*args, **kwargs)

    def kiq_sync(self, *args: P.args, **kwargs: P.kwargs) -> JobHandle[Any]:
        return self.kicker().kiq_sync(*args, **kwargs)

    def kiq_on_commit(self, *args: P.args, **kwargs: P.kwargs) -> JobHandle[Any]:
        """From sync code: send once the default database's transaction commits (at once
        outside one). Another database: ``fn.kicker().on_commit(using=...).kiq_sync()``."""
        return self.kicker().on_commit().kiq_sync(*args, **kwargs)

    def kicker(self) -> JobKicker[P, R]:
        app = _current_app()
        # taskiq's shared task hands its own label dict to the kicker, so
        # ``fn.kicker().with_labels(...)`` would change the task for good: copy it.
        return JobKicker(
            task_name=self.task_name,
            broker=app.broker,
            labels=dict(self.labels),
            return_type=self.return_type,
            app=app,
            check_arguments=self._check_arguments,
            on_commit=self.options.on_commit,
        )

    def _check_arguments(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        """Arguments that cannot bind to the function fail the send (the worker would
        dead-letter them as ``invalid_arguments``)."""
        if self._arguments is None:
            self._arguments = ArgumentValidator(self.original_func)
        try:
            self._arguments.check_binding(args, kwargs)
        except InvalidArguments as exc:
            raise ArgumentsError(f"task {self.task_name}: {exc}; nothing was sent") from None


def _current_app() -> App:
    """``asyncjobs.app.current_app()``, found once: that module imports this one, and an
    import statement in ``kicker()`` cost every send ~0.6 us."""
    global _found_current_app
    if _found_current_app is None:
        from asyncjobs.app import current_app

        _found_current_app = current_app
    return _found_current_app()


_found_current_app: Callable[[], App] | None = None


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
    on_commit: bool = False,
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
    on_commit: bool = False,
) -> JobTask[P, R] | Callable[[Callable[P, R]], JobTask[P, R]]:
    """Register an ``async def`` (or plain ``def``) function as a task.

    ``queue`` routes it (one of ``QUEUES``), ``max_attempts`` overrides ``MAX_ATTEMPTS``,
    ``timeout`` (seconds or timedelta) cancels an async task at the deadline (a sync
    task's thread cannot be killed: its late result is ignored). A failure is retried
    when it is an instance of ``retry_on`` (default: any ``Exception``) and not of
    ``no_retry_on`` (``Reject`` never is), after a ``backoff`` (default:
    ``RETRY_BACKOFF``); otherwise it is dead-lettered. ``current_attempt()`` tells the
    task which attempt it is on. ``schedule`` (``cron(...)``, ``every(...)``, or a list)
    has the scheduler process send it on those ticks, exactly once each. With
    ``on_commit``, a send from sync code inside a database transaction goes out when the
    transaction commits (never if it rolls back), as ``fn.kiq_on_commit()`` does.
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
        on_commit,
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
