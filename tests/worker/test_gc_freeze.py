"""A worker process freezes start-up's objects out of the cyclic GC once it is ready
(issue 22: collections of the oldest generation walked Django's, taskiq's and pydantic's
objects while messages ran); a receiver that is a guest in another process (a test's,
``owns_process=False``) leaves that process's GC alone."""

from __future__ import annotations

import gc
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.faults.workers import configured_like, running_worker, wait_worker_ready, worker_env
from tests.testapp.tasks import add, gc_frozen

pytestmark = [pytest.mark.redis, pytest.mark.timeout(90)]


async def test_a_worker_process_freezes_its_start_up_objects(
    redis_url: str, prefix: str, redis_cleanup: None, tmp_path: Path
) -> None:
    settings = worker_env(broker_url=redis_url, prefix=prefix)
    async with configured_like(settings):
        with running_worker(settings, log_dir=tmp_path) as proc:
            await wait_worker_ready(proc, timeout=30)
            frozen = (await (await gc_frozen.kiq()).wait_result(timeout=20)).return_value
    # Django, taskiq, pydantic and the test app: tens of thousands of objects.
    assert frozen > 10_000, frozen


async def test_a_receiver_in_another_process_leaves_its_gc_alone(
    start_worker: Callable[..., object], redis_cleanup: None
) -> None:
    before = gc.get_freeze_count()
    worker = await start_worker()  # owns_process=False, as every in-process worker
    result = await (await add.kiq(1, 2)).wait_result(timeout=20)
    await worker.stop()  # type: ignore[attr-defined]
    assert result.return_value == 3
    assert gc.get_freeze_count() == before
