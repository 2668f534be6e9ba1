"""Stream fields, headers and labels are input from whoever wrote the message: on both
transports, a bad delivery count is dead-lettered without running and without holding up
its neighbours, and a task's limits come from the registered task (a label may only
lower them)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import orjson
import pytest

from asyncjobs import current_broker
from asyncjobs.brokers.base import ReliableBroker
from asyncjobs.brokers.dead_letters import DeadLetter, Reason
from asyncjobs.brokers.envelope import ATTEMPT as ATTEMPT_LABEL
from tests.support.helpers import wait_until
from tests.support.worker_harness import Worker
from tests.testapp import tasks


def body(task: Any, *args: Any, labels: dict[str, Any] | None = None, task_id: str = "") -> bytes:
    return orjson.dumps(
        {
            "task_id": task_id or f"id-{time.monotonic_ns()}",
            "task_name": task.task_name,
            "labels": labels or {},
            "args": list(args),
            "kwargs": {},
        }
    )


async def publish(data: bytes, deliveries: object = None) -> None:
    """Put ``data`` in queue ``default`` as a raw producer would, with the transport's
    delivery count field set to ``deliveries`` (None: absent)."""
    broker = current_broker()
    assert isinstance(broker, ReliableBroker)
    await broker.ensure_started()
    if broker.transport_name == "redis":
        from asyncjobs.brokers.redis.streams import DATA, DELIVERIES, stream_key

        fields: dict[Any, Any] = {DATA: data}
        if deliveries is not None:
            fields[DELIVERIES] = str(deliveries).encode()
        await broker.redis().xadd(stream_key(broker.options.key_prefix, "default"), fields)
    else:
        from asyncjobs.brokers.rabbitmq.broker import DELIVERIES, AmqpBroker

        assert isinstance(broker, AmqpBroker)
        headers: dict[str, Any] = {"task_id": "raw", "task_name": "raw"}
        if deliveries is not None:
            headers[DELIVERIES] = deliveries
        await broker.send(broker.exchange_name, "default", data, headers)


async def dead_letters(worker: Worker, count: int = 1) -> list[DeadLetter]:
    async def found() -> list[DeadLetter] | None:
        letters = await worker.dead()
        return letters if len(letters) >= count else None

    letters = await wait_until(found, timeout=15, what=f"{count} dead letters")
    assert len(letters) == count, letters
    return letters


# -- delivery counts (D2, D5) ------------------------------------------------------------
@pytest.mark.parametrize("deliveries", [-1000, "abc", "1.5"])
async def test_a_bad_delivery_count_is_dead_lettered_without_running(
    start_any_worker: Callable[..., object], deliveries: object
) -> None:
    worker: Worker = await start_any_worker()  # type: ignore[misc]
    data = body(tasks.add, 1, 2, task_id="bad-count")
    await publish(data, deliveries)
    [letter] = await dead_letters(worker)
    assert letter.reason is Reason.BAD_DELIVERY_COUNT
    assert (letter.task_id, letter.body) == ("bad-count", data)
    assert str(deliveries) in letter.error_message
    assert await worker.ledger() == []  # never ran: a negative count could loop forever


async def test_a_bad_count_in_a_read_does_not_strand_the_good_entries_beside_it(
    start_any_worker: Callable[..., object],
) -> None:
    # Sent before the worker starts, so that one fetch returns all three: the bad entry
    # in the middle once made the fetch raise after the first was registered as held.
    await publish(body(tasks.add, 1, 0))
    await publish(body(tasks.add, 2, 0), "abc")
    await publish(body(tasks.add, 3, 0))
    worker: Worker = await start_any_worker()  # type: ignore[misc]
    await wait_until(
        lambda: _ledger_has(worker, {"add:1:0", "add:3:0"}), timeout=15, what="the good adds"
    )
    [letter] = await dead_letters(worker)
    assert letter.reason is Reason.BAD_DELIVERY_COUNT
    assert sorted(await worker.ledger()) == ["add:1:0", "add:3:0"]


async def _ledger_has(worker: Worker, events: set[str]) -> bool:
    return events <= set(await worker.ledger())


# -- limits come from the task (D6) ------------------------------------------------------
@pytest.mark.parametrize("asked", [1_000_000, "abc", None])
async def test_a_label_cannot_raise_max_attempts(
    start_any_worker: Callable[..., object], asked: object
) -> None:
    worker: Worker = await start_any_worker()  # type: ignore[misc]
    labels = {} if asked is None else {"max_attempts": asked}  # declared: 3
    await publish(body(tasks.always_fails, "x", labels=labels))
    [letter] = await dead_letters(worker)
    assert letter.reason is Reason.MAX_ATTEMPTS
    assert letter.attempts == 3
    assert await worker.ledger() == ["fail:x"] * 3


async def test_a_label_may_lower_max_attempts(start_any_worker: Callable[..., object]) -> None:
    worker: Worker = await start_any_worker()  # type: ignore[misc]
    await tasks.always_fails.kicker().with_labels(max_attempts=1).kiq("once")
    [letter] = await dead_letters(worker)
    assert (letter.reason, letter.attempts) == (Reason.MAX_ATTEMPTS, 1)
    assert await worker.ledger() == ["fail:once"]


@pytest.mark.parametrize("labels", [{}, {"timeout": 100}, {"timeout": "abc"}])
async def test_the_declared_timeout_holds_without_or_against_a_label(
    start_any_worker: Callable[..., object], labels: dict[str, Any]
) -> None:
    """``overruns`` is declared with ``timeout=0.5``: a raw producer's message (no
    labels), a longer or a nonsense timeout label, all are cut at 0.5 s."""
    worker: Worker = await start_any_worker()  # type: ignore[misc]
    await publish(body(tasks.overruns, "t", labels=labels))
    [letter] = await dead_letters(worker)
    assert (letter.reason, letter.error_type) == (Reason.MAX_ATTEMPTS, "TimeoutError")
    events = await wait_until(
        lambda: _cancellations(worker), timeout=5, what="both attempts to see their timeout"
    )
    assert len(events) == 2


async def _cancellations(worker: Worker) -> list[str] | None:
    events = [e for e in await worker.ledger() if e.startswith("cancelled:t:")]
    return events if len(events) == 2 else None


# -- a settlement that cannot be written (D1) ----------------------------------------------
async def test_an_attempt_label_over_64_bits_is_still_dead_lettered(
    start_any_worker: Callable[..., object],
) -> None:
    """The attempt number went into the dead letter's history, which then could not be
    encoded: the delivery counted as settled, was never handed back and stayed leased."""
    worker: Worker = await start_any_worker()  # type: ignore[misc]
    # As a raw producer writes it (orjson itself refuses to encode such an integer).
    data = body(tasks.always_fails, "big", labels={ATTEMPT_LABEL: "BIG"})
    data = data.replace(b'"BIG"', str(10**30).encode())
    await publish(data)
    [letter] = await dead_letters(worker)
    assert letter.reason is Reason.MAX_ATTEMPTS and letter.body == data
    assert await worker.ledger() == ["fail:big"]
    await worker.stop()
    broker = worker.receiver.reliable
    assert await _holds_nothing(broker)


async def _holds_nothing(broker: ReliableBroker) -> bool:
    if broker.transport_name != "redis":
        return True  # RabbitMQ: the dead letter above is the proof (acked after it)
    from asyncjobs.brokers.redis.streams import GROUP, stream_key

    stream = stream_key(broker.options.key_prefix, "default")
    conn = broker.redis()
    return bool(
        await conn.xlen(stream) == 0 and (await conn.xpending(stream, GROUP))["pending"] == 0
    )
