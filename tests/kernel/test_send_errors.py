"""Every error ``kiq()`` raises is an ``AsyncJobsError`` (taskiq wraps them all in its
``SendTaskError``, which no ``except AsyncJobsError`` would catch)."""

from __future__ import annotations

import pytest
from taskiq.exceptions import SendTaskError

from asyncjobs.config import AsyncJobsConfig, load_config
from asyncjobs.errors import (
    AsyncJobsError,
    BrokerConnectionError,
    PayloadTooLargeError,
    SerializationError,
    UnknownQueueError,
)
from tests.helpers import configured_app
from tests.testapp.tasks import add

pytestmark = pytest.mark.redis


async def test_an_oversized_payload_raises_payload_too_large(configured: AsyncJobsConfig) -> None:
    with pytest.raises(PayloadTooLargeError) as raised:
        await add.kiq("x" * (configured.max_payload_bytes + 1), 2)
    assert not isinstance(raised.value, SendTaskError)


async def test_a_non_json_argument_raises_serialization_error(configured: AsyncJobsConfig) -> None:
    with pytest.raises(SerializationError, match="JSON"):
        await add.kiq(object(), 2)  # type: ignore[arg-type]


async def test_an_unknown_queue_raises_unknown_queue_error(configured: AsyncJobsConfig) -> None:
    with pytest.raises(UnknownQueueError, match="nope"):
        await add.kicker().with_labels(queue_name="nope").kiq(1, 2)


@pytest.mark.parametrize("scheme", ["redis", "amqp"])
async def test_a_dead_broker_raises_broker_connection_error(scheme: str, free_port: int) -> None:
    url = f"{scheme}://guest:secret@127.0.0.1:{free_port}/"
    async with configured_app(load_config({"BROKER_URL": url}, environ={})):
        with pytest.raises(BrokerConnectionError) as raised:
            await add.kiq(1, 2)
    assert isinstance(raised.value, AsyncJobsError)
    assert "secret" not in str(raised.value)
