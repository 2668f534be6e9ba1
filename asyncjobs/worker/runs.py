"""One message through the worker: decode it, refuse what must not run, run its task
with its limits, settle the outcome; the hooks see every step.

Kept from taskiq: ``Receiver.run_task`` for sync tasks (the thread pool) and tasks with
dependencies (``asyncjobs.worker.task_call`` calls the others directly, to the same
result), middlewares' ``pre_execute``/``post_execute``. Replaced,
because taskiq's loses or hangs: an undecodable message, an unknown task name, a bad
delivery count, too many deliveries and arguments that do not fit are dead-lettered with
a reason (taskiq acks and drops them, logging the raw payload); a failed attempt is
retried per the task's policy or dead-lettered (``asyncjobs.worker.settling``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from taskiq.abc.middleware import TaskiqMiddleware
from taskiq.utils import maybe_awaitable

from asyncjobs.arguments import ArgumentValidator, InvalidArguments
from asyncjobs.brokers import envelope
from asyncjobs.brokers.base import Delivery
from asyncjobs.brokers.dead_letters import Reason
from asyncjobs.hooks import HookSet, Outcome, Postpone, Run
from asyncjobs.retries import running_attempt
from asyncjobs.worker import task_log
from asyncjobs.worker.limits import Limits, limits_for
from asyncjobs.worker.outcomes import DeliveryDefect, describe
from asyncjobs.worker.settling import Settling
from asyncjobs.worker.task_call import call_task, is_direct

if TYPE_CHECKING:
    from asyncjobs.worker.receiver import AsyncJobsReceiver

logger = logging.getLogger("asyncjobs.worker")


class MessageRunner:
    """The per-message pipeline of a receiver (its ``run_task`` runs the task)."""

    def __init__(
        self, receiver: AsyncJobsReceiver, hooks: HookSet, is_cut_off: Callable[[], bool]
    ) -> None:
        self.receiver = receiver
        self.broker = receiver.broker
        self.settings = receiver.settings
        self.hooks = hooks
        self.settling = Settling(self.broker, self.settings, hooks)
        self._is_cut_off = is_cut_off
        self._targets: dict[str, tuple[Any, bool]] = {}  # name: (function, is_direct)
        self._validators: dict[str, ArgumentValidator] = {}

    async def process(self, delivery: Delivery) -> None:
        """Run and settle one delivery; give it back if settling it failed."""
        try:
            await self._run(delivery)
        except asyncio.CancelledError:
            await self.settling.hand_back_quietly(delivery)
            raise
        except Exception as exc:
            # A bug of ours or a broker error while settling: the delivery is still open
            # (a failed settlement does not count), so give it back; its delivery count
            # grows, so this cannot loop past MAX_DELIVERIES.
            logger.error(
                "settling a message from queue %s failed (%s); handing it back",
                delivery.queue,
                describe(exc),
                exc_info=exc,
            )
            await self.settling.hand_back_quietly(delivery)

    async def _run(self, delivery: Delivery) -> None:
        try:
            message = self.broker.formatter.loads(delivery.data)
        except Exception as exc:
            await self.settling.dead_letter(delivery, None, Reason.UNDECODABLE, exc)
            return
        run = Run(delivery, message, envelope.Envelope.read(message.labels))
        task_log.received(run)
        task = self.broker.find_task(message.task_name)
        refused = self._refusal(run, task)
        if refused is not None:
            reason, error = refused
            await self.settling.dead_letter(delivery, run, reason, error)
            return
        assert task is not None  # refused otherwise
        limits = self.limits(task, run)
        envelope.set_timeout(message.labels, limits.timeout_s)  # what run_task enforces
        target, direct = self._target(message.task_name, task.original_func)
        await self._execute(run, target, direct, limits)

    def limits(self, task: Any, run: Run) -> Limits:
        """The limits this run of ``task`` gets (a local test run may turn retries off)."""
        return limits_for(task, run.envelope, self.settings.max_attempts)

    def _refusal(self, run: Run, task: Any) -> tuple[Reason, BaseException | None] | None:
        """Why this message must not run (it is dead-lettered instead); None: it may.
        Valid arguments are converted to the task's types in place."""
        delivery, message = run.delivery, run.message
        if delivery.defect is not None:
            return delivery.defect.reason, DeliveryDefect(delivery.defect.detail)
        if task is None:
            return Reason.UNKNOWN_TASK, None
        if delivery.delivery_count > self.settings.max_deliveries:
            return Reason.MAX_DELIVERIES, None
        validator = self._validator(message.task_name, task.original_func)
        try:
            message.args, message.kwargs = validator.validate(message.args, message.kwargs)
        except InvalidArguments as exc:
            return Reason.INVALID_ARGUMENTS, exc
        return None

    async def _execute(self, run: Run, target: Any, direct: bool, limits: Limits) -> None:
        for middleware in self.broker.middlewares:
            if type(middleware).pre_execute is not TaskiqMiddleware.pre_execute:
                run.message = await maybe_awaitable(middleware.pre_execute(run.message))
        try:
            await self.hooks.before_run(run)
        except Postpone as postpone:
            await self.settling.postpone(run, postpone.delay_s)
            await self.hooks.after_run(run, Outcome.POSTPONED, None, 0.0)
            return
        began = time.monotonic()
        with running_attempt(run.attempt):
            result = await call_task(self.receiver, target, run.message, direct)
        duration_s = time.monotonic() - began
        run.error = result.error if result.is_err else None
        for middleware in reversed(self.broker.middlewares):
            if type(middleware).post_execute is not TaskiqMiddleware.post_execute:
                await maybe_awaitable(middleware.post_execute(run.message, result))
        if self._is_cut_off():
            outcome = await self.settling.cut_off(run)
        elif result.is_err:
            outcome = await self.settling.failed(run, result, limits)
        else:
            outcome = await self.settling.succeeded(run, result)
            task_log.succeeded(run, duration_s)
        await self.hooks.after_run(run, outcome, run.error, duration_s)

    # -- per-task caches --------------------------------------------------------
    def _validator(self, name: str, func: Any) -> ArgumentValidator:
        validator = self._validators.get(name)
        if validator is None:
            validator = self._validators[name] = ArgumentValidator(func)
        return validator

    def _target(self, name: str, func: Any) -> tuple[Any, bool]:
        """The task's function as the hooks wrap it, and whether ``call_task`` may call
        it directly."""
        target = self._targets.get(name)
        if target is None:
            if name not in self.receiver.known_tasks:  # registered after start: its deps
                self.receiver._prepare_task(name, func)
            wrapped = self.hooks.wrap_task(func)
            direct = is_direct(self.receiver, name, wrapped)
            target = self._targets[name] = (wrapped, direct)
        return target
