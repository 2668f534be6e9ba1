"""Exactly-once firing: each (schedule id, tick) is claimed before it is sent.

A claim lives in the schedule storage (``asyncjobs.brokers.stores.ScheduleStorage``;
in Redis one key per claim, taken atomically by a script): the first scheduler to claim
a tick sends it, every other replica and every restart sees the claim and does not.
Claims expire (a few periods of the schedule, at least a day), so nothing piles up.

A claim is ``pending`` until its message is sent, then ``sent``. A scheduler that dies
between claiming and sending leaves a pending claim; once it is older than
``TAKEOVER_S`` another scheduler takes it over and sends. A scheduler that dies after
sending but before marking it sent is the one case that sends twice (at least once,
never lost); the message's task id is the same both times (``{id}:{tick_ms}``), so a task
can tell.

The storage keeps the newest tick sent per schedule: after an outage of every
scheduler, a schedule with ``catch_up`` sends the missed ticks since then — but never
from before its latest resume: the ticks of a pause are dropped, not missed.
"""

from __future__ import annotations

from datetime import UTC, datetime

from asyncjobs.brokers.stores import ScheduleStorage

TAKEOVER_S = 30.0
MIN_CLAIM_TTL_S = 86_400.0
LAST_TTL_S = 90 * 86_400  # a removed schedule's last tick is forgotten after 90 days


def tick_ms(tick: datetime) -> int:
    return round(tick.timestamp() * 1000)


class ClaimStore:
    """One scheduler's claims (``owner``: its stable name) in a schedule storage."""

    def __init__(self, storage: ScheduleStorage, owner: str) -> None:
        self.storage = storage
        self.owner = owner.replace("|", "/")

    async def claim(self, schedule_id: str, tick: datetime, period_s: float) -> bool:
        """True if this scheduler is to send ``tick`` of the schedule."""
        ttl_ms = int(max(MIN_CLAIM_TTL_S, 3 * period_s) * 1000)
        return await self.storage.claim(
            schedule_id, tick_ms(tick), self.owner, ttl_ms, int(TAKEOVER_S * 1000)
        )

    async def sent(self, schedule_id: str, tick: datetime) -> None:
        await self.storage.mark_sent(schedule_id, tick_ms(tick), self.owner, LAST_TTL_S)

    async def release(self, schedule_id: str, tick: datetime) -> None:
        await self.storage.release(schedule_id, tick_ms(tick), self.owner)

    async def last_sent(self, schedule_id: str) -> datetime | None:
        last = await self.storage.last_sent_ms(schedule_id)
        return None if last is None else datetime.fromtimestamp(last / 1000, UTC)

    async def paused(self) -> set[str]:
        """The ids of the paused schedules (static or dynamic)."""
        return await self.storage.paused()

    async def set_paused(self, schedule_id: str, paused: bool) -> bool:
        """Pause or resume ``schedule_id``; whether that changed anything."""
        return await self.storage.set_paused(schedule_id, paused, LAST_TTL_S)

    async def resumed_at(self, schedule_id: str) -> datetime | None:
        resumed = await self.storage.resumed_ms(schedule_id)
        return None if resumed is None else datetime.fromtimestamp(resumed / 1000, UTC)
