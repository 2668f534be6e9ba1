"""How a run's outcome reaches the broker: the result stored and the delivery acked, the
next attempt scheduled, or the message dead-lettered with its history.

Every settlement is what the transport confirmed: a log line or an event that says a
message was dead-lettered or retried comes only after the broker has it.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from taskiq import AsyncBroker
from taskiq.abc.middleware import TaskiqMiddleware
from taskiq.message import TaskiqMessage
from taskiq.result import TaskiqResult
from taskiq.utils import maybe_awaitable

from asyncjobs.brokers.base import Delivery
from asyncjobs.brokers.dead_letters import Reason, excerpt
from asyncjobs.errors import PayloadTooLargeError, SerializationError
from asyncjobs.retries import ATTEMPT_LABEL, HISTORY_LABEL, attempt_of, history_with, policy_for
from asyncjobs.tracing.conventions import without_trace_context
from asyncjobs.worker.events import Outcome, WorkerEvents
from asyncjobs.worker.limits import Limits
from asyncjobs.worker.outcomes import dead_letter_record, describe, record_attempt
from asyncjobs.worker.settings import WorkerSettings

logger = logging.getLogger("asyncjobs.worker")


class Settling:
    def __init__(self, broker: AsyncBroker, settings: WorkerSettings, events: WorkerEvents):
        self.broker = broker
        self.settings = settings
        self.events = events

    async def succeeded(
        self, delivery: Delivery, message: TaskiqMessage, result: TaskiqResult[Any]
    ) -> Outcome:
        await self.save(message, result)
        await delivery.ack()
        return Outcome.SUCCEEDED

    async def failed(
        self,
        delivery: Delivery,
        message: TaskiqMessage,
        result: TaskiqResult[Any],
        limits: Limits,
    ) -> Outcome:
        """Retry after a backoff, or dead-letter, per the task's policy and limits."""
        error, attempt = result.error, attempt_of(message.labels)
        policy = policy_for(
            self.broker.find_task(message.task_name), limits.max_attempts, self.settings.backoff
        )
        history = history_with(message.labels, error, attempt)
        decision = policy.decide(error, attempt)
        logger.warning(
            "task %s [%s] failed on attempt %d/%d: %s; %s",
            message.task_name,
            message.task_id,
            attempt,
            policy.max_attempts,
            describe(error),
            decision.describe(),
        )
        await record_attempt(self.broker.result_backend, message.task_id, history[-1])
        message.labels[HISTORY_LABEL] = list(history)
        if result.labels is not message.labels:  # the final result shows the history too
            result.labels[HISTORY_LABEL] = list(history)
        self.events.task_failed(delivery, message, error, decision)
        give_up, final_error = decision.give_up, error
        if give_up is None:
            message.labels[ATTEMPT_LABEL] = attempt + 1
            try:
                body = self.broker.formatter.dumps(message).message
            except (PayloadTooLargeError, SerializationError) as exc:
                # Labels from the sender (a number the encoder refuses) or the history
                # pushing it over MAX_PAYLOAD_BYTES: it cannot be sent again.
                give_up, final_error = Reason.NOT_RETRYABLE, exc
            else:
                await delivery.retry_at(body, time.time() + decision.delay_s)
                return Outcome.RETRIED
        await self.save(message, result)
        await self.dead_letter(
            delivery, message, give_up, final_error, attempts=attempt, history=history
        )
        return Outcome.FAILED

    async def save(self, message: TaskiqMessage, result: TaskiqResult[Any]) -> None:
        """Store the result, best effort: a result store that is down must not keep the
        message from being settled (the log says so)."""
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
        self,
        delivery: Delivery,
        message: TaskiqMessage | None,
        reason: Reason,
        error: BaseException | None,
        attempts: int = 0,
        history: tuple[dict[str, Any], ...] = (),
    ) -> None:
        record = dead_letter_record(delivery, message, reason, error, attempts, history)
        await delivery.dead_letter(record)  # raises if it is not: the log must be true
        logger.warning(
            "dead-lettered %s [%s] from queue %s: %s%s; payload starts %r",
            record.task_name or "a message",
            record.task_id or "no id",
            delivery.queue,
            reason.value,
            f" ({describe(error)})" if error is not None else "",
            excerpt(delivery.data),
        )
        self.events.dead_lettered(delivery, record.task_name, reason)
