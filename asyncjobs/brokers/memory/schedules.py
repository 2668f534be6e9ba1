"""Dynamic schedules and the schedulers' claims in this process (``memory://``).

The same semantics as the Redis storage (``asyncjobs.brokers.redis.schedules``), each
step atomic under the server's lock where Redis runs a script: a claim of (schedule id,
tick) is ``(state, owner, since ms)``; the first ``claim`` takes it (``pending``), a
pending claim older than ``takeover_ms`` is taken over, ``mark_sent`` makes the owner's
claim final (``sent``, its expiry kept) and keeps the newest tick sent for
``last_ttl_s``, and ``release`` drops the owner's pending claim. Claims expire after
``ttl_ms``. ``set_paused`` keeps the paused ids (and the time of a resume).
Shared by every storage of the URL and key prefix in the process, like
the queues.
"""

from __future__ import annotations

import time

from asyncjobs.brokers.memory.server import server_for
from asyncjobs.brokers.stores import ScheduleStorage

PENDING, SENT = "pending", "sent"


class MemoryScheduleStorage(ScheduleStorage):
    def __init__(self, url: str, key_prefix: str) -> None:
        self.server = server_for(url, key_prefix)
        self.location = f"the in-process schedules of {url} (key prefix {key_prefix})"

    # -- dynamic schedules -------------------------------------------------------
    async def put(self, schedule_id: str, body: bytes) -> None:
        with self.server.lock:
            self.server.schedules[schedule_id] = bytes(body)

    async def delete(self, schedule_id: str) -> bool:
        with self.server.lock:
            return self.server.schedules.pop(schedule_id, None) is not None

    async def get(self, schedule_id: str) -> bytes | None:
        with self.server.lock:
            return self.server.schedules.get(schedule_id)

    async def all(self) -> dict[str, bytes]:
        with self.server.lock:
            return dict(self.server.schedules)

    # -- claims ------------------------------------------------------------------
    async def claim(
        self, schedule_id: str, tick_ms: int, owner: str, ttl_ms: int, takeover_ms: int
    ) -> bool:
        key, now = (schedule_id, tick_ms), now_ms()
        with self.server.lock:
            held = self.server.claims.get(key)
            if held is not None:
                state, _, since = held
                if state != PENDING or now - since <= takeover_ms:
                    return False
            self.server.claims.set(key, (PENDING, owner, now), ttl_ms / 1000)
            return True

    async def mark_sent(self, schedule_id: str, tick_ms: int, owner: str, last_ttl_s: int) -> None:
        key = (schedule_id, tick_ms)
        with self.server.lock:
            held = self.server.claims.get(key)
            if held is not None and held[:2] == (PENDING, owner):
                self.server.claims.keep(key, (SENT, owner, now_ms()))
            last = self.server.last_sent.get(schedule_id)
            if last is None or tick_ms > last:
                self.server.last_sent.set(schedule_id, tick_ms, last_ttl_s)
            else:  # an older tick: the newest stays, for another last_ttl_s
                self.server.last_sent.set(schedule_id, last, last_ttl_s)

    async def release(self, schedule_id: str, tick_ms: int, owner: str) -> None:
        key = (schedule_id, tick_ms)
        with self.server.lock:
            held = self.server.claims.get(key)
            if held is not None and held[:2] == (PENDING, owner):
                self.server.claims.pop(key)

    async def last_sent_ms(self, schedule_id: str) -> int | None:
        with self.server.lock:
            return self.server.last_sent.get(schedule_id)

    # -- pauses ------------------------------------------------------------------
    async def set_paused(self, schedule_id: str, paused: bool, resumed_ttl_s: int) -> bool:
        with self.server.lock:
            was = schedule_id in self.server.paused
            if paused:
                self.server.paused.add(schedule_id)
            elif was:
                self.server.paused.discard(schedule_id)
                self.server.resumed.set(schedule_id, now_ms(), resumed_ttl_s)
            return was != paused

    async def paused(self) -> set[str]:
        with self.server.lock:
            return set(self.server.paused)

    async def resumed_ms(self, schedule_id: str) -> int | None:
        with self.server.lock:
            return self.server.resumed.get(schedule_id)


def now_ms() -> int:
    return round(time.time() * 1000)
