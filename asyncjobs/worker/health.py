"""Liveness and readiness of a worker process, for Kubernetes probes.

- **Liveness** proves the event loop runs: a heartbeat task on the loop stamps the time
  every ``LIVENESS_TIMEOUT / 4``; the probe (answered from a thread, so it answers even
  when the loop is stuck) fails once the stamp is older than ``LIVENESS_TIMEOUT``. A task
  that blocks the loop (``time.sleep`` in ``async def``) fails it; a long but well-behaved
  task does not. Before the worker is connected the probe passes (the loop is busy
  retrying the broker; use a startup probe or an initial delay for slow starts).
- **Readiness** says the worker consumes: connected, not draining, and its last fetch
  from the broker succeeded (a fetch returns at least every few seconds when idle).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from asyncjobs.brokers.base import Delivery
from asyncjobs.hooks import Hooks

# A fetch waits at most a few seconds (WorkerSettings.fetch_block_s, 2 s) before it
# returns empty-handed: no successful fetch for this long means the broker is not there.
FETCH_SILENCE_S = 15.0


@dataclass(frozen=True, slots=True)
class ProbeResult:
    ok: bool
    detail: dict[str, Any]


class HealthHooks(Hooks):
    """The worker's health as its hooks tell it; probes read it from any thread."""

    def __init__(self, liveness_timeout_s: float, *, fetch_silence_s: float = FETCH_SILENCE_S):
        self.liveness_timeout_s = liveness_timeout_s
        self.fetch_silence_s = fetch_silence_s
        self._lock = threading.Lock()
        self._beat = time.monotonic()
        self._ready = False
        self._draining = False
        self._last_fetch: float | None = None
        self._fetch_error: str | None = None
        self._heartbeat: asyncio.Task[None] | None = None

    # -- hooks (on the worker's loop) --------------------------------------------
    async def on_worker_ready(self) -> None:
        with self._lock:
            self._ready, self._beat = True, time.monotonic()
        if self._heartbeat is None or self._heartbeat.done():
            self._heartbeat = asyncio.get_running_loop().create_task(
                self._beat_forever(), name="asyncjobs-heartbeat"
            )

    async def on_fetched(self, deliveries: Sequence[Delivery]) -> None:
        with self._lock:
            self._last_fetch, self._fetch_error = time.monotonic(), None

    async def on_fetch_error(self, error: BaseException) -> None:
        with self._lock:
            self._fetch_error = f"{type(error).__name__}: {error}"[:300]

    async def on_worker_draining(self) -> None:
        with self._lock:
            self._draining = True

    async def on_worker_stopped(self) -> None:
        if self._heartbeat is not None:
            self._heartbeat.cancel()
        with self._lock:
            self._ready = False

    async def _beat_forever(self) -> None:
        period = max(0.05, self.liveness_timeout_s / 4)
        with contextlib.suppress(asyncio.CancelledError):
            while True:
                with self._lock:
                    self._beat = time.monotonic()
                await asyncio.sleep(period)

    # -- probes (any thread) --------------------------------------------------------
    def liveness(self) -> ProbeResult:
        with self._lock:
            age = time.monotonic() - self._beat
            started = self._ready or self._draining
        ok = not started or age <= self.liveness_timeout_s
        return ProbeResult(ok, {"heartbeat_age_s": round(age, 3), "started": started})

    def readiness(self) -> ProbeResult:
        with self._lock:
            now = time.monotonic()
            silent = None if self._last_fetch is None else now - self._last_fetch
            detail: dict[str, Any] = {
                "connected": self._ready,
                "draining": self._draining,
                "last_fetch_age_s": None if silent is None else round(silent, 3),
                "fetch_error": self._fetch_error,
            }
            ok = (
                self._ready
                and not self._draining
                and self._fetch_error is None
                and (silent is None or silent <= self.fetch_silence_s)
            )
        return ProbeResult(ok, detail)
