"""What is particular to ``memory://`` (the contract suite covers the rest): the state
shared per URL and key prefix, sends from other threads and event loops, ``join``, exact
queue figures, the URL check. Pure in-process logic: no server involved."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator

import pytest
from taskiq import TaskiqEvents

from asyncjobs.brokers.base import ReliableBroker, TransportOptions
from asyncjobs.brokers.dead_letters import DeadLetter, Reason
from asyncjobs.brokers.errors import ConfigurationError, JoinTimeoutError
from asyncjobs.brokers.inspection import inspect_queues
from asyncjobs.brokers.memory.broker import MemoryBroker
from asyncjobs.brokers.memory.server import discard_server
from asyncjobs.brokers.transport import check_url, transport_for
from tests.brokers.test_contract import fetch_one, message
from tests.support.helpers import fetch_n, wait_until

Build = Callable[..., MemoryBroker]


@pytest.fixture
def build(prefix: str) -> Iterator[Build]:
    """``build(url="memory://", prefix=<this test's>, worker=False, **options)``: a
    memory broker (a worker one is marked as such; start it with ``startup``)."""
    used: set[tuple[str, str]] = set()

    def make(
        url: str = "memory://", key_prefix: str = prefix, worker: bool = False, **options: object
    ) -> MemoryBroker:
        opts = TransportOptions(
            queues=("default", "other"),
            key_prefix=key_prefix,
            **options,  # type: ignore[arg-type]
        )
        broker = transport_for(url).build_broker(url, opts)
        assert isinstance(broker, MemoryBroker)
        broker.is_worker_process = broker.receiver_attached = worker
        used.add((url, key_prefix))
        return broker

    yield make
    for url, key_prefix in used:
        discard_server(url, key_prefix)


async def waiting_fetches(broker: MemoryBroker) -> int:
    """How many fetches wait on the broker's server (a test's peek at its state)."""
    with broker.server.lock:
        return sum(w.queues is not None for w in broker.server._waiters)


async def test_brokers_of_one_url_and_prefix_share_queues_and_no_others(
    build: Build, prefix: str
) -> None:
    client, worker = build("memory://box"), build("memory://BOX")  # a host name: any case
    strangers = [build("memory://"), build("memory://other-box"), build(key_prefix=prefix + "x")]
    await client.kick(message(b"shared"))
    assert (await fetch_one(worker)).data == b"shared"
    await client.kick(message(b"mine"))
    for stranger in strangers:
        assert await stranger.fetch(10, 0.05) == []
    assert (await fetch_one(worker)).data == b"mine"


async def test_a_send_from_another_thread_wakes_a_waiting_fetch(build: Build) -> None:
    client, worker = build(), build()
    fetch = asyncio.create_task(worker.fetch(5, 30.0))
    await wait_until(lambda: waiting_fetches(worker), what="a waiting fetch")
    bodies = [f"from thread {i}".encode() for i in range(3)]
    threads = [
        threading.Thread(target=asyncio.run, args=(client.kick(message(body)),)) for body in bodies
    ]
    began = time.monotonic()
    for thread in threads:
        thread.start()
    first = await asyncio.wait_for(fetch, 5.0)
    assert time.monotonic() - began < 2.0  # woken by the send, not by its 30 s timeout
    rest = await fetch_n(worker, len(bodies) - len(first))
    assert sorted(d.data for d in [*first, *rest]) == sorted(bodies)
    for thread in threads:
        thread.join(5)


def test_concurrent_first_sends_from_several_threads_start_the_broker_once(
    build: Build,
) -> None:
    client, starts = build(), []

    async def on_startup(state: object) -> None:
        starts.append(threading.get_ident())
        await asyncio.sleep(0.1)  # a slow start: the other threads' sends arrive meanwhile

    client.add_event_handler(TaskiqEvents.CLIENT_STARTUP, on_startup)
    bodies = [f"thread {i}".encode() for i in range(4)]
    threads = [
        threading.Thread(target=asyncio.run, args=(client.kick(message(body)),)) for body in bodies
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(5)
    assert len(starts) == 1 and client.started

    async def received() -> list[bytes]:
        return sorted(d.data for d in await fetch_n(build(), len(bodies)))

    assert asyncio.run(received()) == sorted(bodies)


def test_a_broker_serves_an_event_loop_created_after_its_first_use(build: Build) -> None:
    client, worker = build(), build(worker=True)
    asyncio.run(client.kick(message(b"from the first loop")))  # starts the client there

    async def in_a_new_loop() -> list[bytes]:
        await worker.startup()
        got = [(await fetch_one(worker)).data]
        waiting = asyncio.create_task(worker.fetch(1, 30.0))
        await wait_until(lambda: waiting_fetches(worker), what="a fetch")
        await client.kick(message(b"from the second loop"))  # the client, started before
        got += [d.data for d in await asyncio.wait_for(waiting, 5.0)]
        await worker.shutdown()
        return got

    assert asyncio.run(in_a_new_loop()) == [b"from the first loop", b"from the second loop"]


def test_a_fetch_left_waiting_in_a_closed_loop_does_not_break_a_send(build: Build) -> None:
    client, worker = build(), build()
    old = asyncio.new_event_loop()
    orphan = old.create_task(worker.fetch(1, 30.0))
    old.run_until_complete(asyncio.sleep(0.05))
    assert asyncio.run(waiting_fetches(worker)) == 1
    old.close()  # its fetch never ends, nor unregisters (a test's loop torn down)

    async def later() -> bytes:
        await client.kick(message(b"after"))  # wakes nobody, raises nothing
        return (await fetch_one(worker)).data

    assert asyncio.run(later()) == b"after"
    assert asyncio.run(waiting_fetches(worker)) == 0
    # Left pending on purpose: no "Task was destroyed but it is pending!" at collection.
    orphan._log_destroy_pending = False  # type: ignore[attr-defined]


async def test_a_waiting_fetch_wakes_by_itself_when_a_delayed_message_is_due(
    build: Build,
) -> None:
    client, worker = build(), build()
    due = time.time() + 0.5
    await client.publish_at("default", message(b"later"), due)
    [delivery] = await worker.fetch(1, 10.0)  # one call: no send wakes it, its timer does
    arrived = time.time()
    assert due <= arrived <= due + 0.2
    assert delivery.enqueued_at == due  # deliverable since it was due


async def test_a_fetch_takes_in_turn_from_its_queues_and_no_more_than_asked(
    build: Build,
) -> None:
    client, worker = build(), build()
    for i in range(3):
        await client.kick(message(f"d{i}".encode()))
        await client.kick(message(f"o{i}".encode(), queue="other"))
    got = await worker.fetch(4, 1.0)
    assert [(d.queue, d.data) for d in got] == [
        ("default", b"d0"),
        ("other", b"o0"),
        ("default", b"d1"),
        ("other", b"o1"),
    ]
    only_other = build(consume_queues=("other",))
    assert [d.data for d in await only_other.fetch(10, 0.1)] == [b"o2"]


async def test_join_waits_until_nothing_waits_runs_or_is_scheduled(build: Build) -> None:
    client, worker = build(), build()
    await client.join(timeout_s=0.1)  # nothing at all: at once
    await client.kick(message(b"x"))
    delivery = await fetch_one(worker)
    with pytest.raises(JoinTimeoutError, match=r"'default': \(0, 1, 0\)"):
        await client.join(timeout_s=0.2)  # in flight, never settled
    joined = asyncio.create_task(client.join(timeout_s=5))
    await delivery.retry_at(b"x again", time.time() + 0.4)  # a retry after its backoff
    await client.join(timeout_s=0.1, scheduled=False)  # nothing due: done
    assert not joined.done()

    acked: list[bytes] = []

    async def work() -> None:
        retry = await fetch_one(worker)
        await retry.ack()
        acked.append(retry.data)

    working = asyncio.create_task(work())
    await joined
    assert acked == [b"x again"]  # it waited for the retry to be due, run and acked
    await working


async def test_inspect_figures_are_exact(build: Build) -> None:
    client = build()
    worker = build(worker=True)
    await worker.startup()
    listens_to_other = build(worker=True, consume_queues=("other",))
    await listens_to_other.startup()
    sent = time.time()
    for body in (b"a", b"b", b"c", b"d"):
        await client.kick(message(body))
    running = await fetch_one(worker)
    doomed = await fetch_one(worker)
    await doomed.dead_letter(DeadLetter(body=doomed.data, queue="default", reason=Reason.REJECTED))
    await client.publish_at("default", message(b"later"), time.time() + 60)
    default, other = await inspect_queues(client, ["default", "other"])
    age = default.oldest_waiting_age_s
    assert age is not None and 0 <= age <= time.time() - sent
    assert (default.waiting, default.in_flight, default.scheduled, default.dead_letters) == (
        2,
        1,
        1,
        1,
    )
    assert (default.consumers, default.backlog, default.transport) == (1, 3, "memory")
    assert (other.waiting, other.in_flight, other.consumers, other.oldest_waiting_age_s) == (
        0,
        0,
        2,
        None,
    )
    await worker.shutdown()  # gives back what it held, uncounted
    [default] = await client.inspect(["default"])
    assert (default.waiting, default.in_flight, default.consumers) == (3, 0, 0)
    assert running.data == b"a"


async def test_a_worker_shutting_down_gives_back_what_it_held_uncounted(build: Build) -> None:
    client, worker = build(), build(worker=True)
    await worker.startup()
    await client.kick(message(b"held"))
    held = await fetch_one(worker)
    await worker.shutdown()
    again = await fetch_one(build())
    assert (again.data, again.delivery_count, again.suspect) == (b"held", 1, False)
    await held.ack()  # the delivery is no longer its worker's: nothing happens
    assert (await client.inspect(["default"]))[0].in_flight == 1  # `again` still is


async def test_a_crashed_broker_is_no_consumer_and_its_late_settlements_do_nothing(
    build: Build,
) -> None:
    client, doomed = build(), build(worker=True)
    await doomed.startup()
    await client.kick(message(b"x"))
    held = await fetch_one(doomed)
    assert doomed.crash() == 1
    assert (await client.inspect(["default"]))[0].consumers == 0
    await held.dead_letter(DeadLetter(body=b"x", queue="default", reason=Reason.REJECTED))
    assert await client.dead_letter_count("default") == 0
    again = await fetch_one(client)
    assert (again.delivery_count, again.suspect) == (2, True)


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("memory://box:6379", "no host:port"),
        ("memory://user:secret@box", "no user or password"),
        ("memory://my.box", "letters, digits, _ and -"),
        ("memory://box/0", "no path"),
        ("memory://box?size=10", "no options"),
        ("memory://?", "no options"),
    ],
)
def test_a_memory_url_names_at_most_a_server(url: str, problem: str) -> None:
    with pytest.raises(ConfigurationError, match=problem) as raised:
        check_url(url)
    assert "secret" not in str(raised.value)


@pytest.mark.parametrize("url", ["memory://", "memory://tests", "memory://My_box-2", "memory:///"])
def test_memory_urls_that_are_accepted(url: str) -> None:
    assert check_url(url).name == "memory"


def test_the_memory_transport_says_what_it_can_do() -> None:
    caps = transport_for("memory://").capabilities
    assert (caps.stores_results, caps.stores_schedules, caps.needs_promoter) == (True, True, False)
    assert (caps.shared, caps.needs_host) == (False, False)
    broker: ReliableBroker = transport_for("memory://").build_broker(
        "memory://", TransportOptions()
    )
    assert broker.promoter(["default"]) is None and broker.consumer_group("default") is None
