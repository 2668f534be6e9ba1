"""The django.tasks backend beyond the conformance scenarios: its flags match what it
does, ``check()``, the errors (Django's and asyncjobs' at once), results read by another
process from a real ``taskiq worker``, RabbitMQ, sends on commit, one connection pool
for any number of backend objects, and messages that never ran."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import os
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.db import transaction
from django.test.utils import override_settings

from asyncjobs import current_app
from asyncjobs.brokers import envelope
from asyncjobs.config import AsyncJobsConfig, load_config
from asyncjobs.django.task_backend import (
    AsyncJobsBackend,
    InvalidTask,
    TaskResultDoesNotExist,
    compat,
)
from asyncjobs.django.task_backend.hooks import TaskStatusHooks
from asyncjobs.django.task_backend.registration import job_for
from asyncjobs.django.transactions import DjangoTransactions
from asyncjobs.errors import (
    ArgumentsError,
    AsyncJobsError,
    ConfigurationError,
    SyncInEventLoopError,
)
from asyncjobs.kicker import JobKicker
from tests.faults.workers import running_worker, wait_worker_ready, worker_env
from tests.support.helpers import configured_app, wait_until
from tests.support.queued import last_redis_client_id, redis_connections
from tests.testapp import standard_elsewhere
from tests.testapp import standard_tasks as st

pytestmark = [pytest.mark.redis]


def prioritized() -> None:
    """A module-level function, for @task(priority=...)."""


def by_default() -> None:
    """Module-level functions for the OPTIONS test (registered there, first)."""


def on_its_own() -> None: ...


def after_commit() -> None: ...


def backend(alias: str = "default") -> Any:
    return compat.task_backends()[alias]


async def finished(result: Any, timeout: float = 15.0) -> Any:
    async def done() -> bool:
        await result.arefresh()
        return bool(result.is_finished)

    await wait_until(done, timeout=timeout, what=f"task {result.id} to finish")
    return result


@pytest.fixture
async def worker(configured: AsyncJobsConfig, start_worker: Any) -> Any:
    current_app().add_hooks(TaskStatusHooks())
    return await start_worker()


# -- flags and validation ---------------------------------------------------------------
def test_priority_is_unsupported_and_fails_at_import() -> None:
    assert backend().supports_priority is False
    with pytest.raises(InvalidTask, match="priority") as caught:
        compat.task_backends()["default"].task_class(func=prioritized, priority=10)
    assert isinstance(caught.value, compat.InvalidTask)  # Django's
    assert isinstance(caught.value, AsyncJobsError)  # and ours


def test_bad_asyncjobs_options_fail_at_import() -> None:
    with pytest.raises(InvalidTask, match="max_attempts"):
        backend().task_class(func=prioritized, max_attempts=0)


def test_options_give_defaults_and_the_task_its_own() -> None:
    with override_settings(TASKS=_tasks_with({"MAX_ATTEMPTS": 2, "TIMEOUT": 5})):
        defaulted = backend().task_class(func=by_default)
        own = backend().task_class(func=on_its_own, max_attempts=4, timeout=timedelta(seconds=9))
    assert (job := job_for(defaulted)) is not None
    assert (job.options.max_attempts, job.options.timeout_s) == (2, 5)
    assert (job := job_for(own)) is not None
    assert (job.options.max_attempts, job.options.timeout_s) == (4, 9)


def test_a_priority_given_with_using_fails_too() -> None:
    with pytest.raises(InvalidTask, match="priority"):
        st.add.using(priority=5)


async def test_run_after_more_than_a_year_ahead_is_refused(configured: AsyncJobsConfig) -> None:
    from django.utils import timezone

    with pytest.raises(ConfigurationError, match="eta"):
        await st.add.using(run_after=timezone.now() + timedelta(days=400)).aenqueue(1, 1)


def test_check_says_when_asyncjobs_is_not_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    from asyncjobs import app as app_state

    monkeypatch.setattr(app_state, "_current", None)
    assert [m.id for m in backend().check()] == ["asyncjobs.E102"]


def test_check_leaves_a_bad_asyncjobs_setting_to_asyncjobs_own_check(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An error here would stop migrate, which runs without a working ASYNCJOBS."""
    from asyncjobs import app as app_state
    from asyncjobs.errors import ConfigurationError

    monkeypatch.setattr(app_state, "_current", ConfigurationError("BROKER_URL is required"))
    assert list(backend().check()) == []


async def test_enqueue_inside_an_event_loop_says_to_use_aenqueue(
    configured: AsyncJobsConfig,
) -> None:
    with pytest.raises(SyncInEventLoopError, match=r"await add\.aenqueue"):
        st.add.enqueue(1, 1)


async def test_task_enqueued_is_not_sent_when_only_a_quiet_log_would_hear_it(
    configured: AsyncJobsConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    import logging

    sent: list[Any] = []
    signal = compat.signals.task_enqueued

    async def asend(sender: Any, **named: Any) -> list[Any]:
        sent.append(named["task_result"].id)
        return []

    monkeypatch.setattr(signal, "asend", asend)
    quiet = await st.add.aenqueue(1, 1)
    compat.signals.logger.setLevel(logging.DEBUG)
    try:
        heard = await st.add.aenqueue(1, 1)
    finally:
        compat.signals.logger.setLevel(logging.NOTSET)
    assert sent == [heard.id] and quiet.id not in sent


async def test_flags_with_a_result_store(configured: AsyncJobsConfig) -> None:
    found = backend()
    assert found.supports_defer and found.supports_async_task and found.supports_get_result
    assert [m.id for m in found.check()] == []


async def test_without_a_result_store_get_result_is_unsupported_and_check_says_so(
    amqp_url: str, prefix: str
) -> None:
    config = load_config({"BROKER_URL": amqp_url, "KEY_PREFIX": prefix}, environ={})
    async with configured_app(config):
        found = backend()
        assert found.supports_get_result is False
        assert "asyncjobs.E104" in [m.id for m in found.check()]
        with pytest.raises(NotImplementedError, match="RESULT_BACKEND_URL"):
            await found.aget_result("anything")


def test_manage_py_check_runs_the_backends_check() -> None:
    from django.core.management import call_command
    from django.core.management.base import SystemCheckError

    with (
        override_settings(TASKS=_tasks_with({"NOPE": 1})),
        pytest.raises(SystemCheckError, match=r"asyncjobs\.E101"),
    ):
        call_command("check")


async def test_a_task_past_its_timeout_fails(worker: Any) -> None:
    result = await finished(await st.sleeps.aenqueue())
    assert result.status == compat.TaskResultStatus.FAILED
    assert result.errors[0].exception_class is TimeoutError


async def test_check_names_unknown_options_and_queues(configured: AsyncJobsConfig) -> None:
    odd = AsyncJobsBackend("odd", {"QUEUES": ["default", "nowhere"], "OPTIONS": {"RETRY": 1}})
    problems = {m.id: m.msg for m in odd.check()}
    assert "RETRY" in problems["asyncjobs.E101"]
    assert "nowhere" in problems["asyncjobs.E103"]


async def test_an_unknown_result_id(configured: AsyncJobsConfig) -> None:
    with pytest.raises(TaskResultDoesNotExist) as caught:
        await st.add.aget_result("no-such-id")
    assert isinstance(caught.value, compat.TaskResultDoesNotExist)
    assert isinstance(caught.value, AsyncJobsError)


async def test_a_result_of_another_task_is_a_mismatch(worker: Any) -> None:
    result = await finished(await st.add.aenqueue(1, 2))
    with pytest.raises(Exception, match="Task does not match") as caught:
        await st.async_add.aget_result(result.id)
    assert type(caught.value).__name__ == "TaskResultMismatch"


async def test_arguments_that_do_not_bind_fail_at_enqueue(configured: AsyncJobsConfig) -> None:
    with pytest.raises(ArgumentsError, match="nothing was sent"):
        await st.add.aenqueue(1, 2, 3)


# -- what never ran -----------------------------------------------------------------------
async def test_a_message_dead_lettered_before_running_fails_its_result(
    worker: Any, configured: AsyncJobsConfig
) -> None:
    """Arguments that do not fit (a raw sender skipped the check): FAILED, with why."""
    job = job_for(st.add)
    assert job is not None and job.task_name == "tests.testapp.standard_tasks:add"
    app = current_app()
    kicker = JobKicker[Any, Any](
        task_name=job.task_name, broker=app.broker, labels={envelope.QUEUE: "default"}, app=app
    )
    handle = await kicker.with_task_id("raw-one").kiq("not", "enough", "room")
    result = await finished(await st.add.aget_result(handle.task_id))
    assert result.status == compat.TaskResultStatus.FAILED
    assert "invalid_arguments" in result.errors[0].traceback
    assert result.errors[0].exception_class.__name__ == "NeverRan"
    assert result.worker_ids == []


# -- another process ------------------------------------------------------------------------
async def test_a_real_worker_process_runs_it_and_any_process_reads_the_result(
    configured: AsyncJobsConfig, redis_url: str, tmp_path: Path
) -> None:
    current_app().add_hooks(TaskStatusHooks())
    env = worker_env(broker_url=redis_url, prefix=configured.key_prefix)
    with running_worker(env, log_dir=tmp_path) as proc:
        await wait_worker_ready(proc)
        ok = await st.async_add.aenqueue(20, 22)
        retried = await asyncio.to_thread(st.attempts_until.enqueue, 2)
        unknown = await standard_elsewhere.nowhere.aenqueue()
        await finished(ok)
        await finished(retried)
        await finished(unknown)
    assert ok.return_value == 42
    [worker_id] = ok.worker_ids
    assert worker_id.rsplit(":", 1)[1] != str(os.getpid())  # the worker's, not ours
    assert retried.return_value == 2
    assert [e.exception_class for e in retried.errors] == [ValueError]
    assert len(retried.worker_ids) == 2
    # A Task the worker never imported: dead-lettered, and its result says so.
    assert unknown.status == compat.TaskResultStatus.FAILED
    assert "unknown_task" in unknown.errors[0].traceback


@pytest.mark.rabbitmq
async def test_on_rabbitmq_with_results_in_redis(
    configured_any: AsyncJobsConfig, start_any_worker: Any
) -> None:
    current_app().add_hooks(TaskStatusHooks())
    await start_any_worker()
    result = await finished(await st.attempts_until.aenqueue(2))
    assert result.return_value == 2
    assert len(result.errors) == 1 and result.attempts == 2


# -- on commit ----------------------------------------------------------------------------
def test_on_commit_waits_for_the_commit(configured: AsyncJobsConfig) -> None:
    current_app().add_hooks(TaskStatusHooks())
    current_app().transactions = DjangoTransactions()
    enqueued: list[str] = []

    def receiver(sender: Any, task_result: Any, **kwargs: Any) -> None:
        enqueued.append(task_result.id)

    compat.signals.task_enqueued.connect(receiver, weak=False)
    try:
        with transaction.atomic():
            result = st.add.on_commit().enqueue(1, 1)
            assert _status_doc(result.id) is None  # nothing sent, nothing written yet
            assert enqueued == []  # nor signalled
        assert _status_doc(result.id) is not None
        assert enqueued == [result.id]
        with contextlib.suppress(ZeroDivisionError), transaction.atomic():
            st.add.on_commit().enqueue(1, 1)
            raise ZeroDivisionError  # rolled back: never sent, never signalled
        assert enqueued == [result.id]
    finally:
        compat.signals.task_enqueued.disconnect(receiver)
    outside = st.add.on_commit().enqueue(3, 3)  # no transaction: at once
    assert _status_doc(outside.id) is not None
    declared = backend().task_class(func=after_commit, enqueue_on_commit=True)
    with transaction.atomic():
        waiting = declared.enqueue()
        assert _status_doc(waiting.id) is None
    assert _status_doc(waiting.id) is not None
    with override_settings(TASKS=_tasks_with({"ON_COMMIT": True})):
        with transaction.atomic():
            later = st.add.enqueue(2, 2)
            assert _status_doc(later.id) is None
        assert _status_doc(later.id) is not None


def _tasks_with(options: dict[str, Any]) -> dict[str, Any]:
    from django.conf import settings

    tasks = dict(settings.TASKS)
    tasks["default"] = {**tasks["default"], "OPTIONS": options}
    return tasks


def _status_doc(task_id: str) -> bytes | None:
    app = current_app()
    store = app.result_store
    assert store is not None
    return app.broker.home.run_sync(store.get_status(task_id), 5)


# -- one pool for every backend object -------------------------------------------------------
async def test_concurrent_contexts_share_one_pool(
    configured: AsyncJobsConfig, redis_url: str
) -> None:
    """Django makes a backend object per asyncio context; none holds a connection."""
    current_app().add_hooks(TaskStatusHooks())
    await st.add.aenqueue(0, 0)  # the client is up: count what the contexts add
    backends: list[Any] = []  # kept, so no id is reused

    async def one(i: int) -> None:
        backends.append(backend())
        await st.add.aenqueue(i, i)

    async def hundred_contexts() -> int:
        """Connections opened while 100 fresh contexts (each as a request's that never
        used TASKS) enqueue at once."""
        after = last_redis_client_id(redis_url)
        fresh = [asyncio.create_task(one(i), context=contextvars.Context()) for i in range(100)]
        await asyncio.gather(*fresh)
        return redis_connections(redis_url, {os.getpid()}, after)[os.getpid()]

    first = await hundred_contexts()
    second = await hundred_contexts()
    assert len({id(b) for b in backends}) == 200  # a backend object per context...
    app = current_app()
    pools = [app.broker.connection_pool, app.result_store.redis_pool]  # type: ignore[attr-defined]
    # ...sending through the process's pools: bounded by their size, then reused.
    assert first <= sum(pool.max_connections for pool in pools), first
    assert second <= 2, second


# -- the test mode ----------------------------------------------------------------------------
def test_the_test_mode_runs_django_tasks_and_keeps_their_results() -> None:
    """No broker: capture() (what asyncjobs' TestRunner and CaptureTasks use)."""
    from asyncjobs.testing import capture

    with capture() as jobs:
        result = st.add.enqueue(2, 3)
        assert st.add.get_result(result.id).status == compat.TaskResultStatus.READY
        jobs.run_pending()
        assert st.add.get_result(result.id).return_value == 5
    with capture(eager=True):
        result = st.attempts_until.enqueue(1)
        assert result.status == compat.TaskResultStatus.READY  # what enqueue() returned
        result.refresh()
        assert result.status == compat.TaskResultStatus.SUCCESSFUL
        assert result.return_value == 1 and len(result.worker_ids) == 1


async def test_a_postponed_run_is_no_attempt(
    configured: AsyncJobsConfig, start_worker: Any
) -> None:
    """A hook after the status hook postpones the second attempt once: READY again, its
    worker id dropped; the run that happens later is still attempt 2."""
    from asyncjobs.hooks import Hooks, Postpone, Run

    class PostponeOnce(Hooks):
        postponed = False

        async def before_run(self, run: Run) -> None:
            if run.attempt == 2 and not self.postponed:
                self.postponed = True
                raise Postpone(0.05)

    current_app().add_hooks(TaskStatusHooks(), PostponeOnce())
    await start_worker()
    result = await finished(await st.attempts_until.aenqueue(2))
    assert result.return_value == 2  # the context's attempt
    assert len(result.worker_ids) == 2 and len(result.errors) == 1
