"""The scheduler process: ``taskiq scheduler asyncjobs.django.worker:scheduler``.

Taskiq's own scheduler loop decides ticks from the wall clock and in-memory "last run"
times: two replicas fire every job twice, a restart within the minute fires again, and a
send that times out is dropped. Ours keeps taskiq's CLI and process but gives it no
sources; our engine (``asyncjobs.schedules.engine``) runs beside it, claiming every (schedule,
tick) in Redis before sending, so any number of replicas send each tick once.

On Redis the scheduler also moves due delayed messages and retries of every queue into
their streams, like workers do: with workers scaled to zero, a due retry still becomes
backlog that the autoscaler sees.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from redis.asyncio import Redis
from taskiq import AsyncBroker
from taskiq.scheduler.scheduler import TaskiqScheduler

from asyncjobs.app import current_config
from asyncjobs.brokers.redis.broker import RedisStreamsBroker, consumer_name, stream_key
from asyncjobs.brokers.redis.connection import connection_pool
from asyncjobs.brokers.redis.delayed import DelayedPromoter, delayed_key
from asyncjobs.errors import ConfigurationError
from asyncjobs.schedules.claims import ClaimStore, tick_ms
from asyncjobs.schedules.definitions import Schedule
from asyncjobs.schedules.engine import SchedulerEngine
from asyncjobs.schedules.registry import static_schedules
from asyncjobs.schedules.store import ScheduleStore
from asyncjobs.tasks import registered_tasks

logger = logging.getLogger("asyncjobs.scheduler")

STOP_TIMEOUT_S = 5.0
SCHEDULE_ID_LABEL = "schedule_id"
SCHEDULE_TICK_LABEL = "schedule_tick"  # the tick's ISO 8601 UTC time: a task's idempotency key


class AsyncJobsScheduler(TaskiqScheduler):
    def __init__(self, broker: AsyncBroker) -> None:
        super().__init__(broker, sources=[])
        self.engine: SchedulerEngine | None = None
        self._stop: asyncio.Event | None = None
        self._running: asyncio.Task[None] | None = None
        self._promoter: DelayedPromoter | None = None
        self._pool: Any = None
        self._warned: set[str] = set()

    async def startup(self) -> None:
        await self.broker.startup()
        config = current_config()
        url = config.effective_schedule_store_url
        if not url:
            raise ConfigurationError(
                "the scheduler keeps its claims in Redis: set SCHEDULE_STORE_URL (or "
                "RESULT_BACKEND_URL) to a redis:// URL"
            )
        self._pool = connection_pool(url)
        store = ScheduleStore(self._redis, config.key_prefix)

        async def load() -> Sequence[Schedule]:
            return self._known([*static_schedules(config), *await store.list()])

        claims = ClaimStore(self._redis, config.key_prefix, owner=consumer_name())
        self.engine = SchedulerEngine(load, claims, self._send)
        self._stop = asyncio.Event()
        self._running = asyncio.create_task(self.engine.run(self._stop), name="asyncjobs-scheduler")
        if isinstance(self.broker, RedisStreamsBroker):
            prefix = config.key_prefix
            pairs = [(delayed_key(prefix, q), stream_key(prefix, q)) for q in config.queues]
            self._promoter = DelayedPromoter(self.broker.redis, pairs)
            self._promoter.start()
        _stop_on_sigterm()
        logger.info("scheduler ready: %d static schedules", len(static_schedules(config)))

    async def shutdown(self) -> None:
        if self._stop is not None:
            self._stop.set()
        if self._running is not None:
            await asyncio.wait({self._running}, timeout=STOP_TIMEOUT_S)
        if self._promoter is not None:
            await self._promoter.stop()
        if self._pool is not None:
            await self._pool.disconnect()
        await self.broker.shutdown()

    def _redis(self) -> Redis:
        return Redis(connection_pool=self._pool)

    def _known(self, schedules: Sequence[Schedule]) -> list[Schedule]:
        """Schedules of tasks this process knows; others are logged once and left out."""
        tasks = registered_tasks()
        known = [s for s in schedules if s.task_name in tasks]
        for schedule in schedules:
            if schedule.task_name not in tasks and schedule.id not in self._warned:
                self._warned.add(schedule.id)
                logger.error("schedule %s names an unknown task: skipped", schedule.describe())
        return known

    async def _send(self, schedule: Schedule, tick: datetime) -> None:
        job = registered_tasks()[schedule.task_name]
        kicker = (
            job.kicker()
            .with_task_id(f"{schedule.id}:{tick_ms(tick)}")
            .with_labels(**{SCHEDULE_ID_LABEL: schedule.id, SCHEDULE_TICK_LABEL: tick.isoformat()})
        )
        await kicker.kiq(*schedule.args, **dict(schedule.kwargs))


def _stop_on_sigterm() -> None:
    """taskiq's scheduler command has no SIGTERM handler (the process just dies, leaving a
    pending claim for another replica to take over after a while): cancel the main task
    instead, which taskiq's command turns into a clean shutdown."""
    main = asyncio.current_task()
    if main is None:
        return
    loop = asyncio.get_running_loop()
    with contextlib.suppress(NotImplementedError, RuntimeError):
        loop.add_signal_handler(signal.SIGTERM, main.cancel)
