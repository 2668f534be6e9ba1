"""The same scenarios against Django's own ``ImmediateBackend`` and against asyncjobs'
backend with a real worker (a receiver in the test's loop, on Redis): what code written
for ``django.tasks`` sees must not change when it moves to asyncjobs. Runs on Django 5.2
with the django-tasks backport and on Django 6.x (the two CI lines).

Scenarios only asyncjobs has (retries, defer, a result read by another process) are at
the end, and in test_task_backend.py.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from asyncjobs import current_app
from asyncjobs.config import AsyncJobsConfig
from asyncjobs.django.task_backend.compat import TaskResultStatus, signals
from asyncjobs.django.task_backend.hooks import TaskStatusHooks
from tests.support.helpers import wait_until
from tests.testapp import standard_tasks as st

pytestmark = [pytest.mark.redis]


@dataclass
class Seen:
    """Every signal sent, with the status the result had at that moment."""

    events: list[tuple[str, str, str]] = field(default_factory=list)  # (signal, id, status)

    def of(self, result_id: str) -> list[tuple[str, str]]:
        return [(name, status) for name, rid, status in self.events if rid == result_id]


@pytest.fixture
def seen() -> Iterator[Seen]:
    record = Seen()
    receivers: list[tuple[Any, Callable[..., None]]] = []
    for name in ("task_enqueued", "task_started", "task_finished"):
        signal = getattr(signals, name)

        def receiver(sender: Any, task_result: Any, _name: str = name, **kw: Any) -> None:
            record.events.append((_name, task_result.id, str(task_result.status)))

        signal.connect(receiver, weak=False)
        receivers.append((signal, receiver))
    yield record
    for signal, receiver in receivers:
        signal.disconnect(receiver)


@dataclass
class On:
    """One backend under test: its alias, and how to wait for a result to finish."""

    alias: str

    def task(self, task: Any) -> Any:
        return task.using(backend=self.alias)

    async def finished(self, result: Any) -> Any:
        if self.alias == "immediate":
            return result  # ran inside enqueue()

        async def done() -> bool:
            await result.arefresh()
            return bool(result.is_finished)

        await wait_until(done, what=f"task {result.id} to finish")
        return result


@pytest.fixture(params=["immediate", "asyncjobs"])
async def on(
    request: pytest.FixtureRequest, configured: AsyncJobsConfig, start_worker: Any
) -> AsyncIterator[On]:
    if request.param == "immediate":
        yield On("immediate")
        return
    current_app().add_hooks(TaskStatusHooks())
    await start_worker()
    yield On("default")


async def test_enqueue_runs_the_task_and_keeps_its_return_value(on: On) -> None:
    result = await asyncio.to_thread(on.task(st.add).enqueue, 2, 3)
    assert result.backend == on.alias
    assert list(result.args) == [2, 3]
    await on.finished(result)
    assert result.status == TaskResultStatus.SUCCESSFUL
    assert result.return_value == 5
    assert result.errors == []
    assert len(result.worker_ids) == 1 and result.attempts == 1
    assert result.enqueued_at <= result.started_at <= result.finished_at
    assert result.last_attempted_at == result.started_at


async def test_aenqueue_an_async_task(on: On) -> None:
    result = await on.task(st.async_add).aenqueue(4, b=5)
    await on.finished(result)
    assert result.status == TaskResultStatus.SUCCESSFUL
    assert result.return_value == 9
    assert result.kwargs == {"b": 5}


async def test_values_are_normalised_to_json(on: On) -> None:
    result = await on.task(st.echo).aenqueue((1, 2), key=b"bytes")
    assert result.args == [[1, 2]]
    await on.finished(result)
    assert result.return_value == {"args": [[1, 2]], "kwargs": {"key": "bytes"}}


async def test_annotations_convert_nothing(on: On) -> None:
    result = await on.task(st.add).aenqueue("2", "3")  # annotated int, sent as text
    await on.finished(result)
    assert result.return_value == "23"


async def test_arguments_that_are_not_json_fail_at_enqueue(on: On) -> None:
    with pytest.raises(TypeError):
        await on.task(st.echo).aenqueue(object())


async def test_get_result_rebuilds_the_task(on: On) -> None:
    result = await on.task(st.add).aenqueue(1, 1)
    await on.finished(result)
    if on.alias == "immediate":
        return  # Django's ImmediateBackend keeps no results (supports_get_result False)
    again = await st.add.aget_result(result.id)
    assert again.task.func is st.add.func
    assert again.return_value == 2
    assert again.id == result.id
    assert (await asyncio.to_thread(st.add.get_result, result.id)).status == "SUCCESSFUL"


async def test_a_failure_is_recorded_with_its_traceback(on: On) -> None:
    result = await on.task(st.explode).aenqueue("kaboom")
    await on.finished(result)
    assert result.status == TaskResultStatus.FAILED
    [error] = result.errors
    assert error.exception_class is KeyError
    assert "kaboom" in error.traceback and "Traceback" in error.traceback
    assert result.finished_at is not None
    with pytest.raises(ValueError, match="failed"):
        result.return_value  # noqa: B018 - the property raises


async def test_a_return_value_that_is_not_json_fails_the_task(on: On) -> None:
    result = await on.task(st.returns_a_set).aenqueue()
    await on.finished(result)
    assert result.status == TaskResultStatus.FAILED
    assert result.errors[0].exception_class is TypeError


async def test_context_has_the_attempt_and_the_result(on: On) -> None:
    result = await on.task(st.context_of).aenqueue()
    await on.finished(result)
    assert result.return_value == {"attempt": 1, "id": result.id, "status": "RUNNING"}


async def test_the_three_signals_and_the_statuses_they_see(on: On, seen: Seen) -> None:
    ok = await on.task(st.add).aenqueue(1, 2)
    bad = await on.task(st.explode).aenqueue("x")
    await on.finished(ok)
    await on.finished(bad)

    async def all_sent() -> bool:
        return len(seen.of(ok.id)) == 3 and len(seen.of(bad.id)) == 3

    await wait_until(all_sent, what="the signals")
    if on.alias == "immediate":  # it runs the task inside enqueue(), in this order
        assert [name for name, _ in seen.of(ok.id)] == [
            "task_enqueued",
            "task_started",
            "task_finished",
        ]
    # A worker may start the task before enqueue() returns and sends task_enqueued.
    assert set(seen.of(ok.id)) == {
        ("task_enqueued", "READY"),
        ("task_started", "RUNNING"),
        ("task_finished", "SUCCESSFUL"),
    }
    assert ("task_finished", "FAILED") in seen.of(bad.id)


async def test_queue_name_is_kept(on: On) -> None:
    result = await on.task(st.on_other_queue).aenqueue()
    await on.finished(result)
    assert result.task.queue_name == "other"
    assert result.return_value == "other"


async def test_task_finished_is_sent_while_the_exception_is_handled(on: On) -> None:
    """Django's own logging receiver reads sys.exc_info() to log the traceback."""
    handled: list[BaseException | None] = []

    def receiver(sender: Any, task_result: Any, **kwargs: Any) -> None:
        handled.append(sys.exc_info()[1])

    signals.task_finished.connect(receiver, weak=False)
    try:
        result = await on.task(st.explode).aenqueue("handled")
        await on.finished(result)
        await wait_until(_async(lambda: bool(handled)), what="task_finished")
    finally:
        signals.task_finished.disconnect(receiver)
    assert isinstance(handled[0], KeyError) and "handled" in str(handled[0])


def _async(probe: Callable[[], bool]) -> Callable[[], Any]:
    async def check() -> bool:
        return probe()

    return check


# -- what only asyncjobs does -------------------------------------------------------
@pytest.fixture
async def worker(configured: AsyncJobsConfig, start_worker: Any) -> Any:
    current_app().add_hooks(TaskStatusHooks())
    return await start_worker()


async def test_retries_keep_every_error_and_worker_id(worker: Any, seen: Seen) -> None:
    result = await st.attempts_until.aenqueue(3)
    await On("default").finished(result)
    await wait_until(_async(lambda: ("task_finished", "SUCCESSFUL") in seen.of(result.id)))
    # Started on each attempt, finished once: a retried attempt does not finish the task.
    assert [name for name, _ in seen.of(result.id)].count("task_started") == 3
    assert seen.of(result.id)[-1] == ("task_finished", "SUCCESSFUL")
    assert [name for name, _ in seen.of(result.id)].count("task_finished") == 1
    assert result.status == TaskResultStatus.SUCCESSFUL
    assert result.return_value == 3  # the context's attempt on the third run
    assert [e.exception_class for e in result.errors] == [ValueError, ValueError]
    assert "attempt 1" in result.errors[0].traceback
    assert "attempt 2" in result.errors[1].traceback
    assert len(result.worker_ids) == 3 and result.attempts == 3
    assert result.last_attempted_at > result.started_at


async def test_retries_exhausted_fail_the_result(worker: Any) -> None:
    result = await st.attempts_until.aenqueue(10)  # max_attempts=3
    await On("default").finished(result)
    assert result.status == TaskResultStatus.FAILED
    assert len(result.errors) == 3 and result.attempts == 3


async def test_the_status_is_ready_until_a_worker_runs_it(configured: AsyncJobsConfig) -> None:
    current_app().add_hooks(TaskStatusHooks())
    result = await st.add.aenqueue(1, 2)  # no worker yet
    again = await st.add.aget_result(result.id)
    assert again.status == TaskResultStatus.READY
    assert again.enqueued_at == result.enqueued_at
    assert again.started_at is None and again.worker_ids == []


async def test_defer_runs_it_not_before_run_after(worker: Any) -> None:
    run_after = timezone.now() + timedelta(seconds=1.5)
    result = await st.add.using(run_after=run_after).aenqueue(2, 2)
    await On("default").finished(result)
    assert result.started_at >= run_after
    assert result.task.run_after == run_after
    assert result.return_value == 4
