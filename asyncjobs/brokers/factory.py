"""Build the transport a broker URL names."""

from __future__ import annotations

from taskiq import AsyncBroker

from asyncjobs.brokers.base import TransportOptions
from asyncjobs.brokers.redis.results import JsonRedisResultBackend
from asyncjobs.brokers.urls import Transport, transport_for


def build_broker(
    url: str,
    options: TransportOptions,
    *,
    result_backend_url: str | None = None,
    result_ttl_s: int = 86_400,
) -> AsyncBroker:
    """A broker for ``url`` (redis[s]://, amqp[s]://, memory://) with its result backend."""
    transport = transport_for(url)
    broker: AsyncBroker
    if transport is Transport.MEMORY:
        from asyncjobs.brokers.memory.broker import MemoryBroker

        return MemoryBroker(options)
    if transport is Transport.REDIS:
        from asyncjobs.brokers.redis.broker import RedisStreamsBroker

        broker = RedisStreamsBroker(url, options)
    else:
        from asyncjobs.brokers.rabbitmq.broker import AmqpBroker

        broker = AmqpBroker(url, options)
    if result_backend_url:
        transport_for(result_backend_url, "RESULT_BACKEND_URL")
        broker.with_result_backend(
            JsonRedisResultBackend(
                result_backend_url,
                result_ttl_s,
                options.key_prefix,
                retry_for_s=options.lease_timeout_s,
            )
        )
    return broker
