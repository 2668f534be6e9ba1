"""The shared state of one ``memory://`` URL and key prefix in this process: its queues,
delayed messages, dead letters, consumers, and beside them results and schedules.

Like one Redis server for all its clients: every ``MemoryBroker``, ``MemoryResultStore``
and ``MemoryScheduleStorage`` built for the same URL (``memory://`` or
``memory://name``; the name is read as a host name, case-insensitive) and the same key
prefix in this process gets the same ``MemoryServer`` from ``server_for``. A client broker
and the worker brokers of one test thus see the same queues; another name or another
prefix sees nothing of them. Nothing leaves the process.

Threads and event loops: all state is guarded by one ``threading.Lock``, held only for
short synchronous steps, never across an ``await``, so any thread may send. Nothing is
bound to an event loop: a fetch (or ``join``) that has to wait registers a ``Waiter``
made on its *running* loop for that wait only, and whoever changes the state wakes it
with ``call_soon_threadsafe``; a waiter whose loop was closed meanwhile is dropped.
Delayed messages need no timer task: taking promotes whatever is due, and a waiting
fetch wakes by itself at the next due time.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar
from urllib.parse import urlsplit

K = TypeVar("K")
V = TypeVar("V")


@dataclass(slots=True)
class Entry:
    """A message in a queue, with what the transport knows of its past deliveries."""

    data: bytes
    prior: int = 0  # deliveries before the next one (the next delivery count is prior + 1)
    suspect: bool = False  # its last worker died holding it (see ``Delivery.suspect``)
    enqueued_at: float = field(default_factory=time.time)  # when it became deliverable


@dataclass(slots=True)
class Held:
    entry: Entry
    holder: int  # the broker (consumer) that fetched it


class QueueState:
    """One queue: ready entries (FIFO), entries in flight by token, delayed ones (a heap
    of due time, sequence, body) and dead letters (record JSON by id, oldest first)."""

    __slots__ = ("dead", "in_flight", "ready", "scheduled")

    def __init__(self) -> None:
        self.ready: deque[Entry] = deque()
        self.in_flight: dict[int, Held] = {}
        self.scheduled: list[tuple[float, int, bytes]] = []
        self.dead: dict[str, bytes] = {}

    def promote(self, now: float) -> None:
        """Move what is due into the queue, stamped with its due time."""
        while self.scheduled and self.scheduled[0][0] <= now:
            due, _, data = heapq.heappop(self.scheduled)
            self.ready.append(Entry(data, enqueued_at=due))


class Waiter:
    """One wait of a coroutine on its running loop, woken from any thread."""

    __slots__ = ("future", "loop", "queues")

    def __init__(self, queues: frozenset[str] | None) -> None:
        self.loop = asyncio.get_running_loop()
        self.future: asyncio.Future[None] = self.loop.create_future()
        self.queues = queues  # None: woken by every change (join)

    def wake(self) -> bool:
        """False when its loop is closed (the waiter is gone with it)."""
        try:
            self.loop.call_soon_threadsafe(self._resolve)
        except RuntimeError:
            return False
        return True

    def _resolve(self) -> None:
        if not self.future.done():
            self.future.set_result(None)

    async def wait(self, timeout_s: float | None) -> None:
        await asyncio.wait({self.future}, timeout=timeout_s)


class Expiring(Generic[K, V]):
    """A dict whose entries may expire, honoured lazily: when read, and by a sweep once
    the dict doubled since the last one (entries never read again do not pile up).
    Unlocked: callers hold their server's lock."""

    SWEEP_FROM = 1024

    def __init__(self) -> None:
        self._items: dict[K, tuple[V, float | None]] = {}
        self._sweep_at = self.SWEEP_FROM

    def get(self, key: K) -> V | None:
        item = self._items.get(key)
        if item is None:
            return None
        value, expires = item
        if expires is not None and expires <= time.monotonic():
            del self._items[key]
            return None
        return value

    def set(self, key: K, value: V, ttl_s: float | None) -> None:
        expires = time.monotonic() + ttl_s if ttl_s else None
        self._items[key] = (value, expires)
        if len(self._items) >= self._sweep_at:
            self._sweep()

    def keep(self, key: K, value: V) -> None:
        """Replace the value, keeping its expiry (Redis's KEEPTTL)."""
        item = self._items.get(key)
        self._items[key] = (value, item[1] if item else None)

    def pop(self, key: K) -> V | None:
        value = self.get(key)
        self._items.pop(key, None)
        return value

    def items(self) -> list[tuple[K, V]]:
        """The entries that have not expired."""
        now = time.monotonic()
        return [(k, v) for k, (v, exp) in self._items.items() if exp is None or exp > now]

    def __len__(self) -> int:
        return len(self._items)

    def _sweep(self) -> None:
        now = time.monotonic()
        self._items = {
            key: item for key, item in self._items.items() if item[1] is None or item[1] > now
        }
        self._sweep_at = max(self.SWEEP_FROM, 2 * len(self._items))


class MemoryServer:
    """The state of one (URL name, key prefix); see the module docstring."""

    def __init__(self, name: str, key_prefix: str) -> None:
        self.name = name
        self.key_prefix = key_prefix
        self.lock = threading.Lock()
        self._queues: dict[str, QueueState] = {}
        self._tokens = itertools.count(1)  # in-flight tokens, heap tie-breaks, letter ids
        self._waiters: set[Waiter] = set()
        self.consumers: dict[int, tuple[str, ...]] = {}  # connected worker -> its queues
        # Beside the queues (``memory.results``, ``memory.schedules``), under ``lock``.
        self.results: Expiring[str, bytes] = Expiring()
        self.progress: Expiring[str, bytes] = Expiring()
        self.statuses: Expiring[str, bytes] = Expiring()
        self.attempts: Expiring[str, list[bytes]] = Expiring()
        self.schedules: dict[str, bytes] = {}
        self.claims: Expiring[tuple[str, int], tuple[str, str, int]] = Expiring()
        self.last_sent: Expiring[str, int] = Expiring()
        # ``memory.monitor``: worker documents, (queue, minute) counts, backlog samples.
        self.workers: Expiring[str, bytes] = Expiring()
        self.minutes: Expiring[tuple[str, int], dict[str, int]] = Expiring()
        self.samples: Expiring[int, str] = Expiring()
        # ``memory.schedules``: paused ids, resume times.
        self.paused: set[str] = set()
        self.resumed: Expiring[str, int] = Expiring()

    def queue(self, name: str) -> QueueState:
        """The queue's state (created on first use). Hold ``lock``."""
        state = self._queues.get(name)
        if state is None:
            state = self._queues[name] = QueueState()
        return state

    def next_id(self) -> int:
        return next(self._tokens)

    # -- sending -----------------------------------------------------------------
    def put(self, queue: str, entry: Entry) -> None:
        with self.lock:
            self.queue(queue).ready.append(entry)
            woken = self._waiting_on(queue)
        _wake(woken)

    def put_at(self, queue: str, data: bytes, due_unix_s: float) -> None:
        with self.lock:
            heapq.heappush(self.queue(queue).scheduled, (due_unix_s, self.next_id(), data))
            woken = self._waiting_on(queue)  # a fetch may now have to wake sooner
        _wake(woken)

    # -- receiving ---------------------------------------------------------------
    def take(
        self, queues: Sequence[str], count: int, holder: int, waiter: Waiter | None
    ) -> tuple[list[tuple[str, int, Entry]], float | None]:
        """Up to ``count`` entries of ``queues``, taken in turn (one of each queue that
        has some, in order, and again), each now in flight as (queue, token, entry); and
        the next due time of their delayed messages. Nothing taken: ``waiter`` is
        registered in the same step, so no send in between can be missed."""
        taken: list[tuple[str, int, Entry]] = []
        with self.lock:
            now = time.time()
            states = [(name, self.queue(name)) for name in queues]
            for _, state in states:
                state.promote(now)
            while len(taken) < count and any(state.ready for _, state in states):
                for name, state in states:
                    if state.ready and len(taken) < count:
                        entry, token = state.ready.popleft(), self.next_id()
                        state.in_flight[token] = Held(entry, holder)
                        taken.append((name, token, entry))
            if not taken and waiter is not None:
                self._waiters.add(waiter)
            dues = [state.scheduled[0][0] for _, state in states if state.scheduled]
        return taken, min(dues, default=None)

    def settle(
        self,
        queue: str,
        token: int,
        *,
        back: Entry | None = None,
        later: tuple[bytes, float] | None = None,
        dead: bytes | None = None,
    ) -> bool:
        """Atomically end an in-flight entry, and put ``back`` in the queue, schedule
        ``later`` (body, due) or keep ``dead`` (a record) as a dead letter. False (and
        nothing done) when it is no longer in flight: its holder crashed or gave it up."""
        with self.lock:
            state = self.queue(queue)
            if state.in_flight.pop(token, None) is None:
                return False
            if back is not None:
                state.ready.append(back)
            if later is not None:
                heapq.heappush(state.scheduled, (later[1], self.next_id(), later[0]))
            if dead is not None:
                state.dead[str(self.next_id())] = dead
            woken = self._waiting_on(queue if back is not None or later is not None else None)
        _wake(woken)
        return True

    def replay(self, queue: str, bodies: Mapping[str, bytes]) -> set[str]:
        """Each dead letter of ``bodies`` still there leaves the dead letters and its body
        joins the queue (a new message), in one step; the ids that were gone."""
        with self.lock:
            state = self.queue(queue)
            gone = {letter_id for letter_id in bodies if letter_id not in state.dead}
            for letter_id, body in bodies.items():
                if letter_id not in gone:
                    del state.dead[letter_id]
                    state.ready.append(Entry(body))
            woken = self._waiting_on(queue) if len(gone) < len(bodies) else []
        _wake(woken)
        return gone

    def locate(self, queue: str, matches: Callable[[bytes], bool]) -> tuple[str, bytes] | None:
        """The first message of ``queue`` that ``matches``: ("running", body) in flight,
        ("waiting", body) ready (what is due included), ("scheduled", body) delayed."""
        with self.lock:
            state = self.queue(queue)
            state.promote(time.time())
            places = (
                ("running", [held.entry.data for held in state.in_flight.values()]),
                ("waiting", [entry.data for entry in state.ready]),
                ("scheduled", [data for _, _, data in sorted(state.scheduled)]),
            )
        for where, bodies in places:
            for body in bodies:
                if matches(body):
                    return where, body
        return None

    def give_back(self, holder: int, *, counted: bool, token: int | None = None) -> int:
        """Put what ``holder`` has in flight (only ``token``, if given) back in its queue:
        ``counted`` as a dead worker's (delivery count + 1, a crash suspect), else as it
        was fetched (a clean shutdown's). How many."""
        moved: list[str] = []
        with self.lock:
            for name, state in self._queues.items():
                mine = [
                    held_token
                    for held_token, held in state.in_flight.items()
                    if held.holder == holder and token in (None, held_token)
                ]
                for held_token in mine:
                    entry = state.in_flight.pop(held_token).entry
                    if counted:
                        state.ready.append(Entry(entry.data, entry.prior + 1, suspect=True))
                    else:
                        state.ready.append(Entry(entry.data, entry.prior, entry.suspect))
                    moved.append(name)
            woken = [w for name in set(moved) for w in self._waiting_on(name)]
        _wake(woken)
        return len(moved)

    def forget(self, waiter: Waiter) -> None:
        with self.lock:
            self._waiters.discard(waiter)

    # -- consumers, figures, join --------------------------------------------------
    def add_consumer(self, holder: int, queues: Sequence[str]) -> None:
        with self.lock:
            self.consumers[holder] = tuple(queues)

    def remove_consumer(self, holder: int) -> None:
        with self.lock:
            self.consumers.pop(holder, None)

    def figures(self, queue: str) -> tuple[int, int, int, int, float | None, int]:
        """(waiting, in flight, scheduled, dead letters, oldest waiting's enqueued_at,
        consumers), read at one moment; what is due counts as waiting."""
        with self.lock:
            state = self.queue(queue)
            state.promote(time.time())
            oldest = min((entry.enqueued_at for entry in state.ready), default=None)
            consumers = sum(queue in queues for queues in self.consumers.values())
            return (
                len(state.ready),
                len(state.in_flight),
                len(state.scheduled),
                len(state.dead),
                oldest,
                consumers,
            )

    def make_due(self, queues: Iterable[str]) -> int:
        """Move every delayed message of ``queues`` into its queue now, in due order (a
        test running its pending tasks does not wait for delays or backoffs); how many."""
        woken: list[Waiter] = []
        moved = 0
        with self.lock:
            now = time.time()
            for name in queues:
                state = self.queue(name)
                while state.scheduled:
                    due, _, data = heapq.heappop(state.scheduled)
                    state.ready.append(Entry(data, enqueued_at=min(due, now)))
                    moved += 1
                    woken += self._waiting_on(name)
        _wake(woken)
        return moved

    def busy(self, queues: Iterable[str], scheduled: bool, waiter: Waiter) -> bool:
        """Whether any of ``queues`` has a message waiting or in flight (or, with
        ``scheduled``, delayed); if so ``waiter`` is registered for the next change."""
        with self.lock:
            now = time.time()
            for name in queues:
                state = self.queue(name)
                state.promote(now)
                if state.ready or state.in_flight or (scheduled and state.scheduled):
                    self._waiters.add(waiter)
                    return True
            return False

    def _waiting_on(self, queue: str | None) -> list[Waiter]:
        """The waiters a change of ``queue`` wakes (None: a change that only ends work,
        which wakes ``join``s). Hold ``lock``; wake them after releasing it."""
        woken = [
            w
            for w in self._waiters
            if w.queues is None or (queue is not None and queue in w.queues)
        ]
        self._waiters.difference_update(woken)
        return woken


def _wake(waiters: list[Waiter]) -> None:
    for waiter in waiters:
        waiter.wake()  # a waiter of a closed loop is simply gone (no longer registered)


# -- the process-wide registry -----------------------------------------------------------
_servers: dict[tuple[str, str], MemoryServer] = {}
_servers_lock = threading.Lock()


def server_name(url: str) -> str:
    """The server a ``memory://`` URL names: ``""`` for ``memory://``."""
    return urlsplit(url).hostname or ""


def server_for(url: str, key_prefix: str) -> MemoryServer:
    """The one state of ``url`` and ``key_prefix`` in this process (created on first use)."""
    key = (server_name(url), key_prefix)
    with _servers_lock:
        server = _servers.get(key)
        if server is None:
            server = _servers[key] = MemoryServer(*key)
        return server


def discard_server(url: str, key_prefix: str) -> None:
    """Drop the state of ``url`` and ``key_prefix`` (a test's, once its brokers are shut
    down): objects built later start empty; those built before keep the old state."""
    with _servers_lock:
        _servers.pop((server_name(url), key_prefix), None)
