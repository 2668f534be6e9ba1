"""The scaler's number is the right number: what KEDA computes from the overlays'
ScaledObjects, against real Redis and RabbitMQ, equals asyncjobs' backlog
(``asyncjobs.brokers.inspection.inspect_queues``) before consumption, while a worker holds
messages (fetched, not acknowledged), when tasks finish out of order, after a worker
dies like a SIGKILLed one, and once everything is done.

KEDA's queries are replayed as KEDA 2.20.2 issues them (pkg/scalers/redis_streams_scaler.go,
rabbitmq_scaler.go): XLEN / XPENDING / XINFO GROUPS with its NULL-lag reading, and the
management API's ``messages`` of the queue (``protocol: http``), on a private RabbitMQ
node with the management plugin. The offline model (``keda_model``) must agree with the
live answers too, so the offline checks rest on what the servers really do.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import pytest
from redis.asyncio import Redis
from redis.exceptions import ResponseError
from taskiq.message import BrokerMessage

from asyncjobs.brokers.base import ReliableBroker, TransportOptions
from asyncjobs.brokers.envelope import QUEUE as QUEUE_LABEL
from asyncjobs.brokers.inspection import inspect_queues
from asyncjobs.brokers.rabbitmq.broker import AmqpBroker
from asyncjobs.brokers.redis.broker import RedisStreamsBroker
from asyncjobs.brokers.redis.streams import GROUP
from asyncjobs.config import AsyncJobsConfig
from example.processes import delete_amqp_queues
from tests.brokers.test_contract import crash_amqp, crash_redis
from tests.faults.rabbitmq_node import PrivateRabbit, rabbitmq_node  # noqa: F401 - fixture
from tests.k8s import keda_model
from tests.k8s.backlog_formula import queue_of
from tests.k8s.keda_model import StreamState, TriggerError
from tests.k8s.manifests import Doc, Manifests, rendered
from tests.support.helpers import fetch_n, wait_until

LEASE_S = 1.0  # a crashed worker's Redis entries come back after this


def overlay(name: str) -> tuple[Doc, AsyncJobsConfig]:
    """The overlay's ScaledObject spec and the settings its worker Deployment runs with."""
    manifests = Manifests(rendered(name), name)
    settings = manifests.settings(manifests.workload("worker"))
    assert not isinstance(settings, str), settings
    [so] = manifests.of_kind("ScaledObject")
    spec: Doc = so["spec"]
    return spec, settings


def message(queue: str) -> BrokerMessage:
    return BrokerMessage(
        task_id=uuid.uuid4().hex, task_name="t", message=b"{}", labels={QUEUE_LABEL: queue}
    )


class Brokers:
    def __init__(self, make: Any) -> None:
        self.make = make
        self.built: list[ReliableBroker] = []

    def client(self, **options: Any) -> ReliableBroker:
        broker: ReliableBroker = self.make(**options)
        self.built.append(broker)
        return broker

    async def worker(self, capacity: int, **options: Any) -> ReliableBroker:
        broker = self.client(**options)
        broker.is_worker_process = True
        broker.receiver_attached = True
        await broker.startup()
        await broker.set_capacity(capacity)
        return broker

    async def close(self) -> None:
        for broker in self.built:
            if broker.started and not getattr(broker, "brokers_crashed", False):
                await broker.shutdown()


# -- Redis Streams -------------------------------------------------------------------
async def keda_redis_value(conn: Redis, metadata: dict[str, str]) -> int:
    """One redis-streams trigger's value, queried as KEDA does (createEntriesCountFn)."""
    stream = metadata["stream"]
    mode = keda_model.redis_streams_mode(metadata)  # Validate(): pure, shared with the model
    if mode == "length":
        return int(await conn.xlen(stream))
    group = metadata["consumerGroup"]
    if mode == "pending":
        try:
            return int((await conn.xpending(stream, group))["pending"])
        except ResponseError as exc:
            raise TriggerError(str(exc)) from None
    try:
        groups = await conn.xinfo_groups(stream)
    except ResponseError as exc:
        if "no such key" in str(exc):
            return 0
        raise TriggerError(str(exc)) from None
    for found in groups:
        if found["name"] in (group, group.encode()):
            return keda_model.NULL_LAG if found["lag"] is None else int(found["lag"])
    return int(await conn.xlen(stream))


async def stream_state(conn: Redis, stream: str) -> StreamState:
    """What the offline model takes, read from the live server."""
    if not await conn.exists(stream):
        return StreamState(0, 0, None, group_exists=False, stream_exists=False)
    length = int(await conn.xlen(stream))
    groups = [g for g in await conn.xinfo_groups(stream) if g["name"] in (GROUP, GROUP.encode())]
    if not groups:
        return StreamState(length, 0, None, group_exists=False)
    lag = groups[0]["lag"]
    return StreamState(length, int(groups[0]["pending"]), None if lag is None else int(lag))


@pytest.fixture
async def redis_conn(redis_url: str) -> AsyncIterator[Redis]:
    conn = Redis.from_url(redis_url)
    yield conn
    await conn.aclose()


@pytest.mark.redis
async def test_redis_scaler_reads_the_backlog(
    redis_url: str, prefix: str, redis_cleanup: None, redis_conn: Redis
) -> None:
    spec, settings = overlay("redis")
    queues = list(settings.worker_queues)
    assert queues == ["default", "emails"]
    triggers = [
        {
            **t,
            "metadata": {**t["metadata"], "stream": f"{prefix}:{queue_of(t, settings.key_prefix)}"},
        }
        for t in spec["triggers"]
    ]
    formula = spec["advanced"]["scalingModifiers"]["formula"]
    activation = float(spec["advanced"]["scalingModifiers"]["activationTarget"])
    # The first idea, to show where it goes wrong: lag + pending of `default`.
    lag_trigger = {"stream": f"{prefix}:default", "consumerGroup": GROUP, "lagCount": "5"}
    pending_trigger = {"stream": f"{prefix}:default", "consumerGroup": GROUP}

    def options(**extra: Any) -> TransportOptions:
        return TransportOptions(
            queues=tuple(settings.queues), key_prefix=prefix, lease_timeout_s=LEASE_S, **extra
        )

    brokers = Brokers(lambda **o: RedisStreamsBroker(redis_url, options(**o)))

    async def agree(what: str) -> float:
        values = {t["name"]: await keda_redis_value(redis_conn, t["metadata"]) for t in triggers}
        composite = keda_model.evaluate(formula, values)
        backlog = sum(s.backlog for s in await inspect_queues(client, queues))
        assert composite == backlog, (
            f"{what}: KEDA reads {values} -> {composite}, backlog {backlog}"
        )
        assert (composite > activation) == (backlog > 0), what
        for trigger in [*triggers, {"metadata": lag_trigger}, {"metadata": pending_trigger}]:
            metadata = trigger["metadata"]
            state = await stream_state(redis_conn, metadata["stream"])
            try:
                live: int | str = await keda_redis_value(redis_conn, metadata)
            except TriggerError:
                live = "error"
            try:
                model: int | str = keda_model.redis_streams_metric(metadata, state)
            except TriggerError:
                model = "error"
            assert live == model, f"{what}: {metadata} live {live} != model {model} ({state})"
        return composite

    try:
        client = brokers.client()
        for queue, count in (("default", 4), ("emails", 1)):
            for _ in range(count):
                await client.kick(message(queue))
        assert await agree("before consumption") == 5
        # Redis lost its data and running senders re-created the streams (XADD), without
        # the consumer groups: XLEN still counts; XPENDING fails.
        for queue in queues:
            await redis_conn.xgroup_destroy(f"{prefix}:{queue}", GROUP)
        assert await agree("consumer groups gone") == 5
        with pytest.raises(TriggerError, match="NOGROUP"):
            await keda_redis_value(redis_conn, pending_trigger)

        doomed = await brokers.worker(2, consume_queues=("default",))
        _older, newer = await fetch_n(doomed, 2)  # held: fetched, not acknowledged
        assert await agree("a worker holds 2") == 5

        await newer.ack()  # finished out of order: Redis's lag becomes NULL
        assert await keda_redis_value(redis_conn, lag_trigger) == keda_model.NULL_LAG
        assert await agree("tasks finished out of order") == 4
        lag_plus_pending = await keda_redis_value(redis_conn, lag_trigger) + await keda_redis_value(
            redis_conn, pending_trigger
        )
        [default] = await inspect_queues(client, ["default"])
        assert (lag_plus_pending, default.backlog) == (0, 3)  # lag + pending would scale to 0

        await crash_redis(doomed)  # SIGKILL-like: its held entry stays pending, unrenewed
        assert await agree("its worker crashed") == 4

        survivor = await brokers.worker(10)

        async def reclaimed() -> bool:
            [stats] = await inspect_queues(client, ["default"])
            return stats.in_flight == 0

        await wait_until(reclaimed, timeout=LEASE_S + 15, what="the crashed worker's entry back")
        assert await agree("after the crashed worker's lease expired") == 4
        for delivery in await fetch_n(survivor, 4):
            await delivery.ack()
        assert await agree("all done") == 0
    finally:
        await brokers.close()


# -- RabbitMQ ------------------------------------------------------------------------
@pytest.mark.rabbitmq
async def test_rabbitmq_scaler_reads_the_backlog(
    rabbitmq_node: PrivateRabbit,  # noqa: F811 - the fixture imported above
    prefix: str,
) -> None:
    node = rabbitmq_node
    spec, settings = overlay("rabbitmq")
    queues = list(settings.worker_queues)
    triggers = [
        {
            **t,
            "metadata": {
                **t["metadata"],
                "queueName": f"{prefix}.{queue_of(t, settings.key_prefix)}",
            },
        }
        for t in spec["triggers"]
    ]
    formula = spec["advanced"]["scalingModifiers"]["formula"]
    brokers = Brokers(
        lambda **o: AmqpBroker(
            node.amqp_url,
            TransportOptions(
                queues=tuple(settings.queues),
                key_prefix=prefix,
                management_url=node.management_url,
                **o,
            ),
        )
    )

    def keda_rabbitmq_value(metadata: dict[str, str]) -> int:
        """GET {host}/api/queues/{vhost}/{queue} (vhost `/` from the host URL's path)."""
        info = node.api(f"/api/queues/%2F/{quote(metadata['queueName'], safe='')}")
        assert isinstance(info, dict)
        # KEDA decodes into a struct: a field the API leaves out (a new queue's statistics
        # are not collected yet) reads 0.
        ready, unacked = info.get("messages_ready", 0), info.get("messages_unacknowledged", 0)
        model = keda_model.rabbitmq_metric(metadata, keda_model.QueueState(ready, unacked))
        assert int(info.get("messages", 0)) == model, info  # the model's sum is RabbitMQ's
        return int(info.get("messages", 0))

    async def settled(expected: int, unacked_at_least: int = 0) -> bool:
        values = {t["name"]: keda_rabbitmq_value(t["metadata"]) for t in triggers}
        stats = await inspect_queues(client, queues)
        unacked = sum(s.in_flight or 0 for s in stats)
        return (
            keda_model.evaluate(formula, values) == sum(s.backlog for s in stats) == expected
            and unacked >= unacked_at_least
        )

    async def agree(what: str, expected: int, unacked_at_least: int = 0) -> None:
        # Management statistics refresh every 0.5 s on this node (5 s by default).
        await wait_until(
            lambda: settled(expected, unacked_at_least),
            timeout=20,
            what=f"{what}: KEDA's value = backlog = {expected}",
        )

    try:
        client = brokers.client()
        for queue, count in (("default", 3), ("emails", 2)):
            for _ in range(count):
                await client.kick(message(queue))
        await agree("before consumption", 5)

        doomed = await brokers.worker(2)
        await fetch_n(doomed, 2)  # held: delivered, unacknowledged
        await agree("a worker holds 2", 5, unacked_at_least=2)

        await crash_amqp(doomed)  # its connection dies: RabbitMQ requeues
        await agree("its worker crashed", 5)

        survivor = await brokers.worker(10)
        for delivery in await fetch_n(survivor, 5):
            await delivery.ack()
        await agree("all done", 0)
    finally:
        await brokers.close()
        delays = {n for b in brokers.built for n in b.delay_queues.names}  # type: ignore[attr-defined]
        await delete_amqp_queues(node.amqp_url, prefix, queues, also=sorted(delays))
