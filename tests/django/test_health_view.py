"""``asyncjobs.django.health.queue_health``: 200 with the figures, 503 on a problem or
when the broker cannot be reached (called directly: the test settings route no URL)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from django.test import RequestFactory

from asyncjobs import configured
from asyncjobs.config import AsyncJobsConfig
from asyncjobs.django.health import queue_health
from tests.testapp import tasks


@contextlib.asynccontextmanager
async def app_with(settings: dict[str, Any]) -> AsyncIterator[AsyncJobsConfig]:
    """asyncjobs configured with ``settings`` for the block; the previous app after."""
    async with configured(settings) as app:
        yield app.config


async def get() -> tuple[int, dict[str, Any]]:
    response = await queue_health(RequestFactory().get("/asyncjobs/health/"))
    return response.status_code, orjson.loads(response.content)


@pytest.mark.redis
async def test_healthy_then_over_the_backlog_limit(
    redis_url: str, prefix: str, redis_cleanup: None
) -> None:
    settings = {
        "BROKER_URL": redis_url,
        "QUEUES": ["default", "other"],
        "KEY_PREFIX": prefix,
        "HEALTH_MAX_BACKLOG": 1,
    }
    async with app_with(settings):
        status, body = await get()
        assert status == 200
        assert body["problems"] == []
        assert [q["queue"] for q in body["queues"]] == ["default", "other"]
        assert body["queues"][0]["backlog"] == 0
        await tasks.add.kiq(1, 2)
        await tasks.add.kiq(3, 4)  # no worker runs: both wait
        status, body = await get()
        assert status == 503
        assert body["queues"][0]["waiting"] == 2
        assert body["problems"] == ["queue 'default': backlog 2 > HEALTH_MAX_BACKLOG 1"]


async def test_unreachable_broker_is_503_without_password(free_port: int) -> None:
    settings = {"BROKER_URL": f"redis://:s3cret@127.0.0.1:{free_port}/0"}
    async with app_with(settings):
        status, body = await get()
    assert status == 503
    assert body["queues"] == [] and body["problems"] == [body["error"]]
    assert "cannot read queue figures from Redis" in body["error"]
    assert "s3cret" not in orjson.dumps(body).decode()


async def test_only_safe_methods() -> None:
    response = await queue_health(RequestFactory().post("/asyncjobs/health/"))
    assert response.status_code == 405
