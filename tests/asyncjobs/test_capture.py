"""asyncjobs.testing.capture(): sends recorded, run on demand in the test's thread through
the worker path, on memory:// (never the configured broker)."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

import asyncjobs
from asyncjobs import app as app_state
from asyncjobs import current_app, current_broker, load_config
from asyncjobs.app import restore
from asyncjobs.config import AsyncJobsConfig
from asyncjobs.errors import ArgumentsError, SyncInEventLoopError
from asyncjobs.hooks import Outcome
from asyncjobs.testing import DeadLetteredError, TaskCapture, capture
from tests.testapp import capture_tasks
from tests.testapp.capture_tasks import chain, double, flaky, sync_chain, sync_double

SETTINGS = {"BROKER_URL": "redis://127.0.0.1:6399/0", "QUEUES": ["default", "other"]}


@pytest.fixture
def config() -> AsyncJobsConfig:
    """A Redis config on a port where nothing listens: a connection attempt would fail."""
    capture_tasks.calls.clear()
    capture_tasks.failures_left.clear()
    return load_config(SETTINGS, {})


@pytest.fixture
def jobs(config: AsyncJobsConfig) -> Iterator[TaskCapture]:
    with capture(config) as captured:
        yield captured


def test_sends_are_recorded_with_arguments_queue_labels_and_delay(jobs: TaskCapture) -> None:
    first = double.kiq_sync(2)
    sync_double.kiq_sync(x=3)
    delayed = double.kicker().with_labels(delay=60, tenant="a").kiq_sync(4)

    assert current_broker().transport_name == "memory"
    assert [s.task_id for s in jobs.sent] == [first.task_id, jobs.sent[1].task_id, delayed.task_id]
    sent = jobs.assert_enqueued(double, args=[2])
    assert (sent.args, sent.kwargs, sent.queue, sent.delay_s) == ((2,), {}, "default", None)
    other = jobs.assert_enqueued(sync_double, kwargs={"x": 3}, queue="other", count=1)
    assert other.queue == "other"
    later = jobs.assert_enqueued(double, args=(4,))
    assert later.labels["tenant"] == "a"
    assert later.delay_s == pytest.approx(60, abs=1)
    assert len(jobs.sent_of(double)) == 2
    assert len(jobs.pending) == 3


def test_assertions_say_what_was_sent(jobs: TaskCapture) -> None:
    double.kiq_sync(2)
    with pytest.raises(AssertionError, match=r"double\(2\) on queue 'default'"):
        jobs.assert_enqueued(double, args=[3])
    with pytest.raises(AssertionError, match="matching: 1"):
        jobs.assert_enqueued(double, count=2)
    with pytest.raises(AssertionError, match=r"expected no send of .*double"):
        jobs.assert_not_enqueued(double)
    jobs.assert_not_enqueued(double, args=[3])
    jobs.assert_not_enqueued(sync_double)
    jobs.clear()
    jobs.assert_not_enqueued(double)


def test_run_pending_runs_sync_tasks_in_the_callers_thread(jobs: TaskCapture) -> None:
    handle = sync_double.kiq_sync(5)
    async_handle = double.kiq_sync(6)

    ran = jobs.run_pending()

    # Queue by queue in turn, as a worker takes them ("default" first).
    assert [(r.task_name, r.outcome, r.attempt) for r in ran] == [
        (double.task_name, Outcome.SUCCEEDED, 1),
        (sync_double.task_name, Outcome.SUCCEEDED, 1),
    ]
    here = threading.current_thread().name
    assert ("sync_double", 5, 1, here) in capture_tasks.calls
    assert jobs.result(handle).return_value == 10
    assert jobs.result(async_handle.task_id).return_value == 12
    assert jobs.pending == []
    assert jobs.run_pending() == []  # nothing left


def test_a_task_exception_propagates_and_retries_are_off_by_default(jobs: TaskCapture) -> None:
    capture_tasks.failures_left["t"] = 1
    flaky.kiq_sync("t")

    with pytest.raises(ValueError, match="t failed on attempt 1"):
        jobs.run_pending()

    assert [c[2] for c in capture_tasks.calls] == [1]  # one attempt, then dead-lettered
    assert jobs.run_pending() == []


def test_retries_follow_the_policy_without_waiting_for_the_backoff(jobs: TaskCapture) -> None:
    capture_tasks.failures_left["r"] = 2
    flaky.kiq_sync("r")

    ran = jobs.run_pending(retries=True)  # the backoff is 30 s: not waited for

    assert [(r.attempt, r.outcome) for r in ran] == [
        (1, Outcome.RETRIED),
        (2, Outcome.RETRIED),
        (3, Outcome.SUCCEEDED),
    ]
    assert isinstance(ran[0].error, ValueError)


def test_retries_run_out_then_the_last_error_propagates(jobs: TaskCapture) -> None:
    capture_tasks.failures_left["x"] = 5
    flaky.kiq_sync("x")
    with pytest.raises(ValueError, match="attempt 3"):
        jobs.run_pending(retries=True)


def test_errors_can_be_collected_instead_of_raised(jobs: TaskCapture) -> None:
    capture_tasks.failures_left["c"] = 1
    flaky.kiq_sync("c")
    double.kiq_sync(1)

    ran = jobs.run_pending(raise_errors=False)

    assert [r.outcome for r in ran] == [Outcome.FAILED, Outcome.SUCCEEDED]


def test_what_tasks_send_runs_too_and_delays_are_not_waited_for(jobs: TaskCapture) -> None:
    chain.kiq_sync(1)
    sync_chain.kiq_sync(2)
    double.kicker().with_labels(delay=3600).kiq_sync(7)

    jobs.run_pending()

    assert sorted(c[1] for c in capture_tasks.calls if c[0] == "double") == [2, 7, 102]
    jobs.assert_enqueued(double, args=[102])


def test_a_message_that_cannot_run_is_reported(jobs: TaskCapture) -> None:
    double.kicker().with_labels().kiq_sync(1)
    # A raw send with arguments that do not fit (kiq() would refuse them).
    message = current_broker().formatter.dumps(double.kicker()._prepare_message("not a number"))
    asyncjobs_broker = current_broker()
    asyncjobs_broker.home.run_sync(asyncjobs_broker.kick(message), 5)
    with pytest.raises(DeadLetteredError, match="invalid_arguments"):
        jobs.run_pending()


def test_eager_runs_each_send_before_kiq_returns(config: AsyncJobsConfig) -> None:
    with capture(config, eager=True) as jobs:
        handle = sync_double.kiq_sync(8)
        assert capture_tasks.calls == [("sync_double", 8, 1, threading.current_thread().name)]
        assert jobs.result(handle).return_value == 16
        capture_tasks.failures_left["e"] = 1
        with pytest.raises(ValueError, match="e failed"):
            flaky.kiq_sync("e")


async def test_eager_and_run_pending_from_async_code(config: AsyncJobsConfig) -> None:
    async with capture(config) as jobs:
        handle = await double.kiq(3)
        with pytest.raises(SyncInEventLoopError, match="arun_pending"):
            jobs.run_pending()
        ran = await jobs.arun_pending()
        assert [r.outcome for r in ran] == [Outcome.SUCCEEDED]
        assert (await jobs.aresult(handle)).return_value == 6
    async with capture(config, eager=True):
        await chain.kiq(10)
        assert [c[1] for c in capture_tasks.calls if c[0] == "double"] == [3, 11]


def test_arguments_that_do_not_fit_fail_at_the_call(jobs: TaskCapture) -> None:
    with pytest.raises(ArgumentsError):
        double.kiq_sync(1, 2)
    assert jobs.sent == []


def test_the_previous_app_is_current_again_afterwards(config: AsyncJobsConfig) -> None:
    suites = app_state._current
    before = asyncjobs.configure(config)
    try:
        with capture() as jobs:  # the current app's settings
            assert current_app() is not before
            assert current_app().config.queues == before.config.queues
            double.kiq_sync(1)
            assert len(jobs.sent) == 1
        assert current_app() is before
    finally:
        restore(suites)


def test_reconfigure_keeps_the_memory_server_and_what_was_sent(jobs: TaskCapture) -> None:
    double.kiq_sync(1)
    url = current_app().config.broker_url
    jobs.reconfigure(load_config({**SETTINGS, "QUEUES": ["default", "other", "extra"]}, {}))
    assert current_app().config.queues == ("default", "other", "extra")
    assert current_app().config.broker_url == url
    double.kiq_sync(2)
    assert [s.args for s in jobs.sent] == [(1,), (2,)]
    assert len(jobs.run_pending()) == 2
