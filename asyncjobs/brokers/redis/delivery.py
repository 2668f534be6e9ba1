"""A message read from a Redis stream and how it is settled (see ``redis.broker``).

A settlement that moves the entry (dead letter, hand-back, release, retry) is one atomic
transaction (XADD elsewhere + XACK + XDEL, or ZADD + XACK + XDEL), retried through a
dropped connection until the lease would have expired; an ack is merged with the other
acks of its event-loop step. The entry's fields are whoever wrote it's: its delivery
count is parsed defensively (``prior_deliveries``).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, cast

from asyncjobs.brokers.base import Defect, Delivery
from asyncjobs.brokers.dead_letters import DeadLetter, Reason, excerpt
from asyncjobs.brokers.redis.connection import retrying
from asyncjobs.brokers.redis.delayed import delayed_key, delayed_member, due_score
from asyncjobs.brokers.redis.streams import (
    DATA,
    DELIVERIES,
    GROUP,
    HANDED_BACK,
    dead_letter_key,
)

if TYPE_CHECKING:
    from asyncjobs.brokers.redis.broker import RedisStreamsBroker

logger = logging.getLogger("asyncjobs.broker.redis")


class RedisDelivery(Delivery):
    __slots__ = ("broker", "entry_id", "stream")

    def __init__(
        self,
        broker: RedisStreamsBroker,
        stream: str,
        entry_id: bytes,
        fields: dict[bytes, bytes],
        queue: str,
    ) -> None:
        prior = prior_deliveries(fields)
        super().__init__(
            fields.get(DATA, b""),
            queue,
            1 + (prior or 0),
            _entry_time(entry_id),
            # The lease reclaim re-adds entries with data and count only: no flag.
            suspect=bool(prior) and fields.get(HANDED_BACK) != b"1",
            defect=None if prior is not None else _bad_count(fields),
        )
        self.broker = broker
        self.stream = stream
        self.entry_id = entry_id

    def _forget(self) -> None:
        self.broker.held.pop((self.stream, self.entry_id), None)

    async def _ack(self) -> None:
        # Merged with every other ack of this event-loop step (one round trip for all),
        # retried through a dropped connection until the lease would have expired.
        await self.broker.settler.acknowledge(self.stream, GROUP, self.entry_id)

    async def _dead_letter(self, record: DeadLetter, payload: bytes) -> None:
        target = dead_letter_key(self.broker.options.key_prefix, self.queue)
        await self._move(target, {b"record": payload})

    async def _hand_back(self) -> None:
        # A copy at the end of the stream is visible to every consumer at once; the
        # delivery count travels with it so crash loops are still counted.
        await self._move(
            self.stream, {DATA: self.data, DELIVERIES: self.delivery_count, HANDED_BACK: 1}
        )

    async def _release(self) -> None:
        fields: dict[bytes, bytes | int] = {DATA: self.data, DELIVERIES: self.delivery_count - 1}
        if not self.suspect:  # still no suspect when it comes back
            fields[HANDED_BACK] = 1
        await self._move(self.stream, fields)

    async def _republish(self, body: bytes) -> None:
        await self._move(self.stream, {DATA: body, DELIVERIES: 0})

    async def _retry_at(self, body: bytes, due_unix_s: float) -> None:
        key = delayed_key(self.broker.options.key_prefix, self.queue)
        member = delayed_member(body)  # built once: a retried ZADD adds nothing twice
        steps = [
            ("zadd", (key, {member: due_score(due_unix_s)})),
            ("xack", (self.stream, GROUP, self.entry_id)),
            ("xdel", (self.stream, self.entry_id)),
        ]
        await self._settle_with(steps)
        self.broker.delayed.wake()

    async def _move(self, target: str, fields: dict[bytes, bytes | int]) -> None:
        steps = [
            ("xadd", (target, cast(dict[Any, Any], fields))),
            ("xack", (self.stream, GROUP, self.entry_id)),
            ("xdel", (self.stream, self.entry_id)),
        ]
        await self._settle_with(steps)

    async def _settle_with(self, steps: list[tuple[str, tuple[Any, ...]]]) -> None:
        """Run the settlement atomically; through a dropped connection or a Redis restart, retry it
        until the lease would have expired (after that, the entry is someone else's)."""

        async def settle() -> None:
            async with self.broker.redis().pipeline(transaction=True) as pipe:
                for name, args in steps:
                    getattr(pipe, name)(*args)
                await pipe.execute()

        def warn(exc: Exception) -> None:
            logger.warning("settling %s failed (%s); retrying", self.entry_id.decode(), exc)

        await retrying(settle, self.broker.options.lease_timeout_s, warn)


MAX_COUNT_DIGITS = 9


def prior_deliveries(fields: dict[bytes, bytes]) -> int | None:
    """The entry's ``deliveries`` field: 0 when absent (a raw taskiq producer), None when
    it is not a plain non-negative count. Fields are input from whoever wrote the entry:
    a negative count would defeat MAX_DELIVERIES, a non-number must not break a fetch."""
    raw = fields.get(DELIVERIES)
    if raw is None:
        return 0
    if raw.isdigit() and len(raw) <= MAX_COUNT_DIGITS:  # ASCII digits only (bytes)
        return int(raw)
    return None


def _bad_count(fields: dict[bytes, bytes]) -> Defect:
    shown = excerpt(fields.get(DELIVERIES, b""), 40)
    return Defect(
        Reason.BAD_DELIVERY_COUNT,
        f"stream field 'deliveries' is {shown!r}, not a count of 0 to {MAX_COUNT_DIGITS} digits",
    )


def _entry_time(entry_id: bytes) -> float | None:
    """When the entry was added (unix seconds): an auto id is ``<ms>-<seq>``. A message
    moved in from the delayed set was added when it became due."""
    try:
        return int(entry_id.split(b"-", 1)[0]) / 1000
    except ValueError:
        return None
