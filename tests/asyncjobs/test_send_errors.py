"""Every error ``kiq()`` raises is an ``AsyncJobsError`` (taskiq wraps them all in its
``SendTaskError``, which no ``except AsyncJobsError`` would catch)."""

from __future__ import annotations

import pytest
from taskiq.exceptions import SendTaskError

from asyncjobs.app import current_broker
from asyncjobs.brokers.envelope import MAX_DELAY_S
from asyncjobs.brokers.rabbitmq.broker import AmqpBroker, queue_name
from asyncjobs.brokers.redis.delayed import delayed_key
from asyncjobs.brokers.redis.streams import stream_key
from asyncjobs.config import AsyncJobsConfig, load_config
from asyncjobs.errors import (
    AsyncJobsError,
    BrokerConnectionError,
    ConfigurationError,
    PayloadTooLargeError,
    SerializationError,
    UnknownQueueError,
)
from tests.conftest import REDIS_URL
from tests.support.helpers import configured_app
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


@pytest.mark.parametrize(
    "labels",
    [{"delay": 1e300}, {"eta": 1e20}, {"eta": "9999-12-31T23:59:59"}, {"delay": "nan"}],
    ids=repr,
)
async def test_a_delay_beyond_the_maximum_is_refused_and_nothing_is_sent(
    configured_any: AsyncJobsConfig, labels: dict[str, object]
) -> None:
    with pytest.raises(ConfigurationError, match="maximum delay is 366 days") as raised:
        await add.kicker().with_labels(**labels).kiq(1, 2)
    assert not isinstance(raised.value, SendTaskError)
    assert await sent_anywhere(configured_any) == 0


async def sent_anywhere(config: AsyncJobsConfig) -> int:
    """Messages in the queue, waiting in its delayed set (Redis) or its delay queues
    (RabbitMQ: none was even declared)."""
    broker = current_broker()
    if isinstance(broker, AmqpBroker):
        await broker.ensure_started()
        # In the loop the client lives in (asyncjobs' own: no loop here claimed it).
        counting = broker.declared_counts(queue_name(config.key_prefix, "default"))
        ready, _ = await broker.home.run(counting)
        return ready + len(broker.delay_queues.names)
    from redis.asyncio import Redis

    conn = Redis.from_url(REDIS_URL)
    try:
        waiting = await conn.xlen(stream_key(config.key_prefix, "default"))
        delayed = await conn.zcard(delayed_key(config.key_prefix, "default"))
    finally:
        await conn.aclose()
    return int(waiting) + int(delayed)


async def test_a_delay_just_below_the_maximum_is_sent(configured_any: AsyncJobsConfig) -> None:
    # The maximum is one both transports hold: RabbitMQ takes a delay queue whose TTL
    # and expiry are a year long (it refuses x-expires of ~31 years).
    await add.kicker().with_labels(delay=MAX_DELAY_S - 60).kiq(1, 2)
    assert await sent_anywhere(configured_any) == 1
