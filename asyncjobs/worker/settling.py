"""How a run's outcome reaches the broker: the result stored and the delivery acked, the
next attempt scheduled, the message dead-lettered with its history, or given back.

Every settlement is what the transport confirmed: a log line or a hook that says a
message was dead-lettered or retried comes only after the broker has it. A delivery
that cannot even be given back is abandoned: the transport redelivers it (Redis: once
its lease expires; RabbitMQ: when its channel closes).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from taskiq import AsyncBroker
from taskiq.abc.middleware import TaskiqMiddleware
from taskiq.result import TaskiqResult
from taskiq.utils import maybe_awaitable

from asyncjobs.brokers import envelope
from asyncjobs.brokers.base import Delivery
from asyncjobs.brokers.dead_letters import DeadLetter, Reason
from asyncjobs.brokers.stores import ResultStore
from asyncjobs.errors import PayloadTooLargeError, SerializationError
from asyncjobs.hooks import HookSet, Outcome, Run, Settlement
from asyncjobs.retries import history_with, policy_for
from asyncjobs.tracing.conventions import without_trace_context
from asyncjobs.worker import task_log
from asyncjobs.worker.limits import Limits
from asyncjobs.worker.outcomes import dead_letter_record, describe
from asyncjobs.worker.settings import CANCEL_GRACE_S, WorkerSettings

logger = logging.getLogger("asyncjobs.worker")


class Settling:
    def __init__(self, broker: AsyncBroker, settings: WorkerSettings, hooks: HookSet) -> None:
        self.broker = broker
        self.settings = settings
        self.hooks = hooks

    async def succeeded(self, run: Run, result: TaskiqResult[Any]) -> Outcome:
        await self.save(run, result)
        await run.delivery.ack()
        await self.hooks.on_settled(run.delivery, Settlement.ACKED)
        return Outcome.SUCCEEDED

    async def failed(self, run: Run, result: TaskiqResult[Any], limits: Limits) -> Outcome:
        """Retry after a backoff, or dead-letter, per the task's policy and limits."""
        message, error, attempt = run.message, result.error, run.attempt
        policy = policy_for(
            self.broker.find_task(message.task_name), limits.max_attempts, self.settings.backoff
        )
        history = history_with(run.envelope.history, error, attempt)
        decision = policy.decide(error, attempt)
        await self._record_attempt(message.task_id, history[-1])
        envelope.set_history(message.labels, history)
        if result.labels is not message.labels:  # the final result shows the history too
            envelope.set_history(result.labels, history)
        give_up, final_error = decision.give_up, error
        if give_up is None:
            envelope.set_retry(message.labels, attempt + 1, history)
            await self.hooks.on_retry(run, error, decision.delay_s)  # may add labels
            try:
                body = self.broker.formatter.dumps(message).message
            except (PayloadTooLargeError, SerializationError) as exc:
                # Labels from the sender (a number the encoder refuses) or the history
                # pushing it over MAX_PAYLOAD_BYTES: it cannot be sent again.
                give_up, final_error = Reason.NOT_RETRYABLE, exc
            else:
                await run.delivery.retry_at(body, time.time() + decision.delay_s)
                task_log.retrying(run, policy.max_attempts, error, decision.delay_s)
                await self.hooks.on_settled(run.delivery, Settlement.RETRY_SCHEDULED)
                return Outcome.RETRIED
        await self.save(run, result)
        record = await self._dead_letter(
            run.delivery, run, give_up, final_error, attempts=attempt, history=history
        )
        why = describe(final_error) if final_error is not error else ""
        task_log.gave_up(run, policy.max_attempts, error, record, why)
        await self._dead_lettered(run.delivery, record)
        return Outcome.FAILED

    async def postpone(self, run: Run, delay_s: float) -> None:
        """Send the message again as it came, ``delay_s`` from now (a ``before_run`` hook
        asked): no attempt was made, so its attempt count stays."""
        await run.delivery.retry_at(run.delivery.data, time.time() + delay_s)
        task_log.postponed(run, delay_s)
        await self.hooks.on_settled(run.delivery, Settlement.POSTPONED)

    async def cut_off(self, run: Run) -> Outcome:
        await run.delivery.hand_back()
        task_log.cut_off(run)
        await self.hooks.on_settled(run.delivery, Settlement.HANDED_BACK)
        return Outcome.CUT_OFF

    async def save(self, run: Run, result: TaskiqResult[Any]) -> None:
        """Store the result, best effort: a result store that is down must not keep the
        message from being settled (the log says so)."""
        message = run.message
        result.labels = without_trace_context(result.labels)  # the message's own labels
        try:
            await self.broker.result_backend.set_result(message.task_id, result)
        except Exception as exc:
            logger.error(
                "storing the result of %s [%s] failed: %s", message.task_name, message.task_id, exc
            )
            return
        for middleware in reversed(self.broker.middlewares):
            if type(middleware).post_save is not TaskiqMiddleware.post_save:
                await maybe_awaitable(middleware.post_save(message, result))

    async def dead_letter(
        self, delivery: Delivery, run: Run | None, reason: Reason, error: BaseException | None
    ) -> None:
        """Dead-letter a message that did not run (``run``: None when it could not be
        decoded)."""
        record = await self._dead_letter(delivery, run, reason, error)
        task_log.not_run(record, error)
        await self._dead_lettered(delivery, record)

    async def _dead_letter(
        self,
        delivery: Delivery,
        run: Run | None,
        reason: Reason,
        error: BaseException | None,
        attempts: int = 0,
        history: envelope.History = (),
    ) -> DeadLetter:
        message = run.message if run is not None else None
        record = dead_letter_record(delivery, message, reason, error, attempts, history)
        await delivery.dead_letter(record)  # raises if it is not: the log must be true
        return record

    async def _dead_lettered(self, delivery: Delivery, record: DeadLetter) -> None:
        await self.hooks.on_dead_letter(delivery, record)
        await self.hooks.on_settled(delivery, Settlement.DEAD_LETTERED)

    async def release_quietly(self, delivery: Delivery) -> None:
        """Give back a delivery never started (uncounted); abandon it if that fails."""
        try:
            await asyncio.wait_for(delivery.release(), CANCEL_GRACE_S)
        except Exception as exc:
            delivery.abandon()
            logger.warning("giving a message back failed (%s); it will be redelivered", exc)
            return
        await self.hooks.on_settled(delivery, Settlement.RELEASED)

    async def hand_back_quietly(self, delivery: Delivery) -> None:
        """Give back a delivery that ran (counted); abandon it if that fails. Shielded:
        called while the message's own task is being cancelled."""
        try:
            await asyncio.shield(asyncio.wait_for(delivery.hand_back(), CANCEL_GRACE_S))
        except (Exception, asyncio.CancelledError) as exc:
            delivery.abandon()
            logger.warning("handing a message back failed (%s); it will be redelivered", exc)
            return
        await self.hooks.on_settled(delivery, Settlement.HANDED_BACK)

    async def _record_attempt(self, task_id: str, entry: dict[str, Any]) -> None:
        """Best effort: a retry must not wait for, or fail with, a result store that is
        down; the log line has the same facts."""
        store = self.broker.result_backend
        if not isinstance(store, ResultStore):
            return
        try:
            await store.record_attempt(task_id, entry)
        except Exception as exc:
            logger.warning("recording the failed attempt of [%s] failed: %s", task_id, exc)
