"""The transport contract: every transport passes the same tests (Redis Streams, RabbitMQ,
memory).

A worker fetches at most what it can start, settles each delivery exactly once, and a
delivery that a crashed worker never settled comes back to another worker.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import orjson
import pytest
from taskiq.message import BrokerMessage

from asyncjobs.brokers.base import Delivery, ReliableBroker, TransportOptions
from asyncjobs.brokers.dead_letters import DeadLetter, Reason
from asyncjobs.brokers.errors import DeadLetterNotFoundError
from asyncjobs.brokers.locating import Located
from asyncjobs.brokers.memory.broker import MemoryBroker
from asyncjobs.brokers.memory.server import discard_server
from asyncjobs.brokers.transport import transport_for
from tests.conftest import require_server
from tests.support.helpers import wait_until

LEASE_S = 1.0  # Redis only: a crashed worker's entries come back after this


@dataclass
class Transport:
    name: str
    url: str
    options: TransportOptions
    crash: Callable[[ReliableBroker], Awaitable[None]]
    brokers: list[ReliableBroker] = field(default_factory=list)

    def broker(self) -> ReliableBroker:
        broker = transport_for(self.url).build_broker(self.url, self.options)
        self.brokers.append(broker)
        return broker

    async def worker(self, capacity: int = 10, name: str = "") -> ReliableBroker:
        broker = self.broker()
        broker.is_worker_process = True
        broker.receiver_attached = True
        if name and hasattr(broker, "consumer_name"):
            broker.consumer_name += f":{name}"  # two workers in one test process
        await broker.startup()
        await broker.set_capacity(capacity)
        return broker


async def crash_redis(broker: ReliableBroker) -> None:
    """Die like a SIGKILLed worker: no renewals, no hand-back, connections dropped."""
    await broker.leases.stop()  # type: ignore[attr-defined]
    await broker.delayed.stop()  # type: ignore[attr-defined]
    broker.forget_connections()
    broker.brokers_crashed = True  # type: ignore[attr-defined]


async def crash_amqp(broker: ReliableBroker) -> None:
    """Die like a SIGKILLed worker: its connection goes away with deliveries unsettled."""
    await asyncio.wait_for(broker.read_conn.close(), 5)  # type: ignore[attr-defined]
    broker.brokers_crashed = True  # type: ignore[attr-defined]


async def crash_memory(broker: ReliableBroker) -> None:
    """Die like a SIGKILLed worker: what it held comes back counted, as after a lease."""
    assert isinstance(broker, MemoryBroker)
    broker.crash()
    broker.brokers_crashed = True  # type: ignore[attr-defined]


@pytest.fixture(params=["redis", "rabbitmq", "memory"])
async def transport(request: pytest.FixtureRequest, prefix: str) -> AsyncIterator[Transport]:
    from tests.conftest import AMQP_URL, REDIS_URL

    options = TransportOptions(
        queues=("default", "other"), key_prefix=prefix, lease_timeout_s=LEASE_S, max_deliveries=5
    )
    if request.param == "redis":
        require_server(REDIS_URL, "Redis")
        t = Transport("redis", REDIS_URL, options, crash_redis)
    elif request.param == "rabbitmq":
        require_server(AMQP_URL, "RabbitMQ")
        t = Transport("rabbitmq", AMQP_URL, options, crash_amqp)
    else:
        t = Transport("memory", "memory://", options, crash_memory)
    yield t
    for broker in t.brokers:
        if broker.started and not getattr(broker, "brokers_crashed", False):
            await asyncio.wait_for(broker.shutdown(), 10)
    await _forget(t, prefix)


async def _forget(t: Transport, prefix: str) -> None:
    if t.name == "redis":
        from redis.asyncio import Redis

        conn = Redis.from_url(t.url)
        keys = [key async for key in conn.scan_iter(match=f"{prefix}*")]
        if keys:
            await conn.delete(*keys)
        await conn.aclose()
    elif t.name == "memory":
        discard_server(t.url, prefix)
    else:
        from example.processes import delete_amqp_queues

        await delete_amqp_queues(t.url, prefix, ("default", "other"))


def message(body: bytes, queue: str | None = None) -> BrokerMessage:
    labels = {"queue_name": queue} if queue else {}
    return BrokerMessage(task_id=uuid.uuid4().hex, task_name="t", message=body, labels=labels)


async def fetch_one(broker: ReliableBroker, timeout: float = 10.0) -> Delivery:
    async def probe() -> list[Delivery]:
        return list(await broker.fetch(1, 0.2))

    [delivery] = await wait_until(probe, timeout=timeout, what="a delivery")
    return delivery


async def test_delivers_and_forgets_what_was_acked(transport: Transport) -> None:
    client, worker = transport.broker(), await transport.worker()
    await client.kick(message(b"hello"))
    delivery = await fetch_one(worker)
    assert (delivery.data, delivery.queue, delivery.delivery_count) == (b"hello", "default", 1)
    await delivery.ack()
    other = await transport.worker(name="b")
    assert await other.fetch(10, 0.5) == []
    assert await worker.fetch(10, 0.5) == []


async def test_routes_to_the_named_queue(transport: Transport) -> None:
    client, worker = transport.broker(), await transport.worker()
    await client.kick(message(b"o", queue="other"))
    delivery = await fetch_one(worker)
    assert delivery.queue == "other"
    await delivery.ack()


async def test_a_crashed_workers_delivery_comes_back(transport: Transport) -> None:
    client, doomed = transport.broker(), await transport.worker(name="doomed")
    await client.kick(message(b"work"))
    await fetch_one(doomed)  # fetched, never settled
    await transport.crash(doomed)
    survivor = await transport.worker(name="survivor")
    again = await fetch_one(survivor, timeout=LEASE_S + 10)
    assert again.data == b"work"
    assert again.delivery_count == 2 and again.suspect  # may be what killed its worker
    await again.ack()


async def test_hand_back_is_immediate(transport: Transport) -> None:
    client = transport.broker()
    first, second = await transport.worker(name="a"), await transport.worker(name="b")
    await client.kick(message(b"x"))
    delivery = await fetch_one(first)
    assert await second.fetch(1, 0.1) == []  # consuming (RabbitMQ subscribes on first fetch)
    await first.stop_consuming()  # as a draining worker does before it hands back
    await delivery.hand_back()
    loop = asyncio.get_running_loop()
    began = loop.time()
    again = await fetch_one(second)
    assert loop.time() - began < LEASE_S  # not after a lease: at once
    assert again.data == b"x" and again.delivery_count == 2
    assert not again.suspect  # a live worker gave it back: it runs beside others
    await again.release()  # and stays no suspect when given back unstarted
    third = await fetch_one(second)
    assert (third.delivery_count, third.suspect) == (2, False)
    await third.ack()


async def test_a_crash_suspect_given_back_unstarted_stays_a_suspect(transport: Transport) -> None:
    client, doomed = transport.broker(), await transport.worker(name="doomed")
    await client.kick(message(b"work"))
    await fetch_one(doomed)
    await transport.crash(doomed)
    survivor = await transport.worker(name="survivor")
    await (await fetch_one(survivor, timeout=LEASE_S + 10)).release()
    again = await fetch_one(survivor)
    assert (again.delivery_count, again.suspect) == (2, True)
    await again.ack()


async def test_fetches_no_more_than_its_capacity(transport: Transport) -> None:
    client = transport.broker()
    for i in range(6):
        await client.kick(message(str(i).encode()))
    small = await transport.worker(capacity=2, name="small")
    got = list(await small.fetch(2, 1.0))
    assert len(got) == 2
    other = await transport.worker(name="other")

    async def rest() -> bool:
        taken = list(await other.fetch(10, 0.2))
        for delivery in taken:
            await delivery.ack()
        rest.count += len(taken)  # type: ignore[attr-defined]
        return rest.count >= 4  # type: ignore[attr-defined]

    rest.count = 0  # type: ignore[attr-defined]
    await wait_until(rest, what="the other worker to take the other four")
    for delivery in got:
        await delivery.ack()


async def test_release_gives_back_without_counting(transport: Transport) -> None:
    client, worker = transport.broker(), await transport.worker()
    await client.kick(message(b"x"))
    await (await fetch_one(worker)).release()  # fetched, never started
    again = await fetch_one(worker)
    assert (again.data, again.delivery_count) == (b"x", 1)
    await again.ack()


async def test_republish_replaces_the_delivery(transport: Transport) -> None:
    client, worker = transport.broker(), await transport.worker()
    await client.kick(message(b"v1"))
    await (await fetch_one(worker)).republish(b"v2")
    retry = await fetch_one(worker)
    assert (retry.data, retry.delivery_count) == (b"v2", 1)
    await retry.ack()


async def test_dead_letters_are_kept_listed_replayed_and_purged(transport: Transport) -> None:
    client, worker = transport.broker(), await transport.worker()
    for body in (b"one", b"two"):
        await client.kick(message(body))
        delivery = await fetch_one(worker)
        record = DeadLetter(
            body=delivery.data, queue="default", reason=Reason.REJECTED, task_name="t"
        )
        await delivery.dead_letter(record)
    assert await worker.dead_letter_count("default") == 2
    letters = await worker.dead_letters("default")
    assert [d.body for d in letters] == [b"one", b"two"]
    assert [d.id for d in await worker.dead_letters("default")] == [d.id for d in letters]
    await worker.replay_dead_letter("default", letters[0].id, b"one-again")
    replayed = await fetch_one(worker)
    assert (replayed.data, replayed.delivery_count) == (b"one-again", 1)
    await replayed.ack()
    with pytest.raises(DeadLetterNotFoundError):
        await worker.replay_dead_letter("default", letters[0].id, b"x")
    assert await worker.purge_dead_letters("default") == 1
    assert await worker.dead_letters("default") == []


async def dead_letter_each(transport: Transport, worker: ReliableBroker, *bodies: bytes) -> None:
    client = transport.broker()
    for body in bodies:
        await client.kick(message(body))
        delivery = await fetch_one(worker)
        await delivery.dead_letter(
            DeadLetter(body=delivery.data, queue="default", reason=Reason.REJECTED)
        )


async def test_a_dead_letter_snapshot_ends_where_it_started(transport: Transport) -> None:
    worker = await transport.worker()
    await dead_letter_each(transport, worker, b"one", b"two", b"three")
    pages = worker.dead_letter_snapshot("default", page_size=2)
    first = await anext(pages)
    await dead_letter_each(transport, worker, b"four")  # dead-lettered meanwhile
    rest = [page async for page in pages]
    assert [d.body for page in [first, *rest] for d in page] == [b"one", b"two", b"three"]
    # Redis pages through the stream; RabbitMQ lists the whole queue anyway: one page.
    sizes = [len(page) for page in [first, *rest]]
    assert sizes == ([2, 1] if transport.name == "redis" else [3])
    assert [page async for page in worker.dead_letter_snapshot("other")] == []


async def test_replaying_dead_letters_by_id_returns_the_ones_gone(transport: Transport) -> None:
    worker = await transport.worker()
    await dead_letter_each(transport, worker, b"one", b"two", b"three")
    one, two, three = await worker.dead_letters("default")
    await worker.delete_dead_letter("default", two.id)  # someone else, meanwhile
    bodies = {one.id: b"one-again", two.id: b"2", three.id: b"3", "0-1": b"x", "nope": b"x"}
    assert await worker.replay_dead_letters("default", bodies) == {two.id, "0-1", "nope"}
    replayed = [await fetch_one(worker), await fetch_one(worker)]
    assert sorted(d.data for d in replayed) == [b"3", b"one-again"]
    assert all(d.delivery_count == 1 for d in replayed)
    assert await worker.dead_letter_count("default") == 0
    for delivery in replayed:
        await delivery.ack()


async def test_dead_letters_are_read_by_id_and_in_pages_newest_first(transport: Transport) -> None:
    worker = await transport.worker()
    await dead_letter_each(transport, worker, b"one", b"two", b"three", b"four")
    ids = [d.id for d in await worker.dead_letters("default")]  # oldest first
    found = await worker.dead_letter("default", ids[1])
    assert found is not None and (found.id, found.body) == (ids[1], b"two")
    assert await worker.dead_letter("default", "0-1") is None
    assert await worker.dead_letter("default", "no such id") is None
    newest = await worker.dead_letters_before("default", None, 2)
    assert [d.body for d in newest] == [b"four", b"three"]
    older = await worker.dead_letters_before("default", newest[-1].id, 5)
    assert [d.body for d in older] == [b"two", b"one"]
    assert await worker.dead_letters_before("default", ids[0], 5) == []
    assert await worker.dead_letters_before("other", None, 5) == []


async def test_a_delivery_is_settled_only_once(transport: Transport) -> None:
    client, worker = transport.broker(), await transport.worker()
    await client.kick(message(b"x"))
    delivery = await fetch_one(worker)
    await delivery.ack()
    await delivery.hand_back()  # ignored
    await delivery.dead_letter(DeadLetter(body=b"x", queue="default", reason=Reason.REJECTED))
    assert await worker.fetch(10, 0.5) == []
    assert await worker.dead_letter_count("default") == 0


class UnwritableRecord(DeadLetter):
    """A record that cannot be encoded (``to_json`` itself never fails any more: this
    stands for whatever fails before the transport is reached)."""

    def to_json(self) -> bytes:
        raise TypeError("Integer exceeds 64-bit range")


async def test_a_settlement_that_failed_leaves_the_delivery_open(transport: Transport) -> None:
    client, worker = transport.broker(), await transport.worker()
    await client.kick(message(b"x"))
    delivery = await fetch_one(worker)
    record = UnwritableRecord(body=b"x", queue="default", reason=Reason.REJECTED)
    with pytest.raises(TypeError, match="Integer exceeds 64-bit range"):
        await delivery.dead_letter(record)
    assert not delivery.settled and not delivery.closed  # still the worker's: hand it back
    await delivery.hand_back()
    assert delivery.settled
    again = await fetch_one(worker)
    assert (again.data, again.delivery_count, again.suspect) == (b"x", 2, False)
    await again.ack()
    assert await worker.dead_letter_count("default") == 0


async def test_a_delivery_given_up_on_comes_back_after_its_lease(transport: Transport) -> None:
    """A delivery the worker could neither settle nor hand back is abandoned: no longer
    renewed, it returns like a crashed worker's (RabbitMQ: when the channel closes)."""
    client, worker = transport.broker(), await transport.worker()
    await client.kick(message(b"x"))
    delivery = await fetch_one(worker)
    delivery.abandon()
    assert delivery.closed and not delivery.settled
    if transport.name == "rabbitmq":
        await transport.crash(worker)
    other = await transport.worker(name="other")
    again = await fetch_one(other, timeout=LEASE_S + 10)
    assert (again.data, again.delivery_count) == (b"x", 2)
    await again.ack()


def task_message(task_id: str, labels: dict[str, object] | None = None) -> BrokerMessage:
    body = {"task_id": task_id, "task_name": "t", "labels": labels or {}, "args": [], "kwargs": {}}
    return BrokerMessage(
        task_id=task_id, task_name="t", message=orjson.dumps(body), labels=labels or {}
    )


async def locate(broker: ReliableBroker, queue: str, task_id: str) -> Located | None:
    """As the kernel calls it: in the loop the client lives in (its connections')."""
    return await broker.home.run(broker.locate(queue, task_id))


async def test_locate_tells_waiting_scheduled_and_running(transport: Transport) -> None:
    client = transport.broker()
    ids = {name: f"{name}-{uuid.uuid4().hex}" for name in ("waiting", "running", "later")}
    await client.kick(task_message(ids["running"]))
    await client.kick(task_message(ids["waiting"]))
    if not client.capabilities.locates:  # RabbitMQ: cannot look without taking
        assert await locate(client, "default", ids["waiting"]) is None
        return
    await client.kick(task_message(ids["later"], {"delay": 600}))
    worker = await transport.worker(capacity=1)
    delivery = await fetch_one(worker)  # the oldest: "running"
    located = {name: await locate(client, "default", task_id) for name, task_id in ids.items()}
    assert {name: found and found.state for name, found in located.items()} == {
        "waiting": "waiting", "running": "running", "later": "scheduled"
    }  # fmt: skip
    assert (
        located["later"] is not None
        and orjson.loads(located["later"].body)["task_id"] == ids["later"]
    )
    # Not there: another queue, an id that is a prefix of one that is, an acked one.
    assert await locate(client, "other", ids["waiting"]) is None
    assert await locate(client, "default", ids["waiting"][:-1]) is None
    await delivery.ack()
    assert await locate(client, "default", ids["running"]) is None
