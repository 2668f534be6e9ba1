"""``memory://``: a real transport whose queues live in this process, for tests.

The asyncjobs receiver consumes a ``MemoryBroker`` exactly as it consumes Redis Streams
or RabbitMQ (``fetch``, settle each ``Delivery`` once, hand back on drain), so a test on
``memory://`` runs the real worker path: decoding, argument checks, retries with their
backoff, dead letters, results. Nothing runs inside ``kiq()``: a message waits in its
queue until a worker in this process fetches it.

The queues are a ``MemoryServer`` (``memory.server``) shared by every broker of the same
URL and key prefix in the process, as a Redis server is by its clients. A crash is what
a test says it is (``crash()``), never a side effect. Only the process sees the
messages (``Capabilities.shared`` is False): a ``taskiq worker`` process of its own
would never receive them.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
import logging
import threading
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import cast

from taskiq.message import BrokerMessage

from asyncjobs.brokers.base import Delivery, ReliableBroker, TransportOptions
from asyncjobs.brokers.dead_letters import DeadLetter
from asyncjobs.brokers.errors import DeadLetterNotFoundError, JoinTimeoutError
from asyncjobs.brokers.inspection import QueueStats
from asyncjobs.brokers.locating import LOCATE_SCAN, Located, Location, names_task
from asyncjobs.brokers.memory import TRANSPORT
from asyncjobs.brokers.memory.delivery import MemoryDelivery
from asyncjobs.brokers.memory.server import Entry, Waiter, server_for

logger = logging.getLogger("asyncjobs.broker.memory")
_holders = itertools.count(1)


class MemoryBroker(ReliableBroker):
    """In-process queues (``memory://`` or ``memory://name``), shared per key prefix."""

    transport_name = TRANSPORT.name
    capabilities = TRANSPORT.capabilities

    def __init__(self, url: str, options: TransportOptions) -> None:
        super().__init__(options)
        self.url = url
        self.server = server_for(url, options.key_prefix)
        self.holder = next(_holders)  # this broker as a consumer: what it holds is its own
        self._start_guard = threading.Lock()
        self._starting: concurrent.futures.Future[None] | None = None

    # -- lifecycle ---------------------------------------------------------------
    async def ensure_started(self) -> None:
        """Started once, by the first caller whatever its thread; concurrent first calls
        (sends from several threads) wait for that start. Nothing here is bound to an
        event loop, so the base class's start per new loop is not needed."""
        if self.started:
            return
        with self._start_guard:
            starting, mine = self._starting, self._starting is None
            if starting is None:
                starting = self._starting = concurrent.futures.Future()
        if not mine:
            await asyncio.wrap_future(starting)
            return
        try:
            await self.startup()
        except BaseException as exc:
            self._starting = None
            starting.set_exception(exc)
            raise
        starting.set_result(None)

    async def connect(self) -> None:
        if self.is_worker_process:  # counted by ``inspect`` from now until disconnect
            self.server.add_consumer(self.holder, self.options.listened_queues)

    async def disconnect(self) -> None:
        """A worker gives back what it still holds, uncounted, and stops being a
        consumer (Redis: the shutdown hand-back, and leaving the group)."""
        moved = self.server.give_back(self.holder, counted=False)
        if moved:
            logger.info("handed back %d messages this worker had fetched", moved)
        self.server.remove_consumer(self.holder)
        self._starting = None  # shut down: the next send starts it again

    def forget_connections(self) -> None:
        """Nothing to forget: no connection, nothing bound to a loop."""

    def crash(self) -> int:
        """Die like a SIGKILLed worker, for tests: what this broker holds goes back to
        its queues at once, counted (delivery count + 1) and as crash suspects, as a
        dead Redis consumer's does once its lease expired; it is no consumer any more,
        and settling the deliveries it held does nothing. How many went back."""
        moved = self.server.give_back(self.holder, counted=True)
        self.server.remove_consumer(self.holder)
        return moved

    # -- sending -----------------------------------------------------------------
    async def publish(self, queue: str, message: BrokerMessage) -> None:
        self.server.put(self.check_queue(queue), Entry(message.message))

    async def publish_at(self, queue: str, message: BrokerMessage, due_unix_s: float) -> None:
        """Due exactly at ``due_unix_s``: a waiting fetch wakes then (never early; late
        by the event loop's timer resolution only)."""
        self.server.put_at(self.check_queue(queue), message.message, due_unix_s)

    # -- receiving ---------------------------------------------------------------
    async def fetch(self, max_messages: int, timeout_s: float) -> Sequence[Delivery]:
        """At most ``max_messages`` of the listened queues (what is due included), at
        once if any wait; else the first to arrive within ``timeout_s``. A cancelled
        fetch has taken nothing."""
        if max_messages <= 0:
            return []
        queues = self.options.listened_queues
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            waiter = Waiter(frozenset(queues))
            taken, next_due = self.server.take(queues, max_messages, self.holder, waiter)
            if taken:
                return [MemoryDelivery(self, *item) for item in taken]
            try:
                left = deadline - loop.time()
                if left <= 0:
                    return []
                if next_due is not None:
                    left = min(left, max(0.0, next_due - time.time()))
                await waiter.wait(left)
            finally:
                self.server.forget(waiter)

    async def join(self, timeout_s: float | None = None, *, scheduled: bool = True) -> None:
        """Wait until no queue of ``QUEUES`` has a message waiting or in flight and,
        with ``scheduled`` (the default), none delayed either: retries waiting for their
        backoff and ``delay``/``eta`` sends included, so a task's retries are done when
        this returns (a send an hour ahead keeps it waiting an hour: pass
        ``scheduled=False`` to wait only for what is due). The work is done by workers
        (in this process): without one, this waits until the timeout.

        Raises ``JoinTimeoutError`` after ``timeout_s`` (None: no limit), saying what
        was left."""
        try:
            async with asyncio.timeout(timeout_s):
                while True:
                    waiter = Waiter(None)
                    if not self.server.busy(self.options.queues, scheduled, waiter):
                        return
                    try:
                        await waiter.wait(None)
                    finally:
                        self.server.forget(waiter)
        except TimeoutError:
            left = {s.queue: (s.waiting, s.in_flight, s.scheduled) for s in self._stats()}
            raise JoinTimeoutError(
                f"join: work left after {timeout_s} s (waiting, in flight, scheduled): {left}"
            ) from None

    def make_due(self) -> int:
        """Every delayed message of ``QUEUES`` (``delay``/``eta`` sends, retries waiting
        for their backoff) is due now; how many were moved. For tests that run their
        pending tasks at once (``asyncjobs.testing``)."""
        return self.server.make_due(self.options.queues)

    # -- the port's facts -----------------------------------------------------------
    async def inspect(self, queues: Sequence[str]) -> list[QueueStats]:
        """Exact figures, each queue's read at one moment. ``consumers``: the worker
        brokers connected to the queue (started as workers, not yet shut down or
        crashed); ``backlog``: waiting + in flight."""
        return self._stats(queues)

    def _stats(self, queues: Sequence[str] | None = None) -> list[QueueStats]:
        stats = []
        for queue in queues or self.options.queues:
            waiting, in_flight, scheduled, dead, oldest, consumers = self.server.figures(queue)
            age = None if oldest is None else max(0.0, time.time() - oldest)
            stats.append(
                QueueStats(
                    queue=queue,
                    transport=TRANSPORT.name,
                    waiting=waiting,
                    in_flight=in_flight,
                    scheduled=scheduled,
                    dead_letters=dead,
                    oldest_waiting_age_s=age,
                    consumers=consumers,
                    backlog=waiting + in_flight,
                )
            )
        return stats

    async def locate(self, queue: str, task_id: str, scan: int = LOCATE_SCAN) -> Located | None:
        """Exact: every message of ``queue`` is looked at (``scan`` does not limit it)."""
        found = self.server.locate(self.check_queue(queue), lambda body: names_task(body, task_id))
        if found is None:
            return None
        where, body = found
        return Located(cast(Location, where), body)

    def consumer_group(self, queue: str) -> str | None:
        """None: there is no group; every broker of the URL takes from the same queues."""
        return None

    def promoter(self, queues: Sequence[str]) -> None:
        """None (``needs_promoter`` is False): a fetch moves what is due itself, and a
        waiting fetch wakes at the next due time, so no process has to run a loop."""
        return None

    # -- dead letters ------------------------------------------------------------
    # Kept per queue in the server, oldest first; ids are stable while a letter exists.
    async def dead_letters(self, queue: str, limit: int = 100) -> list[DeadLetter]:
        dead = self._dead(queue)
        with self.server.lock:
            items = list(itertools.islice(dead.items(), max(0, limit)))
        return [DeadLetter.from_json(payload, letter_id) for letter_id, payload in items]

    async def dead_letter_count(self, queue: str) -> int:
        dead = self._dead(queue)
        with self.server.lock:
            return len(dead)

    async def dead_letter_snapshot(
        self, queue: str, page_size: int = 500
    ) -> AsyncIterator[list[DeadLetter]]:
        """One page: the letters are copied at once when it starts (as RabbitMQ's are
        listed), so it ends where it started, whatever is dead-lettered meanwhile."""
        dead = self._dead(queue)
        with self.server.lock:
            items = list(dead.items())
        if items:
            yield [DeadLetter.from_json(payload, letter_id) for letter_id, payload in items]

    async def replay_dead_letters(self, queue: str, bodies: Mapping[str, bytes]) -> set[str]:
        """Each letter still there is removed and its body put in the queue in one step
        (a new message: delivery count 1); the ids that were gone."""
        return self.server.replay(self.check_queue(queue), bodies)

    async def delete_dead_letter(self, queue: str, dead_letter_id: str) -> None:
        dead = self._dead(queue)
        with self.server.lock:
            found = dead.pop(dead_letter_id, None)
        if found is None:
            raise DeadLetterNotFoundError(f"no dead letter {dead_letter_id!r} in queue {queue!r}")

    async def purge_dead_letters(self, queue: str) -> int:
        dead = self._dead(queue)
        with self.server.lock:
            count = len(dead)
            dead.clear()
        return count

    def _dead(self, queue: str) -> dict[str, bytes]:
        """The dead letters of ``queue`` (``UnknownQueueError`` if it is not in QUEUES);
        read and change them holding the server's lock."""
        self.check_queue(queue)
        with self.server.lock:
            return self.server.queue(queue).dead
