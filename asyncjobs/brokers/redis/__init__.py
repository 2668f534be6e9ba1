"""Redis Streams transport (on taskiq-redis): the broker, its deliveries, leases, delays,
dead letters, inspection, the Redis result store, schedule storage and monitor store."""

from __future__ import annotations

from typing import TYPE_CHECKING

from asyncjobs.brokers.redis.urls import url_problem
from asyncjobs.brokers.transport import Capabilities, TransportSpec

if TYPE_CHECKING:
    from asyncjobs.brokers.base import ReliableBroker, TransportOptions
    from asyncjobs.brokers.stores import (
        MonitorStore,
        ResultStore,
        ResultStoreOptions,
        ScheduleStorage,
    )


def _broker(url: str, options: TransportOptions) -> ReliableBroker:
    from asyncjobs.brokers.redis.broker import RedisStreamsBroker

    return RedisStreamsBroker(url, options)


def _results(url: str, options: ResultStoreOptions) -> ResultStore:
    from asyncjobs.brokers.redis.results import JsonRedisResultBackend

    return JsonRedisResultBackend(
        url, options.ttl_s, options.key_prefix, retry_for_s=options.retry_for_s
    )


def _schedules(url: str, key_prefix: str) -> ScheduleStorage:
    from asyncjobs.brokers.redis.schedules import RedisScheduleStorage

    return RedisScheduleStorage(url, key_prefix)


def _monitor(url: str, key_prefix: str) -> MonitorStore:
    from asyncjobs.brokers.redis.monitor import RedisMonitorStore

    return RedisMonitorStore(url, key_prefix)


def _errors() -> tuple[type[BaseException], ...]:
    from redis.exceptions import RedisError

    return (RedisError,)


def _connection_errors() -> tuple[type[BaseException], ...]:
    from redis.exceptions import ConnectionError, TimeoutError

    return (ConnectionError, TimeoutError)


TRANSPORT = TransportSpec(
    name="redis",
    capabilities=Capabilities(
        stores_results=True, stores_schedules=True, needs_promoter=True, locates=True
    ),
    default_port=6379,
    build_broker=_broker,
    url_problem=url_problem,
    build_result_store=_results,
    build_schedule_storage=_schedules,
    build_monitor_store=_monitor,
    library_errors=_errors,
    connection_errors=_connection_errors,
)
