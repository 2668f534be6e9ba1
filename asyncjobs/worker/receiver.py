"""The asyncjobs receiver: taskiq's ``Receiver`` with a reliable consume loop.

Kept from taskiq: ``run_task`` and its dependency injection, middlewares, result backends.
Replaced, because taskiq's loses or hangs: the consume loop fetches only as many messages
as it can start now, and on SIGTERM stops fetching at once, lets running tasks finish
until DRAIN_TIMEOUT, then cancels the rest *without acknowledging them* and hands them
back (taskiq waits forever). What happens to each message is ``asyncjobs.worker.runs``;
the app's hooks (plus the worker's own: metrics, probes, tracing) see every step.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import Sequence
from typing import Any

from taskiq import AsyncBroker
from taskiq.receiver import Receiver

from asyncjobs.app import App, current_app
from asyncjobs.brokers.base import Delivery, ReliableBroker
from asyncjobs.errors import ConfigurationError
from asyncjobs.worker import task_log
from asyncjobs.worker.drain import Watchdog, install_signal_handlers, remove_signal_handlers
from asyncjobs.worker.outcomes import describe
from asyncjobs.worker.runs import MessageRunner
from asyncjobs.worker.settings import (
    CANCEL_GRACE_S,
    HARD_MARGIN_S,
    REFILL_SHARE,
    REFILL_WAIT_S,
    WorkerSettings,
    isolation_line,
)
from asyncjobs.worker.waiting import backoff_s, first_done

logger = logging.getLogger("asyncjobs.worker")

__all__ = ["AsyncJobsReceiver"]


def freeze_start_up() -> None:
    """Move every object alive now (Django, taskiq, pydantic's schemas, the app: they
    live as long as the process) out of the cyclic GC's reach. Every collection of the
    oldest generation walked them all, and the allocations of each message trigger
    collections: an alternating A/B of a no-op worker gave 117.5 -> 103.5 µs per task
    (issue 22). Collected first, so no garbage is frozen; a frozen object is still freed
    by reference counting."""
    gc.collect()
    gc.freeze()


class AsyncJobsReceiver(Receiver):
    def __init__(
        self,
        broker: AsyncBroker,
        *args: Any,
        settings: WorkerSettings | None = None,
        app: App | None = None,
        **kwargs: Any,
    ) -> None:
        """``taskiq worker`` builds it with the broker only: the current app's then."""
        if not isinstance(broker, ReliableBroker):
            raise ConfigurationError(
                f"the asyncjobs receiver needs an asyncjobs broker, got {type(broker).__name__}"
            )
        app = app or current_app()
        self.settings = settings or WorkerSettings.for_app(app, kwargs.get("max_async_tasks"))
        # taskiq's own semaphores are unused (our loop bounds concurrency); sizing them
        # silences its "unlimited number of async tasks" warning.
        kwargs["max_async_tasks"] = self.settings.concurrency
        super().__init__(broker, *args, **kwargs)
        self.reliable = broker
        broker.receiver_attached = True
        self.validate_params = False  # we validate once, strictly, in _validate
        self._running: dict[asyncio.Task[None], Delivery] = {}
        self._cut_off: set[asyncio.Task[None]] = set()
        self._slot_freed = asyncio.Event()
        self._draining = asyncio.Event()
        self._watchdog: Watchdog | None = None
        self._notices: set[asyncio.Task[None]] = set()
        self.hooks = app.hooks.with_hooks(*self.settings.hooks)
        task_log.install_taskiq_filter()  # a failed attempt's traceback once, in our line
        # A full worker fetches again once this many slots are free (or REFILL_WAIT_S
        # passed): one fetch per task under load was a tenth of a worker's CPU.
        self._refill = max(1, self.settings.concurrency // REFILL_SHARE)
        self.pipeline = MessageRunner(self, self.hooks, self._is_cut_off)
        self.settling = self.pipeline.settling

    # -- the consume loop --------------------------------------------------------
    async def listen(self, finish_event: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        install_signal_handlers(loop, self.request_drain)
        finish_watch = asyncio.create_task(self._drain_on(finish_event))
        if not await self._connect():
            finish_watch.cancel()
            remove_signal_handlers(loop)
            return
        await self.hooks.on_worker_ready()
        if self.settings.owns_process:
            freeze_start_up()
        logger.info(
            "worker ready: queues %s, concurrency %d, drain timeout %.0f s, loop %s",
            ",".join(self.reliable.options.listened_queues),
            self.settings.concurrency,
            self.settings.drain_timeout_s,
            type(loop).__module__.split(".")[0],
        )
        try:
            await self._consume()
        finally:
            finish_watch.cancel()
            await self._drain_running()
            await self.hooks.on_worker_stopped()
            remove_signal_handlers(loop)
            # The watchdog stays armed: taskiq closes the broker after we return, and
            # that is where a broker that stopped answering hangs.
        if self.on_exit is not None:
            self.on_exit(self)

    async def _connect(self) -> bool:
        """Start the broker, retrying with backoff: a broker that is down (or restarting)
        must not turn into a crash loop of worker processes. False if drained first."""
        failures = 0
        while not self._draining.is_set():
            try:
                # The worker's loop holds the broker client, also when taskiq started
                # the broker before (run_startup off): its tasks' sends come here.
                await self.reliable.home.claim()
                if self.run_startup:
                    await self.broker.startup()
                await self.reliable.set_capacity(self.settings.concurrency)
                return True
            except Exception as exc:
                failures += 1
                delay = backoff_s(failures)
                logger.warning(
                    "connecting to the broker failed (%s); retrying in %.1f s",
                    describe(exc),
                    delay,
                )
                await first_done(asyncio.sleep(delay), self._draining.wait())
        return False

    def request_drain(self, reason: str = "request") -> None:
        if self._draining.is_set():
            logger.info("%s while draining: still finishing and handing back", reason)
            return
        deadline = self.settings.drain_timeout_s + HARD_MARGIN_S
        logger.info(
            "%s: draining (%d running, deadline %.0f s)", reason, len(self._running), deadline
        )
        if self.settings.owns_process:
            self._watchdog = Watchdog(deadline)
            self._watchdog.start()
        self._draining.set()
        # Called from a signal handler (on the loop, not in a task): the hooks run soon.
        notice = asyncio.get_running_loop().create_task(self.hooks.on_worker_draining())
        self._notices.add(notice)
        notice.add_done_callback(self._notices.discard)

    async def _drain_on(self, finish_event: asyncio.Event) -> None:
        await finish_event.wait()  # taskiq's own handlers (SIGHUP) or a test
        self.request_drain("shutdown requested")

    async def _consume(self) -> None:
        failures = 0
        drain_wait = asyncio.create_task(self._draining.wait())
        try:
            while not self._draining.is_set():
                free = self.settings.concurrency - len(self._running)
                if free <= 0:
                    self._slot_freed.clear()
                    await first_done(self._slot_freed.wait(), drain_wait)
                    continue
                if free < self._refill:
                    free = await self._more_slots()
                fetch = asyncio.create_task(self.reliable.fetch(free, self.settings.fetch_block_s))
                await asyncio.wait({fetch, drain_wait}, return_when=asyncio.FIRST_COMPLETED)
                if not fetch.done():
                    await self._abandon_fetch(fetch)
                    return
                try:
                    deliveries = fetch.result()
                except Exception as exc:
                    await self.hooks.on_fetch_error(exc)
                    failures += 1
                    delay = backoff_s(failures)
                    logger.warning("fetching failed (%s); retrying in %.1f s", describe(exc), delay)
                    await first_done(asyncio.sleep(delay), drain_wait)
                    continue
                failures = 0
                await self.hooks.on_fetched(deliveries)
                await self._start_all(deliveries, drain_wait)
        finally:
            drain_wait.cancel()

    async def _more_slots(self) -> int:
        """Free slots, after waiting up to REFILL_WAIT_S for ``_refill`` of them.

        A full worker freed one slot at a time and fetched one message at a time: a
        round trip (and a fetch's Python) per task when tasks are short. Waiting a
        moment lets a fetch fill several slots; the wait is bounded, so long tasks
        holding the slots cost at most that much delay."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + REFILL_WAIT_S
        limit = self.settings.concurrency - self._refill
        while len(self._running) > limit and not self._draining.is_set():
            left = deadline - loop.time()
            if left <= 0:
                break
            self._slot_freed.clear()
            try:
                async with asyncio.timeout(left):
                    await self._slot_freed.wait()
            except TimeoutError:
                break
        return self.settings.concurrency - len(self._running)

    async def _start_all(
        self, deliveries: Sequence[Delivery], drain_wait: asyncio.Task[Any]
    ) -> None:
        """Start what was fetched; a repeat crash suspect runs alone.

        A suspect was held by a worker that died (or lost its connection): it may be the
        task that killed it, or only a neighbour of that task. A first-time suspect runs
        beside everything else: a mass kill (an OOM-killed pod) costs one lease and no
        stall. A message that keeps coming back (``runs_alone``) runs alone in its worker,
        which stops fetching until it ran: a crash then counts against it only, so a
        poison message is dead-lettered after MAX_DELIVERIES deliveries and never takes a
        neighbour with it (a neighbour reaches the line too, and then runs alone and
        succeeds). One per batch: the others go back for other workers.
        """
        alone: Delivery | None = None
        for delivery in deliveries:
            if not self._runs_alone(delivery):
                self._start(delivery)
            elif alone is None:
                alone = delivery
            else:
                await self.settling.release_quietly(delivery)
        if alone is None:
            return
        await self._until_idle(drain_wait)
        if self._draining.is_set():
            await self.settling.release_quietly(alone)
            return
        logger.info(
            "running a message alone: its workers died %d times while it ran",
            alone.delivery_count - 1,
        )
        self._start(alone)
        await self._until_idle(drain_wait)

    def _runs_alone(self, delivery: Delivery) -> bool:
        """A suspect on one of its last permitted deliveries (over the limit it is
        dead-lettered unrun, with nothing to isolate)."""
        limit = self.settings.max_deliveries
        return delivery.suspect and isolation_line(limit) <= delivery.delivery_count <= limit

    async def _until_idle(self, drain_wait: asyncio.Task[Any]) -> None:
        """Wait until nothing runs in this worker, or it drains."""
        while self._running and not self._draining.is_set():
            self._slot_freed.clear()
            await first_done(self._slot_freed.wait(), drain_wait)

    async def _abandon_fetch(self, fetch: asyncio.Task[Any]) -> None:
        """Cancel an in-flight fetch; anything it still returned was never started."""
        fetch.cancel()
        results = await asyncio.gather(fetch, return_exceptions=True)
        if results and isinstance(results[0], list):
            for delivery in results[0]:
                await self.settling.release_quietly(delivery)

    def _start(self, delivery: Delivery) -> None:
        task = asyncio.create_task(self.pipeline.process(delivery))
        self._running[task] = delivery
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._running.pop(task, None)
        self._cut_off.discard(task)
        self._slot_freed.set()
        if not task.cancelled() and task.exception() is not None:
            logger.error("settling a message failed", exc_info=task.exception())

    def _is_cut_off(self) -> bool:
        """Whether the calling message's task was cancelled at the drain deadline (none
        is before the deadline: then without asking asyncio for the current task, a few
        per cent of a no-op task's CPU on Python 3.11)."""
        return bool(self._cut_off) and asyncio.current_task() in self._cut_off

    async def _drain_running(self) -> None:
        try:
            await asyncio.wait_for(self.reliable.stop_consuming(), CANCEL_GRACE_S)
        except Exception as exc:
            logger.warning("stopping consumers failed: %s", exc)
        running = set(self._running)
        if running:
            logger.info(
                "waiting up to %.0f s for %d running tasks",
                self.settings.drain_timeout_s,
                len(running),
            )
            _, pending = await asyncio.wait(running, timeout=self.settings.drain_timeout_s)
            if pending:
                logger.warning(
                    "cutting off %d tasks at the drain deadline; handing them back", len(pending)
                )
                for task in pending:
                    self._cut_off.add(task)
                    task.cancel()
                await asyncio.wait(pending, timeout=CANCEL_GRACE_S)
        logger.info("drained")
