"""Sends and waits that keep their time limits on a broker that stops answering (D4, D8).

A send written to a frozen broker is an *unknown* outcome: ``kiq()`` raises
``SendOutcomeUnknownError`` by ``SEND_TIMEOUT`` (not after the socket timeout), naming the
task id, and the broker does apply it once it resumes, which is why "not sent" would be a
lie. A send that could not be written (nothing listening) says nothing was sent.
``wait_result(timeout=...)`` raises by its timeout whatever the result backend does.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import AbstractContextManager
from pathlib import Path

import orjson
import pytest
from redis.asyncio import Redis
from taskiq.exceptions import TaskiqResultTimeoutError

from asyncjobs import job, load_config
from asyncjobs.brokers.rabbitmq.broker import AmqpBroker, queue_name
from asyncjobs.brokers.redis.streams import stream_key
from asyncjobs.errors import (
    AsyncJobsError,
    BrokerConnectionError,
    BrokerError,
    ResultTimeoutError,
    SendOutcomeUnknownError,
)
from asyncjobs.handles import JobHandle
from tests.faults.rabbitmq_node import PrivateRabbit
from tests.faults.redis_server import PrivateRedis
from tests.support.freeze import frozen
from tests.support.helpers import configured_app, wait_until
from tests.testapp.tasks import add

pytestmark = pytest.mark.redis

SEND_TIMEOUT = 1.0
MARGIN = 2.0  # generous: a shared 2-core machine


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    with PrivateRedis(tmp_path / "redis") as server:
        yield server


def frozen_redis(server: PrivateRedis) -> AbstractContextManager[None]:
    assert server.process is not None
    return frozen(server.process.popen.pid)


async def stream_task_ids(url: str, stream: str) -> set[str]:
    async with Redis.from_url(url) as check:
        entries = await check.xrange(stream)
    return {orjson.loads(fields[b"data"])["task_id"] for _, fields in entries}


async def test_a_send_to_a_frozen_redis_is_unknown_and_arrives_when_it_resumes(
    private_redis: PrivateRedis, prefix: str
) -> None:
    settings = {"BROKER_URL": private_redis.url, "KEY_PREFIX": prefix, "SEND_TIMEOUT": 1}
    async with configured_app(load_config(settings, environ={})):
        first = await add.kiq(1, 1)  # started and connected: the next send is written at once
        with frozen_redis(private_redis):
            started = time.monotonic()
            with pytest.raises(SendOutcomeUnknownError) as raised:
                await add.kiq(2, 2)
            took = time.monotonic() - started
        error = raised.value
        assert SEND_TIMEOUT - 0.1 <= took < SEND_TIMEOUT + MARGIN, took
        assert error.task_id not in ("", first.task_id) and error.task_id in str(error)
        assert error.queue == "default"
        assert "may have been delivered" in str(error) and "task may run" in str(error)
        assert isinstance(error, AsyncJobsError)
        # ...and "unknown" was the truth: Redis applied the XADD once it could.
        stream = stream_key(prefix, "default")

        async def arrived() -> bool:
            return error.task_id in await stream_task_ids(private_redis.url, stream)

        await wait_until(arrived, what="the unconfirmed message in the stream")
        assert isinstance(await add.kiq(3, 3), JobHandle)  # and sending works again


async def test_a_send_to_a_stopped_redis_says_nothing_was_sent(
    private_redis: PrivateRedis, prefix: str
) -> None:
    settings = {"BROKER_URL": private_redis.url, "KEY_PREFIX": prefix, "SEND_TIMEOUT": 1}
    async with configured_app(load_config(settings, environ={})):
        await add.kiq(1, 1)  # connected; then nothing listens on the port any more
        await asyncio.to_thread(private_redis.stop)  # the loop sees the connection close
        with pytest.raises(BrokerConnectionError) as raised:
            await add.kiq(2, 2)
        assert not isinstance(raised.value, SendOutcomeUnknownError)
        assert "nothing was sent" in str(raised.value)


async def test_wait_result_keeps_its_timeout_on_a_frozen_result_backend(
    private_redis: PrivateRedis, redis_url: str, prefix: str, redis_cleanup: None
) -> None:
    settings = {"BROKER_URL": redis_url, "RESULT_BACKEND_URL": private_redis.url}
    async with configured_app(load_config(settings | {"KEY_PREFIX": prefix}, environ={})):
        handle = await add.kiq(1, 2)  # no worker: the result never comes
        assert not await handle.is_ready()  # the backend's connection is open
        for waiting in (handle, job(handle.task_id)):
            with frozen_redis(private_redis):
                started = time.monotonic()
                with pytest.raises(ResultTimeoutError) as raised:
                    await waiting.wait_result(timeout=2)
                took = time.monotonic() - started
            assert 2.0 <= took < 2.5, took
            assert isinstance(raised.value, TaskiqResultTimeoutError)
            assert handle.task_id in str(raised.value)


@pytest.fixture
def private_rabbit(tmp_path: Path) -> Iterator[PrivateRabbit]:
    with PrivateRabbit(tmp_path / "rabbit") as node:
        yield node


@pytest.fixture
async def amqp_app(private_rabbit: PrivateRabbit, prefix: str) -> AsyncIterator[AmqpBroker]:
    settings = {"BROKER_URL": private_rabbit.amqp_url, "KEY_PREFIX": prefix, "SEND_TIMEOUT": 1}
    async with configured_app(load_config(settings, environ={})) as broker:
        assert isinstance(broker, AmqpBroker)
        yield broker


async def test_rabbitmq_unconfirmed_refused_and_unreachable_sends(
    private_rabbit: PrivateRabbit, amqp_app: AmqpBroker, prefix: str
) -> None:
    """One node for three cases (it takes seconds to start): frozen (unknown, and the
    message is there after all), a queue gone (refused: unroutable), stopped (not sent)."""
    broker = amqp_app
    await add.kiq(1, 1)
    assert private_rabbit.process is not None
    with frozen(private_rabbit.process.popen.pid, group=True):  # every thread stopped
        started = time.monotonic()
        try:
            await add.kiq(2, 2)
        except SendOutcomeUnknownError as exc:
            error = exc
        else:
            took = time.monotonic() - started
            pytest.fail(f"confirmed after {took:.3f} s by a node whose threads all stopped")
        took = time.monotonic() - started
    assert SEND_TIMEOUT - 0.1 <= took < SEND_TIMEOUT + MARGIN, took
    assert error.task_id in str(error) and error.queue == "default"
    assert "may have been delivered" in str(error)

    async def both_stored() -> bool:
        ready, _ = await broker.declared_counts(queue_name(prefix, "default"))
        return ready == 2

    await wait_until(both_stored, what="the unconfirmed message in its queue")

    assert broker.write_conn is not None
    channel = await broker.write_conn.channel()  # no binding left: unroutable
    queue = await channel.get_queue(queue_name(prefix, "default"), ensure=False)
    await queue.unbind(broker.exchange_name, routing_key="default")
    await channel.close()
    with pytest.raises(BrokerError, match=r"could not route .*; nothing was stored") as refused:
        await add.kiq(3, 3)
    assert not isinstance(refused.value, SendOutcomeUnknownError)

    private_rabbit.stop()

    async def channel_closed() -> bool:
        return broker.write_channel is None or broker.write_channel.is_closed

    await wait_until(channel_closed, what="the publisher channel to close")
    with pytest.raises(BrokerConnectionError) as unreachable:
        await add.kiq(4, 4)
    assert not isinstance(unreachable.value, SendOutcomeUnknownError)
    assert "nothing was sent" in str(unreachable.value)
