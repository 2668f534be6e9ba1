"""The RabbitMQ transport against the real server: routing, settlement, redelivery, drain."""

from __future__ import annotations

import asyncio
import logging
import time
import traceback
import uuid
from collections.abc import Awaitable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aio_pika
import pytest
from aio_pika.abc import AbstractChannel
from taskiq.message import BrokerMessage

import asyncjobs.brokers.rabbitmq.broker as amqp
from asyncjobs.brokers.base import Delivery, TransportOptions
from asyncjobs.brokers.dead_letters import DeadLetter, Reason
from asyncjobs.brokers.errors import (
    BrokerConnectionError,
    BrokerError,
    SendOutcomeUnknownError,
    UnknownQueueError,
)
from asyncjobs.brokers.rabbitmq.broker import AmqpBroker, dead_letter_queue_name
from asyncjobs.brokers.rabbitmq.names import CLOSE_TIMEOUT_S
from asyncjobs.brokers.transport import host_port
from tests.brokers.conftest import MakeBroker
from tests.support.helpers import wait_until

pytestmark = pytest.mark.rabbitmq

WAIT_S = 10.0


def message(body: bytes = b"payload", queue: str | None = None) -> BrokerMessage:
    labels = {"queue_name": queue} if queue else {}
    return BrokerMessage(
        task_id=uuid.uuid4().hex, task_name="tests:task", message=body, labels=labels
    )


async def fetch_exactly(broker: AmqpBroker, count: int) -> list[Delivery]:
    deliveries: list[Delivery] = []
    deadline = time.monotonic() + WAIT_S
    while len(deliveries) < count and time.monotonic() < deadline:
        deliveries += await broker.fetch(count - len(deliveries), timeout_s=WAIT_S)
    assert len(deliveries) == count
    return deliveries


async def ready(broker: AmqpBroker, queue: str = "default") -> int:
    return (await broker.queue_depths())[queue][0]


async def test_publish_fetch_ack_removes_the_message(make_broker: MakeBroker) -> None:
    web = await make_broker(worker=False)
    worker = await make_broker(capacity=4)
    sent = message(b'{"x": 1}')
    await web.kick(sent)

    [delivery] = await fetch_exactly(worker, 1)
    assert (delivery.data, delivery.queue, delivery.delivery_count) == (sent.message, "default", 1)
    assert isinstance(delivery, amqp.AmqpDelivery)
    assert delivery.message.headers["task_id"] == sent.task_id
    await delivery.ack()
    await worker.shutdown()  # an unacked message would be ready again now

    assert await web.queue_depths() == {"default": (0, 0), "emails": (0, 0)}


async def test_routes_by_queue_label_to_a_queue_published_before_any_consumer(
    make_broker: MakeBroker,
) -> None:
    web = await make_broker(worker=False)
    await web.kick(message(b"mail", queue="emails"))
    assert await web.queue_depths() == {"default": (0, 0), "emails": (1, 0)}
    with pytest.raises(UnknownQueueError):
        await web.kick(message(queue="nope"))

    worker = await make_broker(capacity=1)
    [delivery] = await fetch_exactly(worker, 1)
    assert (delivery.data, delivery.queue) == (b"mail", "emails")
    await delivery.ack()
    assert await worker.queue_depths() == {"default": (0, 1), "emails": (0, 1)}


async def test_a_send_from_another_loop_goes_through_this_loops_connection(
    make_broker: MakeBroker,
) -> None:
    """A send from another event loop (runserver's per-request loops, ``asyncio.run`` in
    a thread) runs in the loop the client lives in: aio-pika's channel is never used from
    a loop that did not open it (it fails there with "Event loop is closed")."""
    web = await make_broker(worker=False)
    await web.kick(message(b"here"))
    connection = web.write_conn

    await asyncio.to_thread(asyncio.run, web.kick(message(b"from another loop")))
    assert web.write_conn is connection
    assert await ready(web) == 2


async def test_unroutable_publish_raises(make_broker: MakeBroker) -> None:
    web = await make_broker(worker=False)
    with pytest.raises(BrokerError, match="could not route"):
        await web.send(web.exchange_name, "not-bound", b"x", {})


async def test_dead_letter_stores_a_record_then_removes_the_original(
    make_broker: MakeBroker, admin: AbstractChannel, prefix: str
) -> None:
    worker = await make_broker(capacity=1)
    sent = message(b"not a taskiq message")
    await worker.kick(sent)
    [delivery] = await fetch_exactly(worker, 1)

    record = DeadLetter(
        body=delivery.data, queue=delivery.queue, reason=Reason.UNDECODABLE, task_id=sent.task_id
    )
    await delivery.dead_letter(record)
    dead = await (await admin.get_queue(dead_letter_queue_name(prefix, "default"))).get(
        no_ack=True, timeout=WAIT_S
    )
    assert dead is not None
    assert DeadLetter.from_json(dead.body).body == sent.message
    assert (dead.headers["reason"], dead.headers["task_id"]) == ("undecodable", sent.task_id)
    assert dead.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
    await worker.shutdown()
    assert await ready(await make_broker(worker=False)) == 0


async def test_hand_back_goes_to_another_worker_at_once(make_broker: MakeBroker) -> None:
    first = await make_broker(capacity=1)
    await first.kick(message(b"drained"))
    [delivery] = await fetch_exactly(first, 1)
    await first.stop_consuming()  # drain: no new deliveries, then hand back what is held

    second = await make_broker(capacity=1)
    await delivery.hand_back()
    [again] = await fetch_exactly(second, 1)
    assert (again.data, again.delivery_count) == (b"drained", 2)
    await again.ack()


async def test_unacked_delivery_returns_when_the_consumer_connection_dies(
    make_broker: MakeBroker,
) -> None:
    crashed = await make_broker(capacity=1)
    await crashed.kick(message(b"crash"))
    [delivery] = await fetch_exactly(crashed, 1)
    assert delivery.delivery_count == 1
    assert crashed.read_conn is not None
    await crashed.read_conn.close()  # no ack, no hand-back: as if the process died

    survivor = await make_broker(capacity=1)
    [redelivered] = await fetch_exactly(survivor, 1)
    assert (redelivered.data, redelivered.delivery_count) == (b"crash", 2)
    await redelivered.ack()


async def test_fetch_honours_prefetch_and_max_messages(make_broker: MakeBroker) -> None:
    worker = await make_broker(capacity=2)
    for i in range(5):
        await worker.kick(message(b"m%d" % i))

    held = await fetch_exactly(worker, 2)
    await wait_until(lambda: _equals(ready(worker), 3), what="3 ready messages")
    assert await worker.fetch(10, timeout_s=0.3) == []  # prefetch 2: nothing more arrives
    await held[0].ack()
    held[1:] += await fetch_exactly(worker, 1)

    await worker.set_capacity(10)  # re-subscribes with the larger prefetch
    await wait_until(lambda: _equals(ready(worker), 0), what="everything prefetched")
    assert len(await worker.fetch(1, timeout_s=WAIT_S)) == 1
    assert len(await worker.fetch(10, timeout_s=WAIT_S)) == 1
    for delivery in held[1:]:
        await delivery.ack()


async def test_cancelled_fetch_loses_nothing(make_broker: MakeBroker) -> None:
    worker = await make_broker(capacity=1)
    waiting = asyncio.create_task(worker.fetch(1, timeout_s=WAIT_S * 3))
    await wait_until(lambda: _equals(_consumers(worker), 2), what="consumers")
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    await worker.kick(message(b"kept"))
    [delivery] = await fetch_exactly(worker, 1)
    assert delivery.data == b"kept"
    await delivery.ack()


async def test_disconnect_hands_back_prefetched_and_held_messages(make_broker: MakeBroker) -> None:
    leaving = await make_broker(capacity=3)
    for i in range(3):
        await leaving.kick(message(b"m%d" % i))
    [held] = await fetch_exactly(leaving, 1)  # handed out, never settled; two prefetched
    await wait_until(lambda: _equals(ready(leaving), 0), what="all prefetched")
    await leaving.shutdown()

    staying = await make_broker(capacity=3)
    deliveries = await fetch_exactly(staying, 3)
    assert sorted(d.data for d in deliveries) == [b"m0", b"m1", b"m2"]
    # The prefetched two were never started: given back uncounted. The held one came back
    # when the channel closed unsettled: counted, and a crash suspect.
    counts = {d.data: (d.delivery_count, d.suspect) for d in deliveries}
    assert counts.pop(held.data) == (2, True)
    assert set(counts.values()) == {(1, False)}


async def test_republish_replaces_the_delivery(make_broker: MakeBroker) -> None:
    worker = await make_broker(capacity=1)
    sent = message(b"attempt 1")
    await worker.kick(sent)
    [delivery] = await fetch_exactly(worker, 1)
    await delivery.republish(b"attempt 2")
    [retry] = await fetch_exactly(worker, 1)
    assert (retry.data, retry.delivery_count) == (b"attempt 2", 1)
    assert isinstance(retry, amqp.AmqpDelivery)
    assert retry.message.headers["task_id"] == sent.task_id
    await retry.ack()


async def test_settling_after_a_reconnect_does_not_raise(
    make_broker: MakeBroker, caplog: pytest.LogCaptureFixture
) -> None:
    """Regression: taskiq-aio-pika crashes acking a message of a channel lost in a reconnect."""
    worker = await make_broker(capacity=2)
    await worker.kick(message(b"survives"))
    await worker.kick(message(b"prefetched"))
    [stale] = await fetch_exactly(worker, 1)  # handed out; the other waits in the inbox
    await wait_until(lambda: _equals(ready(worker), 0), what="both prefetched")
    assert worker.read_conn is not None
    assert worker.read_conn.transport is not None
    await worker.read_conn.transport.connection.close(ConnectionResetError("network blip"))

    # The robust connection comes back, consumes again, and RabbitMQ redelivers both;
    # the stale prefetched copy is never handed out (it would run twice).
    fresh = await fetch_exactly(worker, 2)
    assert sorted((d.data, d.delivery_count) for d in fresh) == [
        (b"prefetched", 2),
        (b"survives", 2),
    ]
    with caplog.at_level(logging.WARNING, logger="asyncjobs.broker"):
        await stale.ack()
    assert "channel closed" in caplog.text
    assert "survives" not in caplog.text  # no payload in logs
    for delivery in fresh:
        await delivery.ack()
    await worker.shutdown()
    assert await ready(await make_broker(worker=False)) == 0


async def test_an_outage_neither_crashes_nor_hangs_the_worker(
    make_broker: MakeBroker, amqp_url: str, free_port: int
) -> None:
    outage = Outage(host_port(amqp_url), free_port)
    await outage.start()
    worker = await make_broker(capacity=1, url=outage.url(amqp_url), publish_timeout_s=0.5)
    await worker.kick(message(b"held"))
    [held] = await fetch_exactly(worker, 1)

    await outage.cut()  # RabbitMQ "dies": every reconnect attempt is refused
    with pytest.raises(SendOutcomeUnknownError, match="may have been delivered"):
        await worker.kick(message(b"unconfirmed"))  # written, and the connection died
    assert await worker.fetch(1, timeout_s=0.2) == []
    await held.ack()  # too late: logged, not raised
    async with asyncio.timeout(3 * CLOSE_TIMEOUT_S):  # a drain must never hang
        await worker.shutdown()

    assert await ready(await make_broker(worker=False)) == 1  # "held" was requeued


async def test_startup_can_be_retried_once_rabbitmq_is_reachable(
    amqp_url: str, free_port: int, amqp_options: TransportOptions, admin: AbstractChannel
) -> None:
    outage = Outage(host_port(amqp_url), free_port)  # not listening yet
    broker = AmqpBroker(outage.url(amqp_url), amqp_options)
    broker.is_worker_process = broker.receiver_attached = True
    try:
        with pytest.raises(BrokerConnectionError):
            await broker.startup()
        await outage.start()
        await broker.startup()
        await broker.kick(message(b"after retry"))
        [delivery] = await fetch_exactly(broker, 1)
        await delivery.ack()
    finally:
        await broker.shutdown()
        await outage.cut()


@pytest.mark.parametrize(
    "url",
    [
        "amqp://guest:s3cretpw@127.0.0.1:5672/",
        "amqp://guest:s3cretpw@127.0.0.1:1/",
        "amqp://guest:s3cretpw@127.0.0.1:56x72/",
    ],
    ids=["wrong-password", "refused", "bad-port"],
)
@pytest.mark.parametrize("worker", [False, True], ids=["web", "worker"])
async def test_connection_errors_never_show_the_password(
    make_broker: MakeBroker, caplog: pytest.LogCaptureFixture, url: str, worker: bool
) -> None:
    caplog.set_level(logging.DEBUG)
    with pytest.raises(BrokerConnectionError) as info:
        await make_broker(worker=worker, url=url)

    shown = [
        str(info.value),
        repr(info.value),
        "".join(traceback.format_exception(info.value)),
        caplog.text,
        *(_record_text(record) for record in caplog.records),
    ]
    assert not [text for text in shown if "s3cretpw" in text]
    assert "guest:***@127.0.0.1" in str(info.value)


async def test_a_library_error_quoting_the_url_is_redacted(
    make_broker: MakeBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = "amqp://guest:s3cret%2Fpw@127.0.0.1:5672/"

    async def leaky_connect(url: str, **kwargs: Any) -> None:
        raise ConnectionRefusedError(f"cannot reach {url} (password s3cret/pw)")

    monkeypatch.setattr(amqp, "connect_robust", leaky_connect)
    with pytest.raises(BrokerConnectionError) as info:
        await make_broker(worker=False, url=url)
    shown = "".join(traceback.format_exception(info.value))
    assert "s3cret" not in shown
    assert "ConnectionRefusedError" in shown


def _record_text(record: logging.LogRecord) -> str:
    exc = "".join(traceback.format_exception(*record.exc_info)) if record.exc_info else ""
    return f"{record.getMessage()} {record.args!r} {exc}"


async def _equals(value: Awaitable[int], expected: int) -> bool:
    return await value == expected


async def _consumers(broker: AmqpBroker) -> int:
    return sum(consumers for _, consumers in (await broker.queue_depths()).values())


class Outage:
    """A TCP proxy to RabbitMQ on a free port; ``cut`` makes the server unreachable."""

    def __init__(self, target: tuple[str, int], port: int) -> None:
        self._target = target
        self._port = port
        self._writers: list[asyncio.StreamWriter] = []
        self._server: asyncio.Server | None = None

    def url(self, amqp_url: str) -> str:
        parts = urlsplit(amqp_url)
        credentials = parts.netloc.rsplit("@", 1)[0]
        return urlunsplit(parts._replace(netloc=f"{credentials}@127.0.0.1:{self._port}"))

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self._port)

    async def cut(self) -> None:
        if self._server is None:
            return
        self._server.close()
        for writer in self._writers:
            writer.transport.abort()
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection(*self._target)
        self._writers += [writer, upstream_writer]
        await asyncio.gather(
            _pipe(reader, upstream_writer), _pipe(upstream_reader, writer), return_exceptions=True
        )


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    finally:
        writer.transport.abort()


# -- merged acknowledgements (asyncjobs/brokers/rabbitmq/acks.py) -----------------------------
async def test_acks_of_one_step_go_out_as_one_multiple_ack(make_broker: MakeBroker) -> None:
    web = await make_broker(worker=False)
    worker = await make_broker(capacity=50)
    for i in range(50):
        await web.kick(message(b"%d" % i))
    deliveries = await fetch_exactly(worker, 50)
    await asyncio.gather(*(d.ack() for d in deliveries))

    assert worker.acks.frames_sent <= 3  # 50 acks, not 50 frames
    await worker.shutdown()  # anything left unacknowledged would be ready again now
    assert await web.queue_depths() == {"default": (0, 0), "emails": (0, 0)}


async def test_a_merged_ack_never_covers_a_message_still_running(
    make_broker: MakeBroker,
) -> None:
    web = await make_broker(worker=False)
    worker = await make_broker(capacity=3)
    for body in (b"first", b"running", b"third"):
        await web.kick(message(body))
    first, running, third = await fetch_exactly(worker, 3)
    assert running.data == b"running"

    await asyncio.gather(first.ack(), third.ack())  # the one in between is not finished
    await worker.shutdown()  # its unacknowledged delivery is requeued

    again = await make_broker(capacity=3)
    [redelivered] = await fetch_exactly(again, 1)
    assert redelivered.data == b"running"
    assert await again.fetch(3, timeout_s=1.0) == []  # the acked ones are gone for good
    await redelivered.ack()
