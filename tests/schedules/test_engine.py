"""Exactly once per tick, with any number of schedulers: the engine on a fake clock, its
claims in the real Redis. Hours of ticks run in a second or two."""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

import pytest
from redis.asyncio import Redis

from asyncjobs.brokers.redis.schedules import RedisScheduleStorage
from asyncjobs.schedules.claims import ClaimStore, tick_ms
from asyncjobs.schedules.definitions import Schedule, cron, every
from asyncjobs.schedules.engine import SchedulerEngine

pytestmark = pytest.mark.redis

START = datetime(2026, 11, 23, 11, 59, 30, tzinfo=UTC)


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


Sent = list[tuple[str, datetime]]


def engine_factory(
    redis_url: str,
    prefix: str,
    clock: Clock,
    schedules: Sequence[Schedule],
    sent: Sent,
    reload_s: float = 3600,
) -> Callable[[str], SchedulerEngine]:
    async def load() -> Sequence[Schedule]:
        return schedules

    storage = RedisScheduleStorage(redis_url, prefix)  # one pool, as replicas share Redis

    def make(owner: str) -> SchedulerEngine:
        async def send(schedule: Schedule, tick: datetime) -> None:
            sent.append((schedule.id, tick))

        claims = ClaimStore(storage, owner)
        return SchedulerEngine(load, claims, send, clock=clock, reload_s=reload_s)

    return make


MINUTELY = cron("* * * * *").for_task("t:minutely")
TEN_SECONDS = every(timedelta(seconds=10)).for_task("t:ten")


async def test_three_schedulers_send_each_tick_exactly_once(
    redis_url: str, prefix: str, conn: Redis
) -> None:
    clock, sent = Clock(START), []
    make = engine_factory(redis_url, prefix, clock, [MINUTELY, TEN_SECONDS], sent)
    engines = [make(f"s{i}") for i in range(3)]
    for _ in range(3 * 60 * 6):  # three hours in steps of 10 s (a slow loop, on purpose)
        clock.advance(10)
        for engine in engines:
            await engine.step()
    counts = Counter(sent)
    assert set(counts.values()) == {1}  # nothing twice
    minutes = sorted(t for s, t in counts if s == MINUTELY.id)
    tens = sorted(t for s, t in counts if s == TEN_SECONDS.id)
    first_seen, end = START + timedelta(seconds=10), clock.now
    # Nothing missed: every minute and every 10 s tick after the first step, to the end.
    assert len(minutes) == 180 and minutes[0] == datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
    assert len(tens) == (end - first_seen) // timedelta(seconds=10)
    assert all(b - a == timedelta(minutes=1) for a, b in itertools.pairwise(minutes))
    assert all(b - a == timedelta(seconds=10) for a, b in itertools.pairwise(tens))
    assert await conn.ttl(f"{prefix}:schedule:{MINUTELY.id}:{tick_ms(minutes[0])}") > 0


async def test_a_restart_within_the_minute_does_not_fire_it_again(
    redis_url: str, prefix: str
) -> None:
    clock, sent = Clock(datetime(2026, 11, 23, 12, 0, 5, tzinfo=UTC)), []
    make = engine_factory(redis_url, prefix, clock, [MINUTELY], sent)
    first = make("first")
    await first.step()  # first sight: starts now, 12:00 already passed
    clock.now = datetime(2026, 11, 23, 12, 0, 59, tzinfo=UTC)
    await first.step()
    clock.now = datetime(2026, 11, 23, 12, 1, 0, 200_000, tzinfo=UTC)
    await first.step()
    assert [t.minute for _, t in sent] == [1]
    # Killed at 12:01:00.2 after sending; a new process starts in the same minute...
    clock.now = datetime(2026, 11, 23, 12, 1, 0, 100_000, tzinfo=UTC)  # ...on a clock behind
    restarted = make("restarted")
    await restarted.step()
    clock.now = datetime(2026, 11, 23, 12, 1, 40, tzinfo=UTC)
    await restarted.step()
    assert [t.minute for _, t in sent] == [1]
    # Even a replica that saw 12:01 come due sends nothing: the claim is taken.
    late = make("late")
    late._checked_until[MINUTELY.id] = datetime(2026, 11, 23, 12, 0, 30, tzinfo=UTC)
    late._schedules = {MINUTELY.id: MINUTELY}
    late._loaded_at = clock.now
    await late.step()
    assert [t.minute for _, t in sent] == [1]


@pytest.mark.parametrize(("catch_up", "expected"), [(0, []), (2, [2, 3]), (5, [1, 2, 3])])
async def test_missed_ticks_are_caught_up_once_within_the_bound(
    redis_url: str, prefix: str, catch_up: int, expected: list[int]
) -> None:
    schedule = cron("* * * * *", catch_up=catch_up).for_task("t:nightly")
    clock, sent = Clock(datetime(2026, 11, 23, 11, 59, 50, tzinfo=UTC)), []
    make = engine_factory(redis_url, prefix, clock, [schedule], sent)
    before = make("before")
    await before.step()
    clock.now = datetime(2026, 11, 23, 12, 0, 1, tzinfo=UTC)
    await before.step()
    assert [t.minute for _, t in sent] == [0]
    # Every scheduler down from 12:00:01 to 12:03:30: 12:01, 12:02, 12:03 missed.
    clock.now = datetime(2026, 11, 23, 12, 3, 30, tzinfo=UTC)
    after = [make(f"after{i}") for i in range(3)]  # all come back at once
    for engine in after:
        await engine.step()
    assert [t.minute for _, t in sent[1:]] == expected  # each once, oldest first


async def test_a_claim_left_pending_by_a_dead_scheduler_is_taken_over(
    redis_url: str, prefix: str, conn: Redis
) -> None:
    clock, sent = Clock(datetime(2026, 11, 23, 12, 0, 30, tzinfo=UTC)), []
    make = engine_factory(redis_url, prefix, clock, [MINUTELY], sent)
    survivor = make("survivor")
    await survivor.step()
    tick = datetime(2026, 11, 23, 12, 1, tzinfo=UTC)
    key = f"{prefix}:schedule:{MINUTELY.id}:{tick_ms(tick)}"
    # The dead one claimed 12:01 a second ago and never sent: not yet taken over.
    await conn.set(key, f"pending|dead|{tick_ms(datetime.now(UTC)) - 1000}", px=86_400_000)
    clock.now = datetime(2026, 11, 23, 12, 1, 5, tzinfo=UTC)
    await survivor.step()
    assert sent == []
    # A claim pending for longer than TAKEOVER_S is taken over and sent.
    await conn.set(key, f"pending|dead|{tick_ms(datetime.now(UTC)) - 60_000}", px=86_400_000)
    survivor._checked_until[MINUTELY.id] = datetime(2026, 11, 23, 12, 0, 59, tzinfo=UTC)
    await survivor.step()
    assert sent == [(MINUTELY.id, tick)]
    assert (await conn.get(key) or b"").startswith(b"sent|survivor|")


async def test_a_failed_send_gives_the_tick_back_and_it_is_sent_next_step(
    redis_url: str, prefix: str
) -> None:
    clock = Clock(datetime(2026, 11, 23, 12, 0, 30, tzinfo=UTC))
    attempts: list[datetime] = []

    async def load() -> Sequence[Schedule]:
        return [MINUTELY]

    async def flaky_send(schedule: Schedule, tick: datetime) -> None:
        attempts.append(tick)
        if len(attempts) == 1:
            raise ConnectionError("broker down")

    claims = ClaimStore(RedisScheduleStorage(redis_url, prefix), "only")
    engine = SchedulerEngine(load, claims, flaky_send, clock=clock)
    await engine.step()
    clock.now = datetime(2026, 11, 23, 12, 1, 1, tzinfo=UTC)
    with pytest.raises(ConnectionError, match="broker down"):
        await engine.step()
    clock.advance(1)
    assert await engine.step() == [(MINUTELY.id, datetime(2026, 11, 23, 12, 1, tzinfo=UTC))]
    assert len(attempts) == 2


async def test_a_paused_schedule_sends_nothing_and_resumes_from_then(
    redis_url: str, prefix: str, redis_cleanup: None
) -> None:
    ten = every(10, catch_up=5).for_task("t:ten")  # catch_up: a pause is still not owed
    clock, sent = Clock(START), []
    engine = engine_factory(redis_url, prefix, clock, [ten, MINUTELY], sent, reload_s=10)("only")
    claims = ClaimStore(RedisScheduleStorage(redis_url, prefix), "operator")

    async def run_for(seconds: int) -> None:
        for _ in range(seconds):
            clock.advance(1)
            await engine.step()

    await run_for(60)
    assert await claims.set_paused(ten.id, True) is True
    assert await claims.set_paused(ten.id, True) is False  # already paused: no change
    paused_at = clock.now
    await run_for(180)
    await claims.set_paused(ten.id, False)
    resumed_at, sent_before = clock.now, len(sent)
    await run_for(60)
    tens = [tick for schedule_id, tick in sent if schedule_id == ten.id]
    # Honoured within the reload interval (10 s), dropped for good in between.
    quiet = [t for t in tens if paused_at + timedelta(seconds=10) < t <= resumed_at]
    assert quiet == []
    after = [t for t in tens if t > resumed_at]
    assert after and after[0] <= resumed_at + timedelta(seconds=20)  # ticks again, ...
    assert all(b - a == timedelta(seconds=10) for a, b in itertools.pairwise(after))
    # ... and never the pause's ticks: nothing sent after resuming is older than it.
    assert [t for s, t in sent[sent_before:] if s == ten.id] == after
    # The other schedule kept its rhythm throughout: every minute, once.
    minutes = [t for s, t in sent if s == MINUTELY.id]
    assert len(minutes) == 5 and len(set(minutes)) == 5


async def test_a_catch_up_after_an_outage_never_reaches_back_into_a_pause(
    redis_url: str, prefix: str, redis_cleanup: None
) -> None:
    ten = every(10, catch_up=5).for_task("t:ten")
    # The fake clock runs an hour behind the real one, the resume's (Redis's) time.
    clock, sent = Clock(datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)), []
    make = engine_factory(redis_url, prefix, clock, [ten], sent)
    claims = ClaimStore(RedisScheduleStorage(redis_url, prefix), "operator")
    before = make("before")
    for _ in range(30):
        clock.advance(1)
        await before.step()
    assert sent
    await claims.set_paused(ten.id, True)  # paused an hour (every scheduler down too)
    await claims.set_paused(ten.id, False)
    resumed = await claims.resumed_at(ten.id)
    assert resumed is not None
    clock.now = resumed + timedelta(seconds=30)  # back 30 s after the resume
    sent.clear()
    await make("after").step()
    # Without the pause: the newest 5 missed ticks, some before the resume. With it: only
    # the ticks since the resume (3).
    assert sent and len(sent) <= 3 and all(tick > resumed for _, tick in sent)
