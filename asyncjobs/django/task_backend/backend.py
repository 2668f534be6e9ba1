"""``AsyncJobsBackend``: Django's Tasks API (``django.tasks``, or the ``django-tasks``
backport) sending to asyncjobs workers.

Django builds one backend object per thread and per asyncio context (``TASKS`` is a
connection handler), so the object holds nothing but its settings: every send goes
through the process's one broker client (``current_app()``), as ``kiq()`` does.
``enqueue`` is ``kiq_sync`` (any thread; on commit when asked), ``aenqueue`` is ``await
kiq()`` in the caller's loop (no thread hop), ``get_result`` / ``aget_result`` read the
status document (``records``) in the client's home loop.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC
from typing import Any

from django.core import checks
from django.db import transaction
from django.utils import timezone

from asyncjobs.app import App, configuration_error, current_app
from asyncjobs.brokers import envelope
from asyncjobs.brokers.home import running_loop
from asyncjobs.django.task_backend import compat, signalling
from asyncjobs.django.task_backend.records import Status
from asyncjobs.django.task_backend.registration import job_for, register
from asyncjobs.django.task_backend.task import AsyncJobsTask, InvalidTask, TaskResultDoesNotExist
from asyncjobs.errors import (
    AsyncJobsError,
    ConfigurationError,
    NotConfiguredError,
    SyncInEventLoopError,
)
from asyncjobs.kicker import SYNC_MARGIN_S, JobKicker

OPTION_NAMES = frozenset({"ON_COMMIT", "MAX_ATTEMPTS", "TIMEOUT"})


class AsyncJobsBackend(compat.BaseTaskBackend):
    task_class = AsyncJobsTask
    supports_defer = True  # run_after: delivered then (the broker's delayed delivery)
    supports_async_task = True
    supports_priority = False  # no priorities in asyncjobs yet: @task(priority=...) fails

    def __init__(self, alias: str, params: dict[str, Any]) -> None:
        super().__init__(alias, params)
        self.on_commit = bool(self.options.get("ON_COMMIT", False))

    @property
    def supports_get_result(self) -> bool:  # type: ignore[override]
        """Only with a result store (Redis; RabbitMQ with RESULT_BACKEND_URL)."""
        try:
            return current_app().result_store is not None
        except NotConfiguredError:
            return False

    # -- validating ------------------------------------------------------------------
    def validate_task(self, task: Any) -> None:
        """Django's checks, then the asyncjobs options; registers the task's runner."""
        try:
            super().validate_task(task)
        except compat.InvalidTask as exc:
            raise InvalidTask(str(exc)) from None
        try:
            register(task, self.job_options(task))
        except ConfigurationError as exc:
            raise InvalidTask(f"{task.module_path}: {exc}") from None

    def job_options(self, task: Any) -> dict[str, Any]:
        """``@asyncjobs.task``'s options for ``task``: its own, else OPTIONS'."""
        own = task.job_options() if isinstance(task, AsyncJobsTask) else {}
        defaults = {
            "max_attempts": self.options.get("MAX_ATTEMPTS"),
            "timeout": self.options.get("TIMEOUT"),
        }
        return {**{k: v for k, v in defaults.items() if v is not None}, **own}

    # -- sending -----------------------------------------------------------------------
    def enqueue(self, task: Any, args: Any, kwargs: Any) -> Any:
        if running_loop() is not None:
            raise SyncInEventLoopError(
                f"{task.name}.enqueue() was called inside a running event loop, which it "
                f"would block; use `await {task.name}.aenqueue(...)` there"
            )
        result = self._new_result(task, args, kwargs)
        kicker = self._kicker(task, result)

        def enqueued() -> None:
            compat.signals.task_enqueued.send(type(self), task_result=result)

        if not self._on_commit(task):
            kicker.kiq_sync(*result.args, **result.kwargs)
            enqueued()
            return result
        using = task.on_commit_using if isinstance(task, AsyncJobsTask) else None
        kicker.on_commit(using).kiq_sync(*result.args, **result.kwargs)
        # After the send the commit makes (callbacks run in order); at once outside a
        # transaction, where the send was made at once too; never after a rollback.
        transaction.on_commit(enqueued, using=using, robust=True)
        return result

    def _on_commit(self, task: Any) -> bool:
        """The Task's own choice (``on_commit()``, ``enqueue_on_commit``), else OPTIONS'."""
        own = task.enqueue_on_commit if isinstance(task, AsyncJobsTask) else None
        return self.on_commit if own is None else bool(own)

    async def aenqueue(self, task: Any, args: Any, kwargs: Any) -> Any:
        result = self._new_result(task, args, kwargs)
        await self._kicker(task, result).kiq(*result.args, **result.kwargs)
        await signalling.enqueued(type(self), result)
        return result

    def _new_result(self, task: Any, args: Any, kwargs: Any) -> Any:
        """The READY ``TaskResult`` (its arguments normalised as Django does: a value
        that is not JSON raises ``TypeError`` here)."""
        return compat.TaskResult(
            task=task,
            id=uuid.uuid4().hex,  # 32 characters, as Django's get_random_string(32)
            status=compat.TaskResultStatus.READY,
            enqueued_at=timezone.now(),
            started_at=None,
            finished_at=None,
            last_attempted_at=None,
            args=args,
            kwargs=kwargs,
            backend=self.alias,
            errors=[],
            worker_ids=[],
        )

    def _kicker(self, task: Any, result: Any) -> JobKicker[Any, Any]:
        job = job_for(task) or register(task, self.job_options(task))
        labels: dict[str, Any] = {
            envelope.QUEUE: task.queue_name,
            envelope.TASK_BACKEND: self.alias,
            envelope.ENQUEUED_AT: _iso(result.enqueued_at),
        }
        if task.run_after is not None:
            labels[envelope.RUN_AFTER] = _iso(task.run_after)
            labels[envelope.ETA] = task.run_after.timestamp()
        kicker = job.kicker()
        kicker.with_task_id(result.id).with_labels(**labels)  # in place
        return kicker

    # -- results -----------------------------------------------------------------------
    def get_result(self, result_id: str) -> Any:
        app = self._results_app()
        wait_s = app.config.send_timeout_s + SYNC_MARGIN_S
        raw = app.broker.home.run_sync(_read(app, result_id), wait_s)
        return _result(result_id, raw)

    async def aget_result(self, result_id: str) -> Any:
        app = self._results_app()
        return _result(result_id, await app.broker.home.run(_read(app, result_id)))

    def _results_app(self) -> App:
        app = current_app()
        if app.result_store is None:
            raise NotImplementedError(
                "this asyncjobs transport keeps no results: set ASYNCJOBS['RESULT_BACKEND_URL']"
                " (a Redis URL) for get_result()"
            )
        return app

    # -- manage.py check ---------------------------------------------------------------
    def check(self, **kwargs: Any) -> list[checks.CheckMessage]:
        return list(self._problems())

    def _problems(self) -> Iterator[checks.CheckMessage]:
        unknown = set(self.options) - OPTION_NAMES
        if unknown:
            yield checks.Error(
                f"TASKS[{self.alias!r}]['OPTIONS'] has unknown keys {sorted(unknown)}; "
                f"known: {sorted(OPTION_NAMES)}",
                id="asyncjobs.E101",
            )
        try:
            app = current_app()
        except AsyncJobsError as exc:
            # A bad ASYNCJOBS is asyncjobs' own check's to report (W002, E001 with
            # --deploy): an error here would stop migrate, which must run without it.
            if configuration_error() is None:  # asyncjobs.django not installed at all
                yield checks.Error(str(exc), id="asyncjobs.E102")
            return
        missing = sorted(self.queues - set(app.config.queues))
        if missing:
            yield checks.Error(
                f"TASKS[{self.alias!r}]['QUEUES'] names queues asyncjobs does not consume: "
                f"{missing}; add them to ASYNCJOBS['QUEUES'] ({list(app.config.queues)})",
                id="asyncjobs.E103",
            )
        if app.result_store is None:
            yield checks.Error(
                f"TASKS[{self.alias!r}]: the asyncjobs transport keeps no results, so "
                "get_result() and TaskResult.refresh() cannot work",
                hint="set ASYNCJOBS['RESULT_BACKEND_URL'] to a Redis URL",
                id="asyncjobs.E104",
            )


async def _read(app: App, result_id: str) -> bytes | None:
    store = app.result_store
    assert store is not None
    return await store.get_status(result_id)


def _result(result_id: str, raw: bytes | None) -> Any:
    if raw is None:
        raise TaskResultDoesNotExist(f"no task result {result_id} (never sent, or expired)")
    return Status.from_json(raw).task_result()


def _iso(moment: Any) -> str:
    """A datetime as ISO 8601 UTC (a naive one is in the current time zone)."""
    if timezone.is_naive(moment):
        moment = timezone.make_aware(moment)
    return str(moment.astimezone(UTC).isoformat())
