"""README "Looking a task up by id": the status function it shows, taken from the README
and run against a worker on Redis with its default result store (the broker's Redis)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import asyncjobs
from asyncjobs.config import AsyncJobsConfig
from asyncjobs.errors import ResultTimeoutError
from tests.support.helpers import wait_until
from tests.testapp import tasks

pytestmark = pytest.mark.redis


SECTION = "### Looking a task up by id"
ROOT = Path(__file__).resolve().parents[2]


def readme_code() -> dict[str, Any]:
    """The section's Python block, run: what the README shows is what is tested."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index(SECTION) :]
    block = section[section.index("```python\n") + len("```python\n") :]
    namespace: dict[str, Any] = {}
    exec(block[: block.index("```")], namespace)  # the README's own code
    return namespace


task_state = readme_code()["task_state"]


async def test_a_task_retried_then_done(start_worker: Callable[..., object]) -> None:
    await start_worker()
    task_id = (await tasks.flaky_slow.kiq("state", 1)).task_id  # 3 s before its retry
    await wait_until(lambda: asyncjobs.failed_attempts(task_id), what="the failed attempt")
    assert await task_state(task_id) == {
        "state": "pending",
        "failed_attempts": ["1: ConnectionError: flaky state failed attempt 1"],
    }
    result = await asyncjobs.job(task_id).wait_result(timeout=10)
    assert result.return_value == 2
    assert await task_state(task_id) == {
        "state": "done",
        "value": 2,
        "failed_attempts": ["1: ConnectionError: flaky state failed attempt 1"],
    }


async def test_a_task_failed_for_good(start_worker: Callable[..., object]) -> None:
    await start_worker()
    task_id = (await tasks.picky.kiq("bad", "KeyError")).task_id  # not retried
    assert (await asyncjobs.job(task_id).wait_result(timeout=10)).is_err
    assert await task_state(task_id) == {
        "state": "failed",
        "failed_attempts": ["1: KeyError: 'bad'"],
    }


async def test_an_id_nobody_sent_is_pending_and_wait_result_times_out(
    configured: AsyncJobsConfig,
) -> None:
    task_id = uuid.uuid4().hex
    assert await task_state(task_id) == {"state": "pending", "failed_attempts": []}
    with pytest.raises(ResultTimeoutError):
        await asyncjobs.job(task_id).wait_result(timeout=0.3)
