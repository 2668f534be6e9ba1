"""Fixtures of the RabbitMQ transport tests (test_amqp.py, test_amqp_dead_letters.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aio_pika
import pytest
from aio_pika.abc import AbstractChannel

from example.processes import delete_amqp_queues

AMQP_QUEUES = ("default", "emails")  # the queues those tests configure


@pytest.fixture
async def admin(amqp_url: str, prefix: str) -> AsyncIterator[AbstractChannel]:
    """A plain channel for checks; deletes this test's queues and exchange afterwards."""
    connection = await aio_pika.connect(amqp_url)
    yield await connection.channel()
    await connection.close()
    await delete_amqp_queues(amqp_url, prefix, AMQP_QUEUES)
