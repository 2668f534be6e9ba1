"""Dead letters as a first-class place: list, show, replay, purge, on any transport."""

from __future__ import annotations

import functools
from collections.abc import Callable, Coroutine, Mapping
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
    async def counts(self, queue: str | None = None) -> dict[str, int]:
        return {name: await self.broker.dead_letter_count(name) for name in self.queues(queue)}

    @_at_home
    async def find(
        self, dead_letter_id: str, queue: str | None = None, scan: int = 10_000
    ) -> DeadLetter:
        for name in self.queues(queue):
            for letter in await self.broker.dead_letters(name, scan):
                if letter.id == dead_letter_id:
                    return letter
        raise DeadLetterNotFoundError(f"no dead letter with id {dead_letter_id!r}")

    @_at_home
    async def replay(self, dead_letter_id: str, queue: str | None = None) -> DeadLetter:
        """Send the original message back to its queue, with a fresh attempt count."""
        letter = await self.find(dead_letter_id, queue)
        await self.broker.replay_dead_letter(letter.queue, letter.id, fresh_attempts(letter.body))
        return letter

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
