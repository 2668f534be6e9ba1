"""The dead-letter part of the port (``asyncjobs dlq``, the console's pages), which every
``ReliableBroker`` implements; split from ``base`` to keep each module one idea.

A transport implements the abstract methods; ``dead_letter`` and ``dead_letters_before``
have defaults built on the snapshot that a transport with ordered ids overrides."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Mapping

from asyncjobs.brokers.dead_letters import DeadLetter, older_than
from asyncjobs.brokers.errors import DeadLetterNotFoundError


class DeadLetterQueues(ABC):
    @abstractmethod
    async def dead_letters(self, queue: str, limit: int = 100) -> list[DeadLetter]:
        """The oldest ``limit`` dead letters of ``queue``, each with its ``id``."""

    @abstractmethod
    async def dead_letter_count(self, queue: str) -> int:
        """How many dead letters ``queue`` holds."""

    @abstractmethod
    def dead_letter_snapshot(
        self, queue: str, page_size: int = 500
    ) -> AsyncIterator[list[DeadLetter]]:
        """The dead letters ``queue`` holds when the first page is read, oldest first, in
        pages of the transport's choosing (about ``page_size``; RabbitMQ: one page, see
        ``amqp_dead_letters``). Letters dead-lettered later are not in it; letters removed
        meanwhile may still be."""

    async def dead_letter(self, queue: str, dead_letter_id: str) -> DeadLetter | None:
        """The dead letter ``dead_letter_id`` of ``queue``, None when it is not there. This
        default reads a snapshot; Redis reads the one entry."""
        async for page in self.dead_letter_snapshot(queue):
            for letter in page:
                if letter.id == dead_letter_id:
                    return letter
        return None

    async def dead_letters_before(
        self, queue: str, before: str | None, count: int
    ) -> list[DeadLetter]:
        """Up to ``count`` dead letters of ``queue`` older than the letter ``before``
        (None: from the newest), newest first: a page of the console. This default reads
        a whole snapshot (RabbitMQ lists its queue anyway); Redis reads only the page."""
        return await older_than(self.dead_letter_snapshot(queue), before, count)

    @abstractmethod
    async def replay_dead_letters(self, queue: str, bodies: Mapping[str, bytes]) -> set[str]:
        """For each dead letter id in ``bodies``: send its body to ``queue`` again, then
        remove the dead letter (a crash in between leaves a duplicate, never a loss).
        The ids that were not there (replayed or deleted by someone else): nothing is
        sent for them."""

    async def replay_dead_letter(self, queue: str, dead_letter_id: str, body: bytes) -> None:
        """``replay_dead_letters`` for one. Raises ``DeadLetterNotFoundError``."""
        if await self.replay_dead_letters(queue, {dead_letter_id: body}):
            raise DeadLetterNotFoundError(f"no dead letter {dead_letter_id!r} in queue {queue!r}")

    @abstractmethod
    async def delete_dead_letter(self, queue: str, dead_letter_id: str) -> None:
        """Remove one dead letter. Raises ``DeadLetterNotFoundError``."""

    @abstractmethod
    async def purge_dead_letters(self, queue: str) -> int:
        """Remove every dead letter of ``queue``; how many there were."""
