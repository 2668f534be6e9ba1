"""What the worker writes down about a message it cannot run or a failed attempt: the log
excerpt of an error, the dead-letter record."""

from __future__ import annotations

import logging
import time
import traceback
from typing import Any

from taskiq.message import TaskiqMessage

from asyncjobs.brokers.base import Delivery
from asyncjobs.brokers.dead_letters import MAX_TRACEBACK_CHARS, DeadLetter, Reason

logger = logging.getLogger("asyncjobs.worker")

MAX_ERROR_MESSAGE_CHARS = 2000


class DeliveryDefect(ValueError):
    """What the dead letter of a message with a bad envelope records as its error (see
    ``asyncjobs.brokers.base.Defect``)."""


def describe(error: BaseException | None) -> str:
    """``Type: message`` for logs, the message cut to 300 characters."""
    if error is None:
        return ""
    text = str(error)
    return f"{type(error).__qualname__}: {text[:300]}" if text else type(error).__qualname__


def traceback_of(error: BaseException | None) -> str:
    """The tail of the error's traceback (where it was raised), for the dead letter."""
    if error is None or error.__traceback__ is None:
        return ""
    return "".join(traceback.format_exception(error))[-MAX_TRACEBACK_CHARS:]


def dead_letter_record(
    delivery: Delivery,
    message: TaskiqMessage | None,
    reason: Reason,
    error: BaseException | None,
    attempts: int = 0,
    history: tuple[dict[str, Any], ...] = (),
) -> DeadLetter:
    return DeadLetter(
        body=delivery.data,
        queue=delivery.queue,
        reason=reason,
        error_type=type(error).__qualname__ if error is not None else "",
        error_message=str(error)[:MAX_ERROR_MESSAGE_CHARS] if error is not None else "",
        traceback=traceback_of(error),
        task_id=message.task_id if message else "",
        task_name=message.task_name if message else "",
        attempts=attempts,
        deliveries=delivery.delivery_count,
        history=history,
        dead_lettered_at=time.time(),
    )
