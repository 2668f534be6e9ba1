"""What happens in a worker, for observers (health probes, metrics).

The receiver calls a ``WorkerEvents`` dispatcher at each step; observers subclass
``WorkerObserver`` and override what they need. An observer that raises is logged and
otherwise ignored: watching the worker must never change what it does with a message.
All calls come from the worker's event loop and must not block.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from enum import StrEnum

from taskiq.message import TaskiqMessage

from asyncjobs.brokers.base import Delivery
from asyncjobs.brokers.dead_letters import Reason
from asyncjobs.retries import Decision

logger = logging.getLogger("asyncjobs.worker")


class Outcome(StrEnum):
    """How one run of a task ended."""

    SUCCEEDED = "succeeded"
    RETRIED = "retried"  # failed; the next attempt is scheduled
    FAILED = "failed"  # failed for good: dead-lettered
    CUT_OFF = "cut_off"  # still running at the drain deadline: cancelled, handed back


class WorkerObserver:
    """Override what you need; every method is a no-op here."""

    def ready(self) -> None:
        """Connected to the broker; about to consume."""

    def fetched(self, deliveries: Sequence[Delivery]) -> None:
        """A fetch returned (possibly nothing, after its wait): the broker answers."""

    def fetch_failed(self, error: BaseException) -> None:
        """A fetch raised: the broker is unreachable or failing."""

    def draining(self) -> None:
        """SIGTERM or SIGINT (or a test) asked the worker to stop."""

    def stopped(self) -> None:
        """The consume loop ended and running tasks are settled or handed back."""

    def task_started(self, delivery: Delivery, message: TaskiqMessage) -> None:
        """A message is about to run (its arguments are valid, its task known)."""

    def task_finished(
        self, delivery: Delivery, message: TaskiqMessage, outcome: Outcome, duration_s: float
    ) -> None:
        """A run ended (``duration_s``: the task's own run time)."""

    def task_failed(
        self,
        delivery: Delivery,
        message: TaskiqMessage,
        error: BaseException | None,
        decision: Decision,
    ) -> None:
        """A run failed; ``decision``: retried (after ``delay_s``) or given up. Called
        before the retry is sent (``message`` is what will be sent: tracing adds its
        context) or the message dead-lettered; ``task_finished`` follows."""

    def dead_lettered(self, delivery: Delivery, task_name: str, reason: Reason) -> None:
        """A message went to the dead letters, run or not (undecodable, unknown task...)."""


class WorkerEvents:
    """Calls every observer, shielding the worker from their errors."""

    def __init__(self, observers: Iterable[WorkerObserver] = ()) -> None:
        self.observers: list[WorkerObserver] = list(observers)

    def add(self, observer: WorkerObserver) -> None:
        self.observers.append(observer)

    def ready(self) -> None:
        self._each("ready")

    def fetched(self, deliveries: Sequence[Delivery]) -> None:
        self._each("fetched", deliveries)

    def fetch_failed(self, error: BaseException) -> None:
        self._each("fetch_failed", error)

    def draining(self) -> None:
        self._each("draining")

    def stopped(self) -> None:
        self._each("stopped")

    def task_started(self, delivery: Delivery, message: TaskiqMessage) -> None:
        self._each("task_started", delivery, message)

    def task_finished(
        self, delivery: Delivery, message: TaskiqMessage, outcome: Outcome, duration_s: float
    ) -> None:
        self._each("task_finished", delivery, message, outcome, duration_s)

    def task_failed(
        self,
        delivery: Delivery,
        message: TaskiqMessage,
        error: BaseException | None,
        decision: Decision,
    ) -> None:
        self._each("task_failed", delivery, message, error, decision)

    def dead_lettered(self, delivery: Delivery, task_name: str, reason: Reason) -> None:
        self._each("dead_lettered", delivery, task_name, reason)

    def _each(self, event: str, *args: object) -> None:
        for observer in self.observers:
            try:
                getattr(observer, event)(*args)
            except Exception:
                logger.exception("worker observer %r failed on %s", observer, event)
