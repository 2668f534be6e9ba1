"""The worker's entry in the registry of live workers, and its per-minute counts.

``RegistryHooks`` (added by ``process_hooks.worker_hooks`` when ``MONITOR`` is on and a
store can keep them, see ``AsyncJobsConfig.effective_monitor_url``):

- on ``on_worker_ready`` it registers the worker's document (``document``) in the
  ``MonitorStore`` with a TTL of three heartbeats; a heartbeat task registers it again
  every ``MONITOR_HEARTBEAT`` seconds, so a killed worker disappears when its TTL ends;
  ``on_worker_stopped`` unregisters it (a drained worker disappears at once).
- Runs only bump an in-memory dict ((queue, outcome) -> n; a run costs a dict update):
  ``succeeded``, ``failed`` (every failed attempt, retried or not) and
  ``dead_lettered``. The heartbeat flushes them, and also wakes at each minute's start,
  so a flush never mixes two minutes: counts go to the minute their window started in.
- Once a minute the heartbeat asks the store for that minute's backlog sample; the one
  worker that gets it inspects every queue and stores each backlog.

A store that fails never stops the worker: a warning (at most one per minute) and the
counts are kept for the next flush.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import time
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

import orjson

from asyncjobs.brokers.base import Delivery
from asyncjobs.brokers.dead_letters import DeadLetter
from asyncjobs.brokers.inspection import QueueStats
from asyncjobs.brokers.stores import MonitorStore
from asyncjobs.hooks import Hooks, Outcome, Run

logger = logging.getLogger("asyncjobs.worker")

COUNTS_TTL_S = 7_200  # per-minute counts (and backlog samples) are kept 2 hours
SAMPLE_CLAIM_TTL_S = 120
SAMPLE_TIMEOUT_S = 30.0
STOP_WAIT_S = 0.5  # each of: a beat under way, the last flush, unregistering
WARN_EVERY_S = 60.0
MINUTE_MARGIN_S = 0.01  # wake just after a minute starts, never just before
SUCCEEDED, FAILED, DEAD_LETTERED = "succeeded", "failed", "dead_lettered"

Inspect = Callable[[Sequence[str]], Coroutine[Any, Any, list[QueueStats]]]


def minute_of(unix_s: float) -> int:
    return int(unix_s // 60) * 60


class RegistryHooks(Hooks):
    """See the module docstring."""

    def __init__(
        self,
        store: MonitorStore,
        inspect: Inspect,
        *,
        queues: Sequence[str],
        all_queues: Sequence[str],
        concurrency: int,
        heartbeat_s: float = 5.0,
    ) -> None:
        from asyncjobs import __version__

        self.store = store
        self._inspect = inspect
        self.heartbeat_s = heartbeat_s
        self.ttl_s = 3 * heartbeat_s
        host, pid = socket.gethostname(), os.getpid()
        self.worker_id = f"{host}:{pid}:{secrets.token_hex(3)}"
        self._static: dict[str, Any] = {
            "id": self.worker_id,
            "host": host,
            "pid": pid,
            "queues": list(queues),
            "concurrency": concurrency,
            "version": __version__,
        }
        self._all_queues = tuple(all_queues)
        self.running = 0
        self.counts: dict[tuple[str, str], int] = {}
        self._unsent: dict[int, dict[tuple[str, str], int]] = {}  # minute -> counts
        self._window = minute_of(time.time())  # the minute the counts are of
        self._started_at = time.time()
        self._sampled = 0  # the last minute whose sample this worker asked for
        self._beat: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        self._sample: asyncio.Task[None] | None = None
        self._warned_at = -WARN_EVERY_S
        self._suppressed = 0

    # -- per run: nothing but dict updates ----------------------------------------------
    async def before_run(self, run: Run) -> None:
        self.running += 1

    async def after_run(
        self, run: Run, outcome: Outcome, error: BaseException | None, duration_s: float
    ) -> None:
        self.running -= 1
        if outcome is Outcome.SUCCEEDED:
            key = (run.delivery.queue, SUCCEEDED)
        elif outcome is Outcome.RETRIED or outcome is Outcome.FAILED:
            key = (run.delivery.queue, FAILED)
        else:  # cut off, postponed: no attempt ended
            return
        counts = self.counts
        counts[key] = counts.get(key, 0) + 1

    async def on_dead_letter(self, delivery: Delivery, record: DeadLetter) -> None:
        key = (delivery.queue, DEAD_LETTERED)
        self.counts[key] = self.counts.get(key, 0) + 1

    # -- lifecycle -----------------------------------------------------------------------
    async def on_worker_ready(self) -> None:
        self._started_at = time.time()
        self._window = minute_of(self._started_at)
        await self._guarded(self._register())
        if self._beat is None or self._beat.done():
            loop = asyncio.get_running_loop()
            self._beat = loop.create_task(self._beat_forever(), name="asyncjobs-registry")

    async def on_worker_stopped(self) -> None:
        # A beat under way finishes first: cancelled in the middle of a flush, its
        # counts could reach the store and be sent again below. All of it is bounded:
        # it runs within the drain's hard margin.
        self._stop.set()
        busy = {task for task in (self._beat, self._sample) if task is not None}
        if busy:
            _, pending = await asyncio.wait(busy, timeout=STOP_WAIT_S)
            for task in pending:
                task.cancel()
        await self._guarded(asyncio.wait_for(self._flush(time.time()), STOP_WAIT_S))
        await self._guarded(asyncio.wait_for(self.store.unregister(self.worker_id), STOP_WAIT_S))

    def document(self, now: float) -> bytes:
        """The worker as the registry shows it (times in unix seconds)."""
        live = {"running": self.running, "started_at": self._started_at, "heartbeat_at": now}
        return orjson.dumps(self._static | live)

    # -- the heartbeat ---------------------------------------------------------------------
    async def _beat_forever(self) -> None:
        while not self._stop.is_set():
            now = time.time()
            next_minute = minute_of(now) + 60 + MINUTE_MARGIN_S
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), min(self.heartbeat_s, next_minute - now))
                return
            await self.beat()

    async def beat(self) -> None:
        """Flush the counts, register again, and sample the backlog if it is ours to."""
        now = time.time()
        await self._guarded(self._flush(now))
        await self._guarded(self._register(now))
        minute = minute_of(now)
        if minute != self._sampled and (self._sample is None or self._sample.done()):
            self._sampled = minute
            self._sample = asyncio.get_running_loop().create_task(self._sample_backlog(minute))

    async def _register(self, now: float | None = None) -> None:
        now = time.time() if now is None else now
        await self.store.register(self.worker_id, self.document(now), self.ttl_s)

    async def _flush(self, now: float) -> None:
        """Send what was counted since the last flush, as counts of the minute that
        window started in; what fails is kept for the next flush (up to the TTL)."""
        counts, self.counts = self.counts, {}
        window, self._window = self._window, minute_of(now)
        if counts:
            pending = self._unsent.setdefault(window, {})
            for key, n in counts.items():
                pending[key] = pending.get(key, 0) + n
        oldest = minute_of(now) - COUNTS_TTL_S
        for minute in sorted(self._unsent):
            if minute < oldest:  # expired already where it would have gone
                del self._unsent[minute]
                continue
            await self.store.add_counts(minute, self._unsent[minute], COUNTS_TTL_S)
            del self._unsent[minute]

    async def _sample_backlog(self, minute: int) -> None:
        async def sample() -> None:
            if not await self.store.claim_sample(minute, self.worker_id, SAMPLE_CLAIM_TTL_S):
                return
            stats = await asyncio.wait_for(self._inspect(self._all_queues), SAMPLE_TIMEOUT_S)
            for item in stats:
                await self.store.add_backlog(minute, item.queue, item.backlog, COUNTS_TTL_S)

        await self._guarded(sample())

    async def _guarded(self, operation: Coroutine[Any, Any, None]) -> None:
        """Await ``operation``; a failure is a warning (one a minute at most), never an
        error of the worker."""
        try:
            await operation
        except Exception as exc:
            now = time.monotonic()
            if now - self._warned_at < WARN_EVERY_S:
                self._suppressed += 1
                return
            more = f" ({self._suppressed} more since the last warning)" if self._suppressed else ""
            self._warned_at, self._suppressed = now, 0
            logger.warning(
                "the worker registry (%s) failed: %s: %s%s",
                self.store.location,
                type(exc).__name__,
                exc,
                more,
            )
