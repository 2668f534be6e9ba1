"""The one error tree of asyncjobs.

The root lives in the lowest layer so that transports and schedules can raise into it
without importing the kernel; ``asyncjobs.errors`` re-exports every class here.
Messages say what to do, and never contain a password.
"""

from __future__ import annotations


class AsyncJobsError(Exception):
    """Root of every error asyncjobs raises."""


class ConfigurationError(AsyncJobsError, ValueError):
    """A setting is missing or invalid; the message names the setting."""


class BrokerError(AsyncJobsError):
    """The transport failed to do what was asked."""


class BrokerConnectionError(BrokerError, ConnectionError):
    """The broker cannot be reached (the URL in the message is redacted)."""


class SendOutcomeUnknownError(BrokerError):
    """A send was written to the broker (or may have been) and never confirmed in time:
    the broker may have the message and its task may run, although ``kiq()`` raised.

    ``task_id`` and ``queue`` say which message; look for that task id (its result, the
    worker's logs) before sending again: delivery is at least once, and a second send of
    the same task is a second message."""

    def __init__(self, message: str, task_id: str = "", queue: str = "") -> None:
        super().__init__(message)
        self.task_id = task_id
        self.queue = queue

    @classmethod
    def unconfirmed(
        cls, *, task_id: str, queue: str, where: str, reason: str
    ) -> SendOutcomeUnknownError:
        """The error for task ``task_id``'s message to ``queue`` at ``where`` (a redacted
        URL), unconfirmed because of ``reason``."""
        return cls(
            f"task {task_id}: the message to queue {queue!r} at {where} was sent but not "
            f"confirmed ({reason}), so it may have been delivered and the task may run. "
            f"Look for task id {task_id} (its result, the worker's logs) before sending "
            "it again: delivery is at least once, and a new send is a second message",
            task_id,
            queue,
        )


class UnknownQueueError(BrokerError, KeyError):
    """A message was routed to a queue that is not configured."""

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0]) if self.args else "unknown queue"


class ResultMissingError(BrokerError, LookupError):
    """No result is stored for the task: not finished yet, or expired."""


class JoinTimeoutError(BrokerError, TimeoutError):
    """Waiting for a queue to be done ran out of time with work left (the message says
    what)."""


class DeadLetterNotFoundError(BrokerError, LookupError):
    """No dead letter has that id."""
