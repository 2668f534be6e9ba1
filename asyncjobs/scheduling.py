"""The scheduler process: ``taskiq scheduler asyncjobs.django.worker:scheduler``.

Taskiq's own scheduler loop decides ticks from the wall clock and in-memory "last run"
times: two replicas fire every job twice, a restart within the minute fires again, and a
send that times out is dropped. Ours keeps taskiq's CLI and process but gives it no
sources; our engine (``asyncjobs.schedules.engine``) runs beside it, claiming every (schedule,
tick) in Redis before sending, so any number of replicas send each tick once.

Where the transport needs a process for delayed messages to become due (Redis: they wait
in a sorted set), the scheduler runs its promoter for every queue, like workers do for
theirs: with workers scaled to zero, a due retry still becomes backlog that the
autoscaler sees.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Sequence
from datetime import datetime

from taskiq import AsyncBroker
from taskiq.scheduler.scheduler import TaskiqScheduler

from asyncjobs.app import current_app
from asyncjobs.brokers import envelope
from asyncjobs.brokers.background import BackgroundLoop
from asyncjobs.brokers.base import process_name
from asyncjobs.errors import ConfigurationError
from asyncjobs.schedules.claims import ClaimStore, tick_ms
from asyncjobs.schedules.definitions import Schedule
from asyncjobs.schedules.engine import SchedulerEngine
from asyncjobs.schedules.store import ScheduleStore, unknown_task_message
from asyncjobs.tasks import registered_tasks

logger = logging.getLogger("asyncjobs.scheduler")

STOP_TIMEOUT_S = 5.0


class AsyncJobsScheduler(TaskiqScheduler):
    def __init__(self, broker: AsyncBroker) -> None:
        super().__init__(broker, sources=[])
        self.engine: SchedulerEngine | None = None
        self._stop: asyncio.Event | None = None
        self._running: asyncio.Task[None] | None = None
        self._promoter: BackgroundLoop | None = None
        self._store: ScheduleStore | None = None
        self._warned: set[str] = set()

    async def startup(self) -> None:
        await self.broker.startup()
        app = current_app()
        config = app.config
        url = config.effective_schedule_store_url
        if not url:
            raise ConfigurationError(
                "the scheduler keeps its claims in Redis: set SCHEDULE_STORE_URL (or "
                "RESULT_BACKEND_URL) to a redis:// URL"
            )
        store = self._store = ScheduleStore.from_url(url, config.key_prefix)

        async def load() -> Sequence[Schedule]:
            return self._known([*app.schedules, *await store.list()])

        claims = ClaimStore(store.storage, owner=process_name())
        self.engine = SchedulerEngine(load, claims, self._send)
        self._stop = asyncio.Event()
        self._running = asyncio.create_task(self.engine.run(self._stop), name="asyncjobs-scheduler")
        # Due delayed messages of every queue move while the scheduler runs, when the
        # transport needs a process for that (Redis): workers scaled to zero see them.
        self._promoter = app.broker.promoter(config.queues)
        if self._promoter is not None:
            self._promoter.start()
        _stop_on_sigterm()
        logger.info("scheduler ready: %d static schedules", len(app.schedules))

    async def shutdown(self) -> None:
        if self._stop is not None:
            self._stop.set()
        if self._running is not None:
            await asyncio.wait({self._running}, timeout=STOP_TIMEOUT_S)
        if self._promoter is not None:
            await self._promoter.stop()
        if self._store is not None:
            await self._store.aclose()
        await self.broker.shutdown()

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
        await send_schedule(schedule, tick, task_id=f"{schedule.id}:{tick_ms(tick)}")


async def send_schedule(schedule: Schedule, tick: datetime, *, task_id: str | None = None) -> str:
    """Send one message of ``schedule``'s task, as the scheduler does for ``tick``: its
    arguments, the labels ``schedule_id`` and ``schedule_tick``, ``task_id`` (None: a
    fresh one, as ``run now`` sends). The task id sent."""
    job = registered_tasks().get(schedule.task_name)
    if job is None:
        raise ConfigurationError(unknown_task_message(schedule.task_name, registered_tasks()))
    kicker = job.kicker().with_labels(**envelope.schedule_labels(schedule.id, tick))
    if task_id is not None:
        kicker = kicker.with_task_id(task_id)
    handle = await kicker.kiq(*schedule.args, **dict(schedule.kwargs))
    return handle.task_id


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
