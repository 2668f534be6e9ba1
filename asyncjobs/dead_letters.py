"""Dead letters as a first-class place: list, show, replay, purge, on any transport."""

from __future__ import annotations

from dataclasses import dataclass

from taskiq import AsyncBroker

from asyncjobs.codec import JsonFormatter
from asyncjobs.errors import BrokerError, DeadLetterNotFoundError
from asyncjobs.retries import ATTEMPT_LABEL, HISTORY_LABEL
from brokers.base import ReliableBroker
from brokers.dead_letters import DeadLetter


@dataclass(frozen=True, slots=True)
class DeadLetters:
    """The dead-letter queues of a configured broker."""

    broker: ReliableBroker

    @classmethod
    def of(cls, broker: AsyncBroker) -> DeadLetters:
        if not isinstance(broker, ReliableBroker):
            raise BrokerError(
                f"{type(broker).__name__} keeps no dead letters (memory:// runs tasks inline)"
            )
        return cls(broker)

    def queues(self, queue: str | None) -> tuple[str, ...]:
        if queue is not None:
            self.broker.queue_of({"queue_name": queue})  # UnknownQueueError, naming QUEUES
            return (queue,)
        return self.broker.options.queues

    async def list(self, queue: str | None = None, limit: int = 100) -> list[DeadLetter]:
        letters: list[DeadLetter] = []
        for name in self.queues(queue):
            letters.extend(await self.broker.dead_letters(name, limit))
        return sorted(letters, key=lambda letter: letter.dead_lettered_at)[:limit]

    async def counts(self, queue: str | None = None) -> dict[str, int]:
        return {name: await self.broker.dead_letter_count(name) for name in self.queues(queue)}

    async def find(
        self, dead_letter_id: str, queue: str | None = None, scan: int = 10_000
    ) -> DeadLetter:
        for name in self.queues(queue):
            for letter in await self.broker.dead_letters(name, scan):
                if letter.id == dead_letter_id:
                    return letter
        raise DeadLetterNotFoundError(f"no dead letter with id {dead_letter_id!r}")

    async def replay(self, dead_letter_id: str, queue: str | None = None) -> DeadLetter:
        """Send the original message back to its queue, with a fresh attempt count."""
        letter = await self.find(dead_letter_id, queue)
        await self.broker.replay_dead_letter(letter.queue, letter.id, fresh_attempts(letter.body))
        return letter

    async def replay_all(self, queue: str | None = None) -> int:
        replayed = 0
        for name in self.queues(queue):
            while letters := await self.broker.dead_letters(name, 100):
                for letter in letters:
                    await self.broker.replay_dead_letter(
                        name, letter.id, fresh_attempts(letter.body)
                    )
                    replayed += 1
        return replayed

    async def purge(self, queue: str | None = None) -> dict[str, int]:
        return {name: await self.broker.purge_dead_letters(name) for name in self.queues(queue)}


def fresh_attempts(body: bytes) -> bytes:
    """The message with its attempt counter reset; an undecodable body goes back as it is
    (it is dead-lettered again unless the workers learned to read it)."""
    codec = JsonFormatter(max_payload_bytes=len(body) + 1024)
    try:
        message = codec.loads(body)
    except ValueError:
        return body
    for label in (ATTEMPT_LABEL, HISTORY_LABEL):  # the dead letter keeps the history
        message.labels.pop(label, None)
        if message.labels_types:
            message.labels_types.pop(label, None)
    return codec.dumps(message).message
