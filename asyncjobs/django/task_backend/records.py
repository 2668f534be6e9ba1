"""A Django task's status document: what ``TaskResult`` shows, kept in the result store
beside the task's result (``ResultStore.set_status``), as JSON.

The sender writes the first one (READY) unless a worker was quicker; the worker writes
each change (RUNNING, READY again before a retry, SUCCESSFUL, FAILED). Any process can
read it back and rebuild the ``TaskResult``, its ``task`` imported from its module path
(``Task.get_result`` compares ``result.task.func`` by identity). Django's Tasks API is
imported only to build a ``TaskResult``: the hooks use this module at every start-up.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from traceback import format_exception
from typing import Any

import orjson
from django.conf import settings
from django.utils import timezone
from django.utils.module_loading import import_string
from taskiq.message import TaskiqMessage

from asyncjobs.brokers import envelope

VERSION = 1


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


def to_datetime(value: str | None) -> datetime | None:
    """A stored UTC time as ``timezone.now()`` would give it (naive local if not USE_TZ)."""
    if value is None:
        return None
    moment = datetime.fromisoformat(value)
    return moment if settings.USE_TZ else timezone.make_naive(moment)


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def error_entry(error: BaseException) -> dict[str, str]:
    """A ``TaskError``'s fields for ``error``, as Django's backends write them."""
    kind = type(error)
    return {
        "exception_class_path": f"{kind.__module__}.{kind.__qualname__}",
        "traceback": "".join(format_exception(error)),
    }


@dataclass(slots=True, kw_only=True)
class Status:
    """The document; times are ISO 8601 UTC strings."""

    id: str
    task: str  # the Task's module path (``shop.tasks.send_email``)
    backend: str
    queue_name: str
    run_after: str | None = None
    status: str = "READY"
    enqueued_at: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    last_attempted_at: str | None = None
    args: list[Any] = field(default_factory=list)
    kwargs: dict[str, Any] = field(default_factory=dict)
    errors: list[dict[str, str]] = field(default_factory=list)
    worker_ids: list[str] = field(default_factory=list)
    return_value: Any = None
    v: int = VERSION

    @classmethod
    def from_message(cls, message: TaskiqMessage, module_path: str) -> Status:
        """The READY document a sent message stands for (what the sender writes)."""
        labels = message.labels
        return cls(
            id=message.task_id,
            task=module_path,
            backend=_text(labels.get(envelope.TASK_BACKEND)) or "default",
            queue_name=_text(labels.get(envelope.QUEUE)) or "default",
            run_after=_text(labels.get(envelope.RUN_AFTER)),
            enqueued_at=_text(labels.get(envelope.ENQUEUED_AT)),
            args=list(message.args),
            kwargs=dict(message.kwargs),
        )

    @classmethod
    def from_json(cls, raw: bytes) -> Status:
        data = orjson.loads(raw)
        known = {name: data[name] for name in cls.__dataclass_fields__ if name in data}
        return cls(**known)

    def to_json(self) -> bytes:
        # Not dataclasses.asdict: it deep-copies every value (the arguments too), and
        # this runs on every send.
        return orjson.dumps({name: getattr(self, name) for name in FIELDS})

    # -- the transitions the worker makes ------------------------------------------
    def running(self, worker_id: str) -> None:
        at = now_iso()
        self.status, self.last_attempted_at = "RUNNING", at
        self.started_at = self.started_at or at
        self.worker_ids.append(worker_id)

    def succeeded(self, value: Any) -> None:
        self.status, self.finished_at, self.return_value = "SUCCESSFUL", now_iso(), value

    def not_run(self) -> None:
        """The attempt did not happen after all (postponed, or cut off by a drain: it
        runs again, as the same attempt): READY, without its worker id."""
        self.status = "READY"
        if self.worker_ids:
            self.worker_ids.pop()

    def failed(self, error: BaseException | None, *, final: bool) -> None:
        """An attempt failed: READY again when it will be retried, FAILED for good."""
        if error is not None:
            self.errors.append(error_entry(error))
        self.status = "FAILED" if final else "READY"
        if final:
            self.finished_at = now_iso()

    # -- what Django sees --------------------------------------------------------------
    def task_result(self, task: Any | None = None) -> Any:
        """The ``TaskResult`` (``task``: the Task, else imported from its module path)."""
        from asyncjobs.django.task_backend import compat

        result: Any = compat.TaskResult(
            task=task if task is not None else rebuild_task(self),
            id=self.id,
            status=compat.TaskResultStatus(self.status),
            enqueued_at=to_datetime(self.enqueued_at),
            started_at=to_datetime(self.started_at),
            finished_at=to_datetime(self.finished_at),
            last_attempted_at=to_datetime(self.last_attempted_at),
            args=self.args,
            kwargs=self.kwargs,
            backend=self.backend,
            errors=[compat.TaskError(**entry) for entry in self.errors],
            worker_ids=list(self.worker_ids),
        )
        object.__setattr__(result, "_return_value", self.return_value)
        return result


FIELDS = tuple(f.name for f in fields(Status))


def rebuild_task(status: Status) -> Any:
    """The module's own Task object (so ``result.task.func`` is the very function), with
    the queue and ``run_after`` this one was sent with."""
    from asyncjobs.django.task_backend import compat
    from asyncjobs.django.task_backend.task import TaskResultDoesNotExist

    try:
        found = import_string(status.task)
    except ImportError as exc:
        raise TaskResultDoesNotExist(
            f"task result {status.id} is of {status.task!r}, which cannot be imported: {exc}"
        ) from None
    if not isinstance(found, compat.Task):
        raise TaskResultDoesNotExist(
            f"task result {status.id} is of {status.task!r}, which is not a Task"
        )
    changes: dict[str, Any] = {}
    if found.queue_name != status.queue_name:
        changes["queue_name"] = status.queue_name
    if status.run_after is not None:
        changes["run_after"] = to_datetime(status.run_after)
    if found.backend != status.backend:
        changes["backend"] = status.backend
    return found.using(**changes) if changes else found
