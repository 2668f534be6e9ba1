"""Delayed delivery, part of the transport contract (Redis Streams, RabbitMQ).

A message published for later (``publish_at``, ``kick`` with a ``delay`` or ``eta``
label, or a scheduled retry ``Delivery.retry_at``) is never fetched before its time and
is fetched soon after, in the queue it was meant for, also when the worker that scheduled
it died in between.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from asyncjobs.brokers.base import ReliableBroker
from asyncjobs.brokers.envelope import MAX_DELAY_S, due_of
from asyncjobs.brokers.errors import ConfigurationError
from asyncjobs.brokers.rabbitmq.delay import delay_bucket_ms, delay_queue_name
from example.processes import delete_amqp_queues
from tests.brokers.test_contract import Transport, fetch_one, message, transport

__all__ = ["transport"]  # the parametrised fixture, shared with the contract suite

LATE_S = 1.0  # the contract: fetched within this long after it is due


@pytest.fixture
async def delayed(transport: Transport) -> AsyncIterator[Transport]:
    """The contract's transport; also removes the RabbitMQ delay queues a test created."""
    yield transport
    if transport.name != "rabbitmq":
        return  # Redis: the delayed sets live under the prefix, removed with the rest
    names = {n for b in transport.brokers for n in b.delay_queues.names}  # type: ignore[attr-defined]
    await delete_amqp_queues(transport.url, transport.options.key_prefix, (), also=names)


async def arrival(broker: ReliableBroker, timeout: float = 10.0) -> tuple[float, bytes, str]:
    """(wall time it was fetched, body, queue) of the next delivery, acked."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for delivery in await broker.fetch(1, 0.05):
            now = time.time()
            await delivery.ack()
            return now, delivery.data, delivery.queue
    raise AssertionError("no delivery arrived")


def on_time(arrived: float, due: float) -> None:
    assert arrived >= due - 0.01, f"fetched {due - arrived:.3f} s before it was due"
    assert arrived <= due + LATE_S, f"fetched {arrived - due:.3f} s after it was due"


async def test_publish_at_is_not_fetched_before_its_time(delayed: Transport) -> None:
    client, worker = delayed.broker(), await delayed.worker()
    await client.startup()  # this loop holds the client: the test calls its internals
    due = time.time() + 2.0
    await client.publish_at("default", message(b"later"), due)
    arrived, body, queue = await arrival(worker)
    on_time(arrived, due)
    assert (body, queue) == (b"later", "default")


async def test_kick_honours_the_delay_label(delayed: Transport) -> None:
    client, worker = delayed.broker(), await delayed.worker()
    msg = message(b"kicked")
    msg.labels["delay"] = 2
    due = time.time() + 2.0
    await client.kick(msg)
    arrived, body, _ = await arrival(worker)
    on_time(arrived, due)
    assert body == b"kicked"


async def test_kick_honours_an_iso_eta_label(delayed: Transport) -> None:
    client, worker = delayed.broker(), await delayed.worker()
    eta = datetime.now(UTC) + timedelta(seconds=1.5)
    msg = message(b"eta", queue="other")
    msg.labels["eta"] = eta.isoformat()
    await client.kick(msg)
    arrived, body, queue = await arrival(worker)
    on_time(arrived, eta.timestamp())
    assert (body, queue) == (b"eta", "other")


async def test_a_past_due_time_delivers_at_once(delayed: Transport) -> None:
    client, worker = delayed.broker(), await delayed.worker()
    msg = message(b"now")
    msg.labels["eta"] = time.time() - 60
    await client.kick(msg)
    assert (await fetch_one(worker, timeout=1.0)).data == b"now"


async def test_delayed_messages_go_to_their_own_queue(delayed: Transport) -> None:
    client, worker = delayed.broker(), await delayed.worker()
    await client.startup()  # this loop holds the client: the test calls its internals
    due = time.time() + 1.0
    await client.publish_at("default", message(b"to-default"), due)
    await client.publish_at("other", message(b"to-other"), due)
    await client.publish_at("other", message(b"to-other-later"), due + 0.5)
    got = {(await arrival(worker))[1:] for _ in range(3)}
    assert got == {
        (b"to-default", "default"),
        (b"to-other", "other"),
        (b"to-other-later", "other"),
    }


async def test_only_a_worker_of_that_queue_receives_it(delayed: Transport) -> None:
    client = delayed.broker()
    await client.startup()  # this loop holds the client: the test calls its internals
    only_other = Transport(
        delayed.name,
        delayed.url,
        delayed.options.__class__(
            queues=delayed.options.queues,
            key_prefix=delayed.options.key_prefix,
            lease_timeout_s=delayed.options.lease_timeout_s,
            consume_queues=("other",),
        ),
        delayed.crash,
        delayed.brokers,
    )
    worker = await only_other.worker(name="other-only")
    due = time.time() + 0.5
    await client.publish_at("default", message(b"not-mine"), due)
    await client.publish_at("other", message(b"mine"), due)
    _, body, queue = await arrival(worker)
    assert (body, queue) == (b"mine", "other")
    assert await worker.fetch(10, 1.0) == []
    everyone = await delayed.worker(name="everyone")
    _, body, queue = await arrival(everyone)
    assert (body, queue) == (b"not-mine", "default")


async def test_retry_at_replaces_the_delivery_with_a_later_one(delayed: Transport) -> None:
    client, worker = delayed.broker(), await delayed.worker()
    await client.kick(message(b"attempt-1"))
    delivery = await fetch_one(worker)
    due = time.time() + 1.5
    await delivery.retry_at(b"attempt-2", due)
    began = time.time()
    assert await worker.fetch(10, 0.5) == []  # the original is gone, the retry not yet due
    assert time.time() - began >= 0.4
    again = await fetch_one(worker, timeout=5.0)
    on_time(time.time(), due)
    assert (again.data, again.delivery_count, again.queue) == (b"attempt-2", 1, "default")
    await again.ack()


async def test_retry_at_a_past_time_is_delivered_at_once(delayed: Transport) -> None:
    client, worker = delayed.broker(), await delayed.worker()
    await client.kick(message(b"attempt-1"))
    await (await fetch_one(worker)).retry_at(b"attempt-2", time.time() - 1)
    again = await fetch_one(worker, timeout=1.0)
    assert (again.data, again.delivery_count) == (b"attempt-2", 1)
    await again.ack()


async def test_a_scheduled_retry_survives_the_worker_that_scheduled_it(
    delayed: Transport,
) -> None:
    client, doomed = delayed.broker(), await delayed.worker(name="doomed")
    await client.kick(message(b"try-1", queue="other"))
    delivery = await fetch_one(doomed)
    due = time.time() + 1.5
    await delivery.retry_at(b"try-2", due)
    await delayed.crash(doomed)  # dies during the backoff window
    survivor = await delayed.worker(name="survivor")
    arrived, body, queue = await arrival(survivor)
    on_time(arrived, due)
    assert (body, queue) == (b"try-2", "other")
    assert await survivor.fetch(10, 0.5) == []  # once


async def test_racing_workers_deliver_each_delayed_message_once(delayed: Transport) -> None:
    client = delayed.broker()
    workers = [await delayed.worker(name=f"w{i}") for i in range(3)]
    await client.startup()  # this loop holds the client: the test calls its internals
    due = time.time() + 0.5
    bodies = {f"m{i}-{uuid.uuid4().hex[:6]}".encode() for i in range(60)}
    await asyncio.gather(*(client.publish_at("default", message(b), due) for b in bodies))
    received: list[bytes] = []

    async def drain(worker: ReliableBroker) -> None:
        deadline = time.monotonic() + 8.0
        while time.monotonic() < deadline and len(received) < len(bodies):
            for delivery in await worker.fetch(10, 0.2):
                received.append(delivery.data)
                await delivery.ack()

    await asyncio.gather(*(drain(w) for w in workers))
    for worker in workers:
        assert await worker.fetch(10, 0.3) == []
    assert sorted(received) == sorted(bodies)


# -- pure helpers ----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("delay_s", "bucket"),
    [
        (0.001, 100),
        (0.05, 100),
        (0.1, 100),
        (0.101, 200),
        (2.0, 2000),
        (2.345, 2400),
        (23.456, 24000),
        (234.5, 240000),
        (10.001, 11000),
    ],
)
def test_delay_buckets_round_up_to_two_significant_digits(delay_s: float, bucket: int) -> None:
    assert delay_bucket_ms(delay_s) == bucket
    assert delay_queue_name("p", "emails", bucket) == f"p.emails.delay.{bucket}"


def test_due_of_reads_delay_and_eta_labels() -> None:
    assert due_of({}) is None
    assert due_of({"delay": ""}) is None
    now = time.time()
    assert abs((due_of({"delay": "2.5"}) or 0) - (now + 2.5)) < 0.1
    soon = int(now) + 86_400
    assert due_of({"eta": soon}) == soon
    day = (datetime.now(UTC) + timedelta(days=30)).replace(microsecond=0, tzinfo=None)
    assert due_of({"eta": day.isoformat()}) == day.replace(tzinfo=UTC).timestamp()
    assert (
        due_of({"eta": (day + timedelta(hours=1)).isoformat() + "+01:00"})
        == day.replace(tzinfo=UTC).timestamp()
    )
    assert due_of({"delay": 1, "eta": soon}) == soon  # the later wins
    with pytest.raises(ConfigurationError, match="label 'delay' must be a number of seconds"):
        due_of({"delay": "soon"})
    with pytest.raises(ConfigurationError, match="label 'eta' must be unix seconds or an ISO"):
        due_of({"eta": "tomorrow"})
    # At once: a negative delay, a past eta.
    assert (due_of({"delay": -5}) or 0) < now and due_of({"eta": "2001-01-01T00:00:00"})


@pytest.mark.parametrize(
    "labels",
    [
        {"delay": 1e300},
        {"delay": 10**400},  # too large for a float
        {"delay": "inf"},
        {"delay": "nan"},
        {"delay": "-inf"},
        {"delay": MAX_DELAY_S + 60},
        {"eta": 1e20},
        {"eta": "9999-12-31T23:59:59"},
        {"eta": "9999-12-31T23:59:59-05:00"},  # past the last datetime in UTC
        {"eta": float("nan")},
        {"delay": 1, "eta": time.time() + MAX_DELAY_S + 86_400},
    ],
    ids=repr,
)
def test_due_of_refuses_what_would_park_a_message_for_good(labels: dict[str, object]) -> None:
    with pytest.raises(ConfigurationError) as raised:
        due_of(labels)
    message = str(raised.value)
    assert f"{MAX_DELAY_S // 86_400} days" in message and "MAX_DELAY_S" in message
    assert any(f"label {name!r}" in message for name in labels)


def test_due_of_takes_delays_up_to_the_maximum() -> None:
    now = time.time()
    assert abs((due_of({"delay": MAX_DELAY_S - 60}) or 0) - (now + MAX_DELAY_S - 60)) < 1
    assert due_of({"eta": int(now) + MAX_DELAY_S - 60}) == int(now) + MAX_DELAY_S - 60
