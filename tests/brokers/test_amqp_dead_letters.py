"""The RabbitMQ dead-letter store against the real server: list, count, replay, delete,
purge, and the raw messages RabbitMQ's own ``x-delivery-limit`` backstop dead-letters."""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable
from types import SimpleNamespace
from typing import Any

import pytest
from aio_pika.abc import AbstractChannel
from taskiq.message import BrokerMessage

from asyncjobs.brokers.base import Delivery
from asyncjobs.brokers.dead_letters import DeadLetter, Reason
from asyncjobs.brokers.errors import BrokerError, DeadLetterNotFoundError, UnknownQueueError
from asyncjobs.brokers.rabbitmq.broker import (
    DELIVERIES,
    AmqpBroker,
    AmqpDelivery,
    queue_name,
)
from asyncjobs.brokers.rabbitmq.dead_letters import dead_letter_id_of
from tests.brokers.conftest import MakeBroker
from tests.support.helpers import wait_until

pytestmark = pytest.mark.rabbitmq

WAIT_S = 10.0


@pytest.fixture
async def broker(make_broker: MakeBroker) -> AmqpBroker:
    return await make_broker(capacity=10)


def message(tag: str, queue: str = "default") -> BrokerMessage:
    return BrokerMessage(
        task_id=f"id-{tag}",
        task_name="tests:task",
        message=f'{{"tag": "{tag}"}}'.encode(),
        labels={"queue_name": queue},
    )


async def fetch_exactly(broker: AmqpBroker, count: int) -> list[Delivery]:
    deliveries: list[Delivery] = []
    deadline = time.monotonic() + WAIT_S
    while len(deliveries) < count and time.monotonic() < deadline:
        deliveries += await broker.fetch(count - len(deliveries), timeout_s=WAIT_S)
    assert len(deliveries) == count
    return deliveries


async def dead_letter(broker: AmqpBroker, *tags: str, queue: str = "default") -> None:
    """Publish one message per tag and dead-letter each, in order, like the worker does."""
    for tag in tags:
        await broker.kick(message(tag, queue))
        [delivery] = await fetch_exactly(broker, 1)
        await delivery.dead_letter(
            DeadLetter(
                body=delivery.data,
                queue=delivery.queue,
                reason=Reason.MAX_ATTEMPTS,
                error_type="RuntimeError",
                error_message=f"boom {tag}",
                task_id=f"id-{tag}",
                task_name="tests:task",
                attempts=3,
                deliveries=delivery.delivery_count,
            )
        )


async def depth(broker: AmqpBroker, queue: str = "default") -> int:
    return (await broker.queue_depths())[queue][0]


def tags(letters: list[DeadLetter]) -> list[str]:
    return [letter.task_id.removeprefix("id-") for letter in letters]


async def test_listing_twice_returns_the_same_letters_in_the_same_order(
    broker: AmqpBroker,
) -> None:
    await dead_letter(broker, "a", "b", "c", "d")

    first = await broker.dead_letters("default", 100)
    second = await broker.dead_letters("default", 100)

    assert tags(first) == ["a", "b", "c", "d"]
    assert [x.id for x in first] == [x.id for x in second]
    assert all(x.id for x in first) and len({x.id for x in first}) == 4
    letter = first[0]
    assert letter.reason is Reason.MAX_ATTEMPTS
    assert (letter.queue, letter.error_message, letter.attempts) == ("default", "boom a", 3)
    assert letter.body == message("a").message
    assert await broker.dead_letter_count("default") == 4
    assert await broker.dead_letter_count("emails") == 0
    assert await broker.dead_letters("emails") == []


async def test_partial_listings_never_rotate_the_queue(broker: AmqpBroker) -> None:
    # Quorum queues put a returned message behind the other returned ones: returning
    # only the first `limit` would rotate the queue once everything has been returned.
    await dead_letter(broker, "a", "b", "c", "d", "e")
    await broker.dead_letters("default", 100)  # every message returned once

    for _ in range(3):
        assert tags(await broker.dead_letters("default", 2)) == ["a", "b"]
    assert tags(await broker.dead_letters("default", 100)) == ["a", "b", "c", "d", "e"]
    assert await broker.dead_letters("default", 0) == []


async def test_replay_publishes_to_the_queue_then_removes_the_letter(broker: AmqpBroker) -> None:
    await dead_letter(broker, "a", "b", "c")
    letters = await broker.dead_letters("default")
    middle = letters[1]

    await broker.replay_dead_letter("default", middle.id, b'{"replayed": true}')

    assert tags(await broker.dead_letters("default")) == ["a", "c"]
    assert await broker.dead_letter_count("default") == 2
    [delivery] = await fetch_exactly(broker, 1)
    assert (delivery.data, delivery.queue, delivery.delivery_count) == (
        b'{"replayed": true}',
        "default",
        1,
    )
    assert isinstance(delivery, AmqpDelivery)
    headers = delivery.message.headers
    assert (headers["task_id"], headers["task_name"], headers[DELIVERIES]) == (
        "id-b",
        "tests:task",
        0,
    )
    await delivery.ack()

    # The oldest one takes the short path (nothing taken before it).
    await broker.replay_dead_letter("default", letters[0].id, letters[0].body)
    assert tags(await broker.dead_letters("default")) == ["c"]
    [delivery] = await fetch_exactly(broker, 1)
    assert delivery.data == letters[0].body
    await delivery.ack()


async def test_replay_keeps_the_letter_when_publishing_fails(
    broker: AmqpBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    await dead_letter(broker, "a", "b", "c")
    letters = await broker.dead_letters("default")

    async def refuse(*args: Any, **kwargs: Any) -> None:
        raise BrokerError("refused")

    monkeypatch.setattr(broker, "send", refuse)
    for letter in (letters[0], letters[2]):
        with pytest.raises(BrokerError, match="refused"):
            await broker.replay_dead_letter("default", letter.id, letter.body)

    assert [x.id for x in await broker.dead_letters("default")] == [x.id for x in letters]
    assert await depth(broker) == 0


async def test_delete_removes_only_that_letter(broker: AmqpBroker) -> None:
    await dead_letter(broker, "a", "b", "c", "d")
    letters = await broker.dead_letters("default")

    await broker.delete_dead_letter("default", letters[2].id)
    assert tags(await broker.dead_letters("default")) == ["a", "b", "d"]
    await broker.delete_dead_letter("default", letters[0].id)
    assert tags(await broker.dead_letters("default")) == ["b", "d"]
    assert await broker.dead_letter_count("default") == 2
    assert await depth(broker) == 0  # nothing was replayed


async def test_purge_counts_and_empties_one_queue(broker: AmqpBroker) -> None:
    await dead_letter(broker, "a", "b", "c")
    await dead_letter(broker, "x", queue="emails")
    await broker.dead_letters("default")  # returned messages are purged too

    assert await broker.purge_dead_letters("default") == 3
    assert await broker.dead_letter_count("default") == 0
    assert await broker.dead_letters("default") == []
    assert await broker.purge_dead_letters("default") == 0
    assert tags(await broker.dead_letters("emails")) == ["x"]


async def test_unknown_ids_raise_not_found_and_change_nothing(broker: AmqpBroker) -> None:
    await dead_letter(broker, "a", "b")
    before = [x.id for x in await broker.dead_letters("default")]

    with pytest.raises(DeadLetterNotFoundError, match="nope"):
        await broker.replay_dead_letter("default", "nope", b"{}")
    with pytest.raises(DeadLetterNotFoundError):
        await broker.delete_dead_letter("default", "nope")
    with pytest.raises(DeadLetterNotFoundError):  # in another queue's dead letters
        await broker.delete_dead_letter("emails", before[0])

    assert [x.id for x in await broker.dead_letters("default")] == before
    assert await depth(broker) == 0


async def test_unknown_queues_raise(broker: AmqpBroker) -> None:
    calls: list[Awaitable[object]] = [
        broker.dead_letters("nope"),
        broker.dead_letter_count("nope"),
        broker.replay_dead_letter("nope", "x", b"{}"),
        broker.delete_dead_letter("nope", "x"),
        broker.purge_dead_letters("nope"),
    ]
    for call in calls:
        with pytest.raises(UnknownQueueError, match="not configured"):
            await call


async def test_messages_rabbitmq_dead_lettered_itself_are_listed_and_replayable(
    make_broker: MakeBroker, admin: AbstractChannel, prefix: str
) -> None:
    # MAX_DELIVERIES=1: the queue's x-delivery-limit backstop is 2, so RabbitMQ moves the
    # raw message to the dead-letter queue when its third delivery is returned.
    broker = await make_broker(worker=False, max_deliveries=1)
    sent = message("raw")
    await broker.kick(sent)
    main = await admin.get_queue(queue_name(prefix, "default"), ensure=False)
    deliveries = 0

    async def returned_until_gone() -> bool:
        nonlocal deliveries
        got = await main.get(no_ack=False, fail=False)
        if got is None:
            return await broker.dead_letter_count("default") == 1
        deliveries += 1
        await got.nack(requeue=True)  # a consumer that dies every time
        return False

    await wait_until(returned_until_gone, timeout=WAIT_S, what="RabbitMQ to dead-letter it")
    assert deliveries == 3

    [letter] = await broker.dead_letters("default")
    [again] = await broker.dead_letters("default")
    assert letter.id == again.id and letter.id
    assert letter.reason is Reason.MAX_DELIVERIES
    assert letter.body == sent.message  # the original message, replayable as it is
    assert (letter.task_id, letter.task_name, letter.queue) == ("id-raw", "tests:task", "default")
    assert letter.deliveries == deliveries
    assert "delivery_limit" in letter.error_message
    assert abs(letter.dead_lettered_at - time.time()) < 120

    await broker.replay_dead_letter("default", letter.id, letter.body)
    assert await broker.dead_letter_count("default") == 0
    replayed = await wait_until(
        lambda: main.get(no_ack=False, fail=False), timeout=WAIT_S, what="the replayed message"
    )
    assert replayed is not None and replayed.body == sent.message
    assert (replayed.headers["task_id"], replayed.headers[DELIVERIES]) == ("id-raw", 0)
    await replayed.ack()


def test_messages_without_message_id_get_a_stable_hash_id() -> None:
    def incoming(delivery_count: int, body: bytes = b"body") -> Any:
        headers = {"task_id": "t", "x-delivery-count": delivery_count}
        return SimpleNamespace(message_id=None, body=body, headers=headers)

    first = dead_letter_id_of(incoming(0))
    assert first.startswith("sha256-")
    assert dead_letter_id_of(incoming(7)) == first  # redeliveries do not change it
    assert dead_letter_id_of(incoming(0, b"other")) != first
    with_id = SimpleNamespace(message_id=uuid.UUID(int=1).hex, body=b"", headers={})
    assert dead_letter_id_of(with_id) == uuid.UUID(int=1).hex  # type: ignore[arg-type]


# -- release: what the worker gives back unstarted (a redelivered message runs alone) ----
async def test_release_does_not_count_a_delivery(broker: AmqpBroker) -> None:
    await broker.kick(message("r"))
    [first] = await fetch_exactly(broker, 1)
    await first.hand_back()  # a return: counted by the quorum queue
    [second] = await fetch_exactly(broker, 1)
    assert second.delivery_count == 2

    await second.release()  # never started: not counted
    [third] = await fetch_exactly(broker, 1)
    assert (third.data, third.delivery_count) == (message("r").message, 2)
    assert isinstance(third, AmqpDelivery)
    assert third.message.headers["task_id"] == "id-r"
    await third.ack()
    assert await depth(broker) == 0
