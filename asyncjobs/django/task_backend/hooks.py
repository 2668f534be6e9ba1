"""``TaskStatusHooks``: where a Django task stands, written to the result store, and
Django's ``task_started`` / ``task_finished`` signals, sent in the worker.

Added to the app at Django start-up (``asyncjobs.django.conf.setup``); it only acts on
messages of Django Tasks (``registration``). In the sender, ``on_send`` starts writing
the READY document while the message is being sent, and ``on_sent`` waits for it: the
two round trips overlap, and ``enqueue()`` returns once both are done. The write only
lands if no worker wrote first (``if_absent``): a fast worker's RUNNING is never
overwritten. In the worker: RUNNING before the run (the attempt's worker id appended),
then SUCCESSFUL, READY again when a retry is scheduled, FAILED when dead-lettered (also
for a message that never ran: arguments that do not fit, too many deliveries, a Task
the worker does not know).

The signals go out as ``signalling`` sends them (a failure's ``task_finished`` while its
exception is handled, so Django's log line has the traceback).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from taskiq.message import TaskiqMessage

from asyncjobs.app import current_app
from asyncjobs.brokers.base import Delivery, process_name
from asyncjobs.brokers.dead_letters import DeadLetter
from asyncjobs.django.task_backend.records import Status, now_iso
from asyncjobs.django.task_backend.state import (
    CurrentRun,
    NeverRan,
    current_run,
    django_task,
)
from asyncjobs.hooks import Hooks, Outcome, Run

logger = logging.getLogger("asyncjobs.django")

WORKER_ID = process_name()[:64]  # Django's database backend keeps 64 characters


class TaskStatusHooks(Hooks):
    # The test mode (asyncjobs.testing.capture) keeps it: get_result() works there too.
    carry_into_tests = True

    def __init__(self) -> None:
        self._writing: dict[str, asyncio.Future[None]] = {}

    # -- the sender ----------------------------------------------------------------
    async def on_send(self, message: TaskiqMessage) -> None:
        task = django_task(message.task_name)
        if task is None or not _keeps_status():
            return
        body = Status.from_message(message, task.module_path).to_json()
        write = _store_write(message.task_id, body, if_absent=True)
        self._writing[message.task_id] = asyncio.ensure_future(write)

    async def on_sent(self, message: TaskiqMessage) -> None:
        write = self._writing.pop(message.task_id, None)
        if write is not None:
            try:
                await write
            except Exception as exc:  # the message is sent: say so, do not fail
                logger.warning("storing the status of [%s] failed: %s", message.task_id, exc)

    async def on_send_error(self, task_id: str | None, error: BaseException) -> None:
        write = self._writing.pop(task_id or "", None)
        if write is not None:
            write.cancel()

    # -- the worker ----------------------------------------------------------------
    async def before_run(self, run: Run) -> None:
        task = django_task(run.task_name)
        if task is None:
            return
        status = await _load(run, task)
        status.running(WORKER_ID)
        current_run.set(CurrentRun(task, status))
        await _save(status)
        result = status.task_result(task)
        await _signalling().started(type(task.get_backend()), result)

    async def after_run(
        self, run: Run, outcome: Outcome, error: BaseException | None, duration_s: float
    ) -> None:
        current = current_run.get()
        if current is None or current.status.id != run.task_id:
            return
        status = current.status
        if outcome is Outcome.SUCCEEDED:
            status.succeeded(current.return_value)
        elif outcome in (Outcome.RETRIED, Outcome.FAILED):
            status.failed(error, final=outcome is Outcome.FAILED)
        else:  # cut off by a drain, or postponed: the same attempt runs again later
            status.not_run()
        await _save(status)
        if status.status in ("SUCCESSFUL", "FAILED"):
            await _send_finished(current.task, status, error)

    async def on_dead_letter(self, delivery: Delivery, record: DeadLetter) -> None:
        """A message dead-lettered before it ran (its run's own failure is after_run's).
        Its task may be unknown here (a Task this worker never imported): a message has
        a status document only if the backend sent it, so one found is a Django task's."""
        current = current_run.get()
        if current is not None and current.status.id == record.task_id:
            return
        if not record.task_id or not _keeps_status():
            return
        raw = await _store_read(record.task_id)
        if raw is None:
            return
        status = Status.from_json(raw)
        status.errors.append(
            {
                "exception_class_path": f"{NeverRan.__module__}.{NeverRan.__qualname__}",
                "traceback": f"dead-lettered before running: {record.reason.value}"
                f"{': ' + record.error_message if record.error_message else ''}",
            }
        )
        status.status, status.finished_at = "FAILED", now_iso()
        await _save(status)


async def _load(run: Run, task: Any) -> Status:
    """The document so far: a first attempt's is the message's own (no read needed)."""
    if run.attempt > 1 and _keeps_status():
        raw = await _store_read(run.task_id)
        if raw is not None:
            return Status.from_json(raw)
    status = Status.from_message(run.message, task.module_path)
    # Attempts before this one, when their document is gone (or never kept).
    status.worker_ids = [""] * (run.attempt - 1)
    return status


async def _save(status: Status) -> None:
    if not _keeps_status():
        return
    try:
        await _store_write(status.id, status.to_json())
    except Exception as exc:  # the task's own outcome must not depend on this write
        logger.warning("storing the status of [%s] failed: %s", status.id, exc)


async def _send_finished(task: Any, status: Status, error: BaseException | None) -> None:
    await _signalling().finished(type(task.get_backend()), status.task_result(task), error)


def _signalling() -> Any:
    from asyncjobs.django.task_backend import signalling  # a Django task ran: it exists

    return signalling


def _keeps_status() -> bool:
    return current_app().result_store is not None


async def _store_write(task_id: str, body: bytes, *, if_absent: bool = False) -> None:
    app = current_app()
    store = app.result_store
    assert store is not None
    await app.broker.home.run(store.set_status(task_id, body, if_absent=if_absent))


async def _store_read(task_id: str) -> bytes | None:
    app = current_app()
    store = app.result_store
    assert store is not None
    return await app.broker.home.run(store.get_status(task_id))
