"""Shared fixtures: the real Redis and RabbitMQ servers, skipped locally when absent.

Under CI (``CI`` set) a missing server is a failure, never a silent skip. Every test gets
its own key prefix / queue names so tests never see each other's messages, and cleans
them up. Fault tests start their own servers (tests/faults/redis_server.py,
tests/faults/rabbitmq_node.py) and never touch these. Shared helpers: tests/support/.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import pytest

if TYPE_CHECKING:
    from redis.asyncio import Redis

REDIS_URL = os.environ.get("ASYNCJOBS_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
AMQP_URL = os.environ.get("ASYNCJOBS_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")


def _reachable(url: str) -> bool:
    parts = urlsplit(url)
    default = 6379 if parts.scheme.startswith("redis") else 5672
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or default), 1):
            return True
    except OSError:
        return False


def require_server(url: str, name: str) -> None:
    if _reachable(url):
        return
    if os.environ.get("CI"):
        pytest.fail(f"{name} at {url} is unreachable, and CI is set: start it (see README)")
    pytest.skip(f"{name} at {url} is unreachable")


@pytest.fixture
def redis_url() -> str:
    require_server(REDIS_URL, "Redis")
    return REDIS_URL


@pytest.fixture
def amqp_url() -> str:
    require_server(AMQP_URL, "RabbitMQ")
    return AMQP_URL


@pytest.fixture
def prefix() -> str:
    """A key prefix / queue-name prefix unique to this test."""
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture
async def redis_cleanup(redis_url: str, prefix: str) -> AsyncIterator[None]:
    """Deletes every key under this test's prefix afterwards."""
    from redis.asyncio import Redis

    yield
    conn = Redis.from_url(redis_url)
    try:
        keys = [key async for key in conn.scan_iter(match=f"{prefix}*")]
        if keys:
            await conn.delete(*keys)
    finally:
        await conn.aclose()


@pytest.fixture
async def conn(redis_url: str, redis_cleanup: None) -> AsyncIterator[Redis]:
    """A client on the test Redis; this test's keys are deleted afterwards."""
    from redis.asyncio import Redis

    client = Redis.from_url(redis_url)
    yield client
    await client.aclose()


@pytest.fixture
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- Django and the configured app -------------------------------------------------
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.django_settings")

import django  # noqa: E402

django.setup()

from asyncjobs.config import AsyncJobsConfig, load_config  # noqa: E402
from tests.support.helpers import configured_app  # noqa: E402


@pytest.fixture
async def configured(
    redis_url: str, prefix: str, redis_cleanup: None
) -> AsyncIterator[AsyncJobsConfig]:
    """asyncjobs configured on the real Redis under this test's prefix; restored after."""
    config = load_config(
        {
            "BROKER_URL": redis_url,
            "QUEUES": ["default", "other"],
            "KEY_PREFIX": prefix,
            "MAX_ATTEMPTS": 3,
        },
        environ={},
    )
    async with configured_app(config):
        yield config


@pytest.fixture(params=["redis", "rabbitmq"])
async def configured_any(
    request: pytest.FixtureRequest, redis_url: str, prefix: str, redis_cleanup: None
) -> AsyncIterator[AsyncJobsConfig]:
    """``configured``, once per transport (RabbitMQ keeps its results in Redis)."""
    settings: dict[str, object] = {
        "QUEUES": ["default", "other"],
        "KEY_PREFIX": prefix,
        "MAX_ATTEMPTS": 3,
        "BROKER_URL": redis_url,
    }
    if request.param == "rabbitmq":
        require_server(AMQP_URL, "RabbitMQ")
        settings |= {"BROKER_URL": AMQP_URL, "RESULT_BACKEND_URL": redis_url}
    config = load_config(settings, environ={})
    async with configured_app(config) as broker:
        yield config
    if request.param == "rabbitmq":
        from example.processes import delete_amqp_queues

        delay_queues = broker.delay_queues.names  # type: ignore[attr-defined]
        await delete_amqp_queues(AMQP_URL, prefix, ("default", "other"), also=delay_queues)


from tests.support.worker_harness import start_any_worker, start_worker  # noqa: E402,F401 - fixtures
