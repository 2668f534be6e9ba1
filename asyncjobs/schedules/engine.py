"""The scheduler loop: find the ticks that came due, claim each, send the claimed ones.

Every replica runs the same loop over the same schedules; the claims (``ClaimStore``)
make each (schedule, tick) go out once. The loop wakes a little after each second (a
tick is late by at most ``POLL_S`` plus the send) and reloads the schedule list (static
ones and the store's) every ``RELOAD_S``. The clock is injectable: tests run days of
cron ticks in milliseconds.

Missed ticks: a schedule seen for the first time by this process starts at "now" — with
``catch_up = n`` it also sends the newest ``n`` ticks after the newest one any scheduler
sent (``ClaimStore.last_sent``), so an outage of every scheduler drops nothing it covers.

Paused schedules (``ClaimStore.paused``, reloaded with the list) send nothing; their
ticks are dropped for good, not caught up: a resumed schedule starts from the moment
this process sees the resume (and a catch-up never reaches back before the resume).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime

from asyncjobs.schedules.claims import ClaimStore
from asyncjobs.schedules.definitions import Schedule

logger = logging.getLogger("asyncjobs.scheduler")

POLL_S = 1.0
RELOAD_S = 10.0

Send = Callable[[Schedule, datetime], Awaitable[None]]
Load = Callable[[], Awaitable[Sequence[Schedule]]]
Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


class SchedulerEngine:
    def __init__(
        self,
        load: Load,
        claims: ClaimStore,
        send: Send,
        *,
        clock: Clock = utc_now,
        poll_s: float = POLL_S,
        reload_s: float = RELOAD_S,
    ) -> None:
        self._load = load
        self._claims = claims
        self._send = send
        self._clock = clock
        self._poll_s = poll_s
        self._reload_s = reload_s
        self._schedules: dict[str, Schedule] = {}
        self._checked_until: dict[str, datetime] = {}
        self._paused: set[str] = set()
        self._loaded_at: datetime | None = None
        self.sent: list[tuple[str, datetime]] = []  # this process's sends (logs, tests)

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.step()
            except Exception as exc:  # Redis or the broker down: try again next poll
                logger.warning("scheduler step failed (%s: %s)", type(exc).__name__, exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self._sleep_s())

    async def step(self) -> list[tuple[str, datetime]]:
        """Send what is due now; the (schedule id, tick) pairs this call sent."""
        now = self._clock()
        if self._loaded_at is None or (now - self._loaded_at).total_seconds() >= self._reload_s:
            await self._reload(now)
        sent: list[tuple[str, datetime]] = []
        for schedule_id, schedule in self._schedules.items():
            if schedule_id in self._paused:
                self._checked_until[schedule_id] = now  # its ticks are dropped, not owed
                continue
            after = self._checked_until.get(schedule_id)
            if after is None:
                after = await self._start_of(schedule, now)
            for tick in schedule.ticks(after, now):
                if await self._fire(schedule, tick):
                    sent.append((schedule_id, tick))
            self._checked_until[schedule_id] = now
        return sent

    async def _reload(self, now: datetime) -> None:
        schedules = {s.id: s for s in await self._load()}
        self._paused = await self._claims.paused()
        for gone in set(self._schedules) - set(schedules):
            self._checked_until.pop(gone, None)
        self._schedules, self._loaded_at = schedules, now

    async def _start_of(self, schedule: Schedule, now: datetime) -> datetime:
        """Where a schedule new to this process starts: now, or back to the newest tick
        any scheduler sent when it catches up (the newest ``catch_up`` missed ticks)."""
        if schedule.catch_up == 0:
            return now
        last = await self._claims.last_sent(schedule.id)
        resumed = await self._claims.resumed_at(schedule.id)
        if last is not None and resumed is not None:
            last = max(last, resumed)  # the ticks of a pause are not caught up
        if last is None or last >= now:
            return now
        missed = list(schedule.ticks(last, now))
        if len(missed) > schedule.catch_up:
            dropped = len(missed) - schedule.catch_up
            logger.warning("%s: %d missed ticks beyond catch_up skipped", schedule.id, dropped)
            return missed[-schedule.catch_up - 1]
        return last

    async def _fire(self, schedule: Schedule, tick: datetime) -> bool:
        if not await self._claims.claim(schedule.id, tick, schedule.period_s()):
            return False  # another replica has it, or had it
        try:
            await self._send(schedule, tick)
        except Exception:
            await self._claims.release(schedule.id, tick)  # the next step tries again
            raise
        await self._claims.sent(schedule.id, tick)
        self.sent.append((schedule.id, tick))
        logger.info("sent %s for tick %s", schedule.describe(), tick.isoformat())
        return True

    def _sleep_s(self) -> float:
        # Just after the next whole second: interval ticks fall on whole seconds.
        fraction = self._clock().timestamp() % 1.0
        return min(self._poll_s, max(0.01, 1.0 - fraction + 0.005))
