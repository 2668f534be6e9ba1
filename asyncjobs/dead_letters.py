"""Dead letters as a first-class place: list, show, replay, purge, on any transport.

One dead letter is named by its own id (the Redis stream entry's, the RabbitMQ message's)
or by the id of its task (``task_id``: what ``kiq()`` returned and the worker logged);
``lookup`` tries the first, then the second, reading a bounded number of letters."""

from __future__ import annotations

import functools
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Concatenate, ParamSpec, TypeVar

from taskiq import AsyncBroker

from asyncjobs.brokers import envelope
from asyncjobs.brokers.base import ReliableBroker
from asyncjobs.brokers.dead_letters import DeadLetter, Reason
from asyncjobs.codec import JsonFormatter
from asyncjobs.errors import BrokerError, ConfigurationError, DeadLetterNotFoundError


@dataclass(frozen=True, slots=True)
class ReplayCount:
    """One queue's part of a ``replay_all``."""

    replayed: int = 0
    skipped: int = 0  # in the snapshot, but gone by its turn (replayed or purged meanwhile)


@dataclass(frozen=True, slots=True)
class ReplayReport:
    """What ``DeadLetters.replay_all`` did, per queue and in total."""

    queues: Mapping[str, ReplayCount]

    @property
    def replayed(self) -> int:
        return sum(count.replayed for count in self.queues.values())

    @property
    def skipped(self) -> int:
        return sum(count.skipped for count in self.queues.values())


@dataclass(frozen=True, slots=True)
class Lookup:
    """What an id named: one dead letter by its own id, or every dead letter of a task by
    the task's id, oldest first (never empty)."""

    key: str
    letters: tuple[DeadLetter, ...]
    by_task_id: bool

    @property
    def newest(self) -> DeadLetter:
        return self.letters[-1]


@dataclass(frozen=True, slots=True)
class DeadLetterPage:
    """One page of a queue's dead letters, newest first (``DeadLetters.page``)."""

    letters: tuple[DeadLetter, ...]
    # Where the next (older) page starts: the last letter read. None: nothing older.
    next_before: str | None
    scanned: int  # letters read to fill it (a filter may read many)


# How many letters of each queue a lookup by id reads at most (oldest first).
SCAN = 10_000
# How many letters one filtered page reads at most: a page answers in bounded time,
# however rare the matches; the next page goes on from there.
PAGE_SCAN = 5_000

P = ParamSpec("P")
T = TypeVar("T")


def _at_home(
    method: Callable[Concatenate[DeadLetters, P], Coroutine[Any, Any, T]],
) -> Callable[Concatenate[DeadLetters, P], Coroutine[Any, Any, T]]:
    """Run the operation in the loop the broker's client lives in, whichever loop calls
    it (a view's loop may be one request's: runserver)."""

    async def at_home(self: DeadLetters, /, *args: P.args, **kwargs: P.kwargs) -> T:
        return await self.broker.home.run(method(self, *args, **kwargs))

    functools.update_wrapper(at_home, method)
    return at_home


@dataclass(frozen=True, slots=True)
class DeadLetters:
    """The dead-letter queues of a configured broker."""

    broker: ReliableBroker

    @classmethod
    def of(cls, broker: AsyncBroker) -> DeadLetters:
        if not isinstance(broker, ReliableBroker):
            raise BrokerError(f"{type(broker).__name__} is no asyncjobs broker: it keeps none")
        return cls(broker)

    def queues(self, queue: str | None) -> tuple[str, ...]:
        if queue is not None:
            self.broker.check_queue(queue)  # UnknownQueueError, naming QUEUES
            return (queue,)
        return self.broker.options.queues

    @_at_home
    async def list(
        self,
        queue: str | None = None,
        limit: int = 100,
        *,
        reason: Reason | str | None = None,
        task_name: str | None = None,
    ) -> list[DeadLetter]:
        """The oldest ``limit`` dead letters (of each queue, then overall) that match."""
        matches = _matching(reason, task_name)
        if limit <= 0:
            return []
        letters: list[DeadLetter] = []
        for name in self.queues(queue):
            if matches is None:
                letters.extend(await self.broker.dead_letters(name, limit))
                continue
            found = 0
            # A snapshot holds nothing between pages: leaving it early costs nothing.
            async for page in self.broker.dead_letter_snapshot(name):
                kept = [letter for letter in page if matches(letter)][: limit - found]
                letters.extend(kept)
                found += len(kept)
                if found >= limit:
                    break
        return sorted(letters, key=lambda letter: letter.dead_lettered_at)[:limit]

    @_at_home
    async def page(
        self,
        queue: str,
        *,
        before: str | None = None,
        size: int = 50,
        reason: Reason | str | None = None,
        task_name: str | None = None,
        scan: int = PAGE_SCAN,
    ) -> DeadLetterPage:
        """Up to ``size`` letters of ``queue`` older than the letter ``before`` (None:
        from the newest) that match ``reason`` and ``task_name``, newest first; reads at
        most ``scan`` letters when filtering (then the page may be short, and
        ``next_before`` says where to go on)."""
        matches = _matching(reason, task_name)
        self.broker.check_queue(queue)
        # Unfiltered, a page is one read; filtered, one read of ``scan`` letters (a
        # transport without ordered ids lists its whole queue per read: read once).
        batch = await self.broker.dead_letters_before(
            queue, before, size if matches is None else max(size, scan)
        )
        found: list[DeadLetter] = []
        for scanned, letter in enumerate(batch, start=1):
            if matches is None or matches(letter):
                found.append(letter)
            if len(found) == size:
                return DeadLetterPage(tuple(found), letter.id, scanned)
        more = len(batch) == (size if matches is None else max(size, scan))
        return DeadLetterPage(tuple(found), batch[-1].id if more and batch else None, len(batch))

    @_at_home
    async def counts(self, queue: str | None = None) -> dict[str, int]:
        return {name: await self.broker.dead_letter_count(name) for name in self.queues(queue)}

    @_at_home
    async def lookup(self, key: str, queue: str | None = None, scan: int = SCAN) -> Lookup:
        """The dead letter whose id is ``key``; else every dead letter of the task whose
        id is ``key`` (the ``task_id`` a send returned and the worker logged), oldest
        first. Bounded: only the oldest ``scan`` letters of each queue are read. Raises
        ``DeadLetterNotFoundError`` (saying what was searched) when none matches."""
        if not key:  # undecodable letters have no task id: "" must not name them all
            raise DeadLetterNotFoundError("an empty id names no dead letter")
        of_task: list[DeadLetter] = []
        partly: list[str] = []  # queues with letters past the scan
        for name in self.queues(queue):
            letter, matches, complete = await self._scan(name, key, scan)
            if letter is not None:
                return Lookup(key, (letter,), by_task_id=False)
            of_task += matches
            if not complete:
                partly.append(name)
        if not of_task:
            raise DeadLetterNotFoundError(await self._not_found(key, scan, partly))
        of_task.sort(key=lambda letter: letter.dead_lettered_at)  # stable: queue order kept
        return Lookup(key, tuple(of_task), by_task_id=True)

    async def _scan(
        self, queue: str, key: str, scan: int
    ) -> tuple[DeadLetter | None, Sequence[DeadLetter], bool]:
        """The letter with id ``key`` in ``queue``'s oldest ``scan``, else those of task
        ``key``; and whether the scan read the whole queue."""
        matches: list[DeadLetter] = []
        seen = 0
        # A snapshot holds nothing between pages: leaving it early costs nothing.
        async for page in self.broker.dead_letter_snapshot(queue):
            for letter in page[: scan - seen]:
                if letter.id == key:
                    return letter, [], True
                if letter.task_id == key:
                    matches.append(letter)
            seen += len(page)
            if seen > scan:
                return None, matches, False
            if seen == scan:
                return None, matches, await self.broker.dead_letter_count(queue) <= scan
        return None, matches, True

    async def _not_found(self, key: str, scan: int, partly: Sequence[str]) -> str:
        text = f"no dead letter has the id or task id {key!r}"
        if not partly:
            return text
        counts = [f"{await self.broker.dead_letter_count(name):,} in {name}" for name in partly]
        return f"{text} among the oldest {scan:,} of each queue (there are {', '.join(counts)})"

    async def find(self, key: str, queue: str | None = None, scan: int = SCAN) -> DeadLetter:
        """The dead letter whose id is ``key``, else the newest of the task whose id is
        ``key`` (see ``lookup``)."""
        return (await self.lookup(key, queue, scan)).newest

    async def replay(self, key: str, queue: str | None = None) -> DeadLetter:
        """Send a dead letter's original message back to its queue, with a fresh attempt
        count: the letter whose id is ``key``, else the newest of the task whose id is
        ``key`` (its other letters stay; see README "Dead letters")."""
        return await self.replay_letter((await self.lookup(key, queue)).newest)

    @_at_home
    async def replay_letter(self, letter: DeadLetter) -> DeadLetter:
        """Replay ``letter`` (from ``lookup`` or ``list``) if it is still there, else
        ``DeadLetterNotFoundError``."""
        await self.broker.replay_dead_letter(letter.queue, letter.id, fresh_attempts(letter.body))
        return letter

    @_at_home
    async def get(self, queue: str, dead_letter_id: str) -> DeadLetter:
        """The letter ``dead_letter_id`` of ``queue`` (by its own id only), else
        ``DeadLetterNotFoundError``."""
        self.broker.check_queue(queue)
        letter = await self.broker.dead_letter(queue, dead_letter_id)
        if letter is None:
            raise DeadLetterNotFoundError(f"no dead letter {dead_letter_id!r} in queue {queue!r}")
        return letter

    @_at_home
    async def replay_ids(
        self, queue: str, ids: Sequence[str]
    ) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """Replay the letters of ``queue`` named by their own ids, each once: (the ids
        replayed, the ids that were not there: replayed or purged by someone else, or
        never). Nothing is sent for a missing one."""
        self.broker.check_queue(queue)
        bodies: dict[str, bytes] = {}
        for letter_id in dict.fromkeys(ids):
            letter = await self.broker.dead_letter(queue, letter_id)
            if letter is not None:
                bodies[letter_id] = fresh_attempts(letter.body)
        gone = await self.broker.replay_dead_letters(queue, bodies) if bodies else set()
        replayed = tuple(i for i in bodies if i not in gone)
        return replayed, tuple(i for i in dict.fromkeys(ids) if i not in replayed)

    @_at_home
    async def replay_all(
        self,
        queue: str | None = None,
        *,
        reason: Reason | str | None = None,
        task_name: str | None = None,
    ) -> ReplayReport:
        """Replay the dead letters present when this starts (each queue's snapshot) that
        match ``reason`` and ``task_name``, each once, with a fresh attempt count.

        Letters dead-lettered meanwhile are left alone, replayed ones failing again
        included. A letter of the snapshot that is gone by its turn (another operator
        replayed or purged it) is counted as skipped, not an error.
        """
        matches = _matching(reason, task_name)
        return ReplayReport(
            {name: await self._replay_snapshot(name, matches) for name in self.queues(queue)}
        )

    async def _replay_snapshot(
        self, queue: str, matches: Callable[[DeadLetter], bool] | None
    ) -> ReplayCount:
        replayed = skipped = 0
        async for page in self.broker.dead_letter_snapshot(queue):
            bodies = {
                letter.id: fresh_attempts(letter.body)
                for letter in page
                if matches is None or matches(letter)
            }
            if bodies:
                gone = await self.broker.replay_dead_letters(queue, bodies)
                replayed += len(bodies) - len(gone)
                skipped += len(gone)
        return ReplayCount(replayed, skipped)

    @_at_home
    async def purge(self, queue: str | None = None) -> dict[str, int]:
        return {name: await self.broker.purge_dead_letters(name) for name in self.queues(queue)}


def _matching(
    reason: Reason | str | None, task_name: str | None
) -> Callable[[DeadLetter], bool] | None:
    """The filter of a listing or replay; None when it keeps every letter."""
    if reason is None and task_name is None:
        return None
    try:
        wanted = None if reason is None else Reason(reason)
    except ValueError:
        known = ", ".join(item.value for item in Reason)
        raise ConfigurationError(f"unknown dead-letter reason {reason!r}; one of {known}") from None

    def matches(letter: DeadLetter) -> bool:
        return (wanted is None or letter.reason is wanted) and (
            task_name is None or letter.task_name == task_name
        )

    return matches


def fresh_attempts(body: bytes) -> bytes:
    """The message with its attempt counter reset; an undecodable body goes back as it is
    (it is dead-lettered again unless the workers learned to read it)."""
    codec = JsonFormatter(max_payload_bytes=len(body) + 1024)
    try:
        message = codec.loads(body)
    except ValueError:
        return body
    envelope.clear_retry(message.labels)  # the dead letter keeps the history
    if message.labels_types:
        envelope.clear_retry(message.labels_types)
    return codec.dumps(message).message
