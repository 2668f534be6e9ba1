"""The handle ``kiq()`` and ``asyncjobs.job()`` return: taskiq's, with a
``wait_result(timeout=...)`` that keeps its timeout (the frozen-backend case is in
``tests/faults/test_send_timeouts.py``)."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from taskiq import AsyncTaskiqTask
from taskiq.exceptions import TaskiqResultTimeoutError

from asyncjobs import job
from asyncjobs.config import AsyncJobsConfig
from asyncjobs.errors import AsyncJobsError, ResultTimeoutError
from asyncjobs.handles import JobHandle
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
