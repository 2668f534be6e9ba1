"""Where a task stands, by its id: ``asyncjobs task ID`` and the console's task page.

The evidence, most final first:

1. a stored result of success: ``succeeded`` (dead letters left from an earlier failure,
   replayed since, are listed and noted);
2. a dead letter of the task: ``dead``;
3. a stored result of failure: ``failed``, unless its message is in a queue again (a
   replayed dead letter whose letter is gone): then where it is;
4. its message in a queue (``ReliableBroker.locate``): ``waiting``, ``scheduled`` (a
   delay, or a retry waiting for its backoff) or ``running``;
5. else ``unknown``, and the notes say why it cannot be told: never sent, finished
   longer ago than results are kept, beyond the bounded search, or a transport that
   cannot look into its queues (RabbitMQ).

The failed attempts so far (``failed_attempts``) are always included. Every read is
bounded (``scan`` messages and dead letters per queue) and runs in the broker's home
loop, whichever loop calls it.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson
from taskiq.exceptions import ResultGetError
from taskiq.result import TaskiqResult

from asyncjobs.app import App, current_app
from asyncjobs.brokers import envelope
from asyncjobs.brokers.base import ReliableBroker
from asyncjobs.brokers.dead_letters import DeadLetter
from asyncjobs.brokers.locating import LOCATE_SCAN, Located
from asyncjobs.dead_letters import DeadLetters
from asyncjobs.errors import DeadLetterNotFoundError, ResultMissingError

State = Literal["waiting", "scheduled", "running", "succeeded", "failed", "dead", "unknown"]


@dataclass(frozen=True, slots=True)
class TaskReport:
    """What is known of one task. ``attempts``: attempts made, a running one included
    (None: unknown); ``result``: the return value (succeeded); ``error``: ``Type:
    message`` of the final failure (failed, dead)."""

    task_id: str
    state: State
    task_name: str | None = None
    queue: str | None = None
    attempts: int | None = None
    result: Any = None
    error: str | None = None
    failed_attempts: list[dict[str, Any]] = field(default_factory=list)
    dead_letters: tuple[DeadLetter, ...] = ()
    notes: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready (``asyncjobs task --json``): the dead letters without their body."""
        return {
            "task_id": self.task_id,
            "state": self.state,
            "task_name": self.task_name,
            "queue": self.queue,
            "attempts": self.attempts,
            "result": self.result,
            "error": self.error,
            "failed_attempts": self.failed_attempts,
            "dead_letters": [_letter_summary(letter) for letter in self.dead_letters],
            "notes": list(self.notes),
        }


async def task_report(task_id: str, scan: int = LOCATE_SCAN) -> TaskReport:
    """Where task ``task_id`` stands (see the module docstring)."""
    app = current_app()
    return await app.broker.home.run(_report(app, task_id, scan))


@dataclass
class _Evidence:
    letters: tuple[DeadLetter, ...] = ()
    result: TaskiqResult[Any] | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


async def _report(app: App, task_id: str, scan: int) -> TaskReport:
    found = _Evidence()
    await _read_dead_letters(app.broker, task_id, scan, found)
    await _read_result(app, task_id, found)
    result = found.result
    if result is not None and not result.is_err:
        if found.letters:
            found.notes.append("dead letters of an earlier failure remain (replayed since)")
        return _finished(task_id, "succeeded", result, found)
    if found.letters:
        return _dead(task_id, found)
    located, queue = await _locate(app.broker, task_id, scan, found)
    if located is not None and queue is not None:
        if result is not None:
            found.notes.append("an earlier run failed for good; its message is queued again")
        return _queued(task_id, located, queue, found)
    if result is not None:
        return _finished(task_id, "failed", result, found)
    found.notes.append(_unknown_note(app))
    return TaskReport(task_id, "unknown", failed_attempts=found.history, notes=tuple(found.notes))


async def _read_dead_letters(
    broker: ReliableBroker, task_id: str, scan: int, found: _Evidence
) -> None:
    try:
        lookup = await DeadLetters.of(broker).lookup(task_id, scan=scan)
    except DeadLetterNotFoundError as exc:
        if str(exc) != f"no dead letter has the id or task id {task_id!r}":
            found.notes.append(str(exc))  # the search was bounded: it says where
        return
    if lookup.by_task_id:  # else the id is a dead letter's own, not a task's
        found.letters = lookup.letters


async def _read_result(app: App, task_id: str, found: _Evidence) -> None:
    store = app.result_store
    if store is None:
        found.notes.append(
            "no result store is configured (RESULT_BACKEND_URL): results and failed "
            "attempts are not kept"
        )
        return
    found.history = await store.attempts(task_id)
    if await store.is_result_ready(task_id):
        # Expired between the two reads: as if it had not been there.
        with contextlib.suppress(ResultGetError, ResultMissingError):
            found.result = await store.get_result(task_id)


async def _locate(
    broker: ReliableBroker, task_id: str, scan: int, found: _Evidence
) -> tuple[Located | None, str | None]:
    if not broker.capabilities.locates:
        found.notes.append(
            f"{broker.transport_name} cannot look into a queue: waiting, scheduled and "
            "running cannot be told apart (nor from never sent)"
        )
        return None, None
    queues = broker.options.queues
    for queue in queues:
        located = await broker.locate(queue, task_id, scan)
        if located is not None:
            return located, queue
    for stats in await broker.inspect(queues):
        sizes = (stats.backlog or 0, stats.scheduled or 0)
        if max(sizes) > scan:
            found.notes.append(
                f"searched only the oldest {scan:,} waiting or running and {scan:,} "
                f"scheduled messages of queue {stats.queue!r} (it holds {sizes[0]:,} and "
                f"{sizes[1]:,})"
            )
    return None, None


def _finished(
    task_id: str, state: State, result: TaskiqResult[Any], found: _Evidence
) -> TaskReport:
    return TaskReport(
        task_id,
        state,
        queue=_queue_label(result.labels),
        attempts=envelope.attempt_of(result.labels),
        result=result.return_value if state == "succeeded" else None,
        error=_error_text(result.error) if state == "failed" else None,
        failed_attempts=found.history,
        dead_letters=found.letters,
        notes=tuple(found.notes),
    )


def _dead(task_id: str, found: _Evidence) -> TaskReport:
    newest = found.letters[-1]
    error = f"{newest.error_type}: {newest.error_message}" if newest.error_type else None
    return TaskReport(
        task_id,
        "dead",
        task_name=newest.task_name or None,
        queue=newest.queue,
        attempts=newest.attempts,
        error=error or f"dead-lettered: {newest.reason.value}",
        failed_attempts=found.history,
        dead_letters=found.letters,
        notes=tuple(found.notes),
    )


def _queued(task_id: str, located: Located, queue: str, found: _Evidence) -> TaskReport:
    message = _decoded(located.body)
    labels = message.get("labels")
    labels = labels if isinstance(labels, dict) else {}
    attempt = envelope.attempt_of(labels)  # the one running, or the next
    name = message.get("task_name")
    return TaskReport(
        task_id,
        located.state,
        task_name=name if isinstance(name, str) else None,
        queue=queue,
        attempts=attempt if located.state == "running" else attempt - 1,
        failed_attempts=found.history,
        notes=tuple(found.notes),
    )


def _unknown_note(app: App) -> str:
    kept = f"results are kept {app.config.result_ttl_s:,} s" if app.result_store else "none kept"
    if not app.broker.capabilities.locates:
        return (
            "no dead letter and no result: not finished yet, never sent, or finished before "
            f"what is kept ({kept})"
        )
    queues = ", ".join(app.broker.options.queues)
    return (
        f"no dead letter, no result and no message of this task in queues {queues}: never "
        f"sent, or finished before what is kept ({kept})"
    )


def _decoded(body: bytes) -> dict[str, Any]:
    with contextlib.suppress(orjson.JSONDecodeError):
        message = orjson.loads(body)
        if isinstance(message, dict):
            return message
    return {}


def _queue_label(labels: dict[str, Any]) -> str | None:
    queue = labels.get(envelope.QUEUE)
    return queue if isinstance(queue, str) else None


def _error_text(error: BaseException | None) -> str | None:
    return None if error is None else f"{type(error).__name__}: {error}"


def _letter_summary(letter: DeadLetter) -> dict[str, Any]:
    return {
        "id": letter.id,
        "queue": letter.queue,
        "reason": letter.reason.value,
        "error_type": letter.error_type,
        "error_message": letter.error_message,
        "attempts": letter.attempts,
        "deliveries": letter.deliveries,
        "dead_lettered_at": letter.dead_lettered_at,
    }
