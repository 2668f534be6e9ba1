"""The example project's processes for one test: its broker (once per transport), its
own key prefix and SQLite file; stopped and cleaned up afterwards."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.support.processes import ExampleStack, delete_amqp_queues


@pytest.fixture(
    params=[
        pytest.param("redis", marks=pytest.mark.redis),
        pytest.param("rabbitmq", marks=[pytest.mark.redis, pytest.mark.rabbitmq]),
    ]
)
def broker_url(request: pytest.FixtureRequest, redis_url: str) -> str:
    if request.param == "rabbitmq":
        url: str = request.getfixturevalue("amqp_url")
        return url
    return redis_url


@pytest.fixture
async def stack(
    broker_url: str,
    redis_url: str,
    prefix: str,
    tmp_path: Path,
    redis_cleanup: None,
) -> AsyncIterator[ExampleStack]:
    """The example project's processes on this test's prefix; stopped and cleaned after."""
    example = ExampleStack(
        broker_url=broker_url,
        result_backend_url=redis_url,
        db_path=tmp_path / "example.sqlite3",
        log_dir=tmp_path / "logs",
        key_prefix=prefix,
    )
    await asyncio.to_thread(example.migrate)
    try:
        yield example
    finally:
        await asyncio.to_thread(example.stop, 15.0)
        # Shown by pytest when the test failed (captured output of the teardown).
        print(example.describe(lines=80))
        if broker_url.startswith("amqp"):
            await asyncio.wait_for(delete_amqp_queues(broker_url, prefix), timeout=15)
