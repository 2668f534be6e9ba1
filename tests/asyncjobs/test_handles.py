"""The handle ``kiq()`` and ``asyncjobs.job()`` return: taskiq's, with a
``wait_result(timeout=...)`` that keeps its timeout (the frozen-backend case is in
``tests/faults/test_send_timeouts.py``)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from taskiq import AsyncTaskiqTask
from taskiq.exceptions import TaskiqResultTimeoutError

from asyncjobs import failed_attempts, job
from asyncjobs.config import AsyncJobsConfig, load_config
from asyncjobs.errors import (
    AsyncJobsError,
    ConfigurationError,
    ResultsDisabledError,
    ResultTimeoutError,
)
from asyncjobs.handles import JobHandle
from example.processes import delete_amqp_queues
from tests.support.helpers import configured_app
from tests.testapp import tasks

pytestmark = pytest.mark.redis


async def test_a_worker_result_comes_through_both_handles(
    start_any_worker: Callable[..., object],
) -> None:
    await start_any_worker()
    sent = await tasks.add.kiq(1, 2)
    assert isinstance(sent, JobHandle) and isinstance(sent, AsyncTaskiqTask)
    assert (await sent.wait_result(timeout=15)).return_value == 3
    again = job(sent.task_id)
    assert isinstance(again, JobHandle)
    assert (await again.wait_result(timeout=1)).return_value == 3


async def test_a_result_that_does_not_come_times_out_as_both_errors(
    configured: AsyncJobsConfig,
) -> None:
    sent = await tasks.add.kiq(1, 2)  # no worker
    started = time.monotonic()
    with pytest.raises(ResultTimeoutError) as raised:
        await sent.wait_result(check_interval=0.05, timeout=0.3)
    assert 0.3 <= time.monotonic() - started < 0.8
    error = raised.value
    assert isinstance(error, AsyncJobsError) and isinstance(error, TaskiqResultTimeoutError)
    assert error.timeout == 0.3 and sent.task_id in str(error)


@pytest.mark.rabbitmq
async def test_without_a_result_store_every_read_raises(amqp_url: str, prefix: str) -> None:
    # taskiq's DummyResultBackend answered each of these at once with a made-up success.
    settings = {"BROKER_URL": amqp_url, "QUEUES": ["default", "other"], "KEY_PREFIX": prefix}
    config = load_config(settings, environ={})
    assert config.effective_result_backend_url is None
    async with configured_app(config) as broker:
        try:
            sent = await tasks.add.kiq(1, 2)  # sending needs no result store
            again = job(sent.task_id)
            reads: list[Callable[[], Awaitable[Any]]] = [
                lambda: sent.wait_result(timeout=1),
                sent.wait_result,
                sent.get_result,
                sent.is_ready,
                lambda: again.wait_result(timeout=1),
                again.is_ready,
                lambda: failed_attempts(sent.task_id),
            ]
            for read in reads:
                with pytest.raises(ResultsDisabledError, match="RESULT_BACKEND_URL") as raised:
                    await read()
                assert isinstance(raised.value, ConfigurationError)
                assert "results are off" in str(raised.value) and sent.task_id in str(raised.value)
        finally:
            delay_queues = broker.delay_queues.names  # type: ignore[attr-defined]
            await delete_amqp_queues(amqp_url, prefix, ("default", "other"), also=delay_queues)
