"""The one error tree, rooted at ``AsyncJobsError``.

Transport errors are defined in the lowest layer (``asyncjobs.brokers.errors``) and
re-exported here, so ``except asyncjobs.errors.AsyncJobsError`` catches everything asyncjobs raises.
"""

from __future__ import annotations

from taskiq.exceptions import TaskiqResultTimeoutError

from asyncjobs.brokers.errors import (
    AsyncJobsError,
    BrokerConnectionError,
    BrokerError,
    ConfigurationError,
    DeadLetterNotFoundError,
    JoinTimeoutError,
    ResultMissingError,
    SendOutcomeUnknownError,
    UnknownQueueError,
)

__all__ = [
    "ArgumentsError",
    "AsyncJobsError",
    "BrokerConnectionError",
    "BrokerError",
    "ConfigurationError",
    "DeadLetterNotFoundError",
    "JoinTimeoutError",
    "MonitorUnavailableError",
    "NoEventLoopError",
    "NotConfiguredError",
    "PayloadTooLargeError",
    "Reject",
    "ResultMissingError",
    "ResultTimeoutError",
    "ResultsDisabledError",
    "ScheduleNotFoundError",
    "SendOutcomeUnknownError",
    "SerializationError",
    "SyncInEventLoopError",
    "UnknownQueueError",
]


class NoEventLoopError(AsyncJobsError, RuntimeError):
    """``kiq()`` was called where no event loop runs: use ``kiq_sync()``."""


class SyncInEventLoopError(AsyncJobsError, RuntimeError):
    """``kiq_sync()`` was called inside a running event loop: use ``await kiq()``."""


class ArgumentsError(AsyncJobsError, TypeError):
    """The arguments do not fit the task's signature; nothing was sent."""


class NotConfiguredError(AsyncJobsError, RuntimeError):
    """A task was sent before asyncjobs knew its broker."""


class PayloadTooLargeError(AsyncJobsError, ValueError):
    """``kiq()`` refused a message over ``MAX_PAYLOAD_BYTES``; nothing was sent."""


class SerializationError(AsyncJobsError, TypeError):
    """An argument cannot be encoded as JSON; nothing was sent."""


class Reject(AsyncJobsError):
    """Raise from a task to fail it for good: no retry, straight to the dead-letter queue."""


class ScheduleNotFoundError(AsyncJobsError, LookupError):
    """No static or dynamic schedule has that id (the message names it)."""


class ResultTimeoutError(AsyncJobsError, TaskiqResultTimeoutError):
    """``wait_result(timeout=...)`` ran out of time (also taskiq's error, so existing
    ``except TaskiqResultTimeoutError`` clauses still catch it)."""

    __template__ = (
        "no result for task {task_id} within {timeout:g} s: the task has not finished yet, "
        "or the result backend did not answer in time"
    )
    task_id: str
    timeout: float | None


class ResultsDisabledError(ConfigurationError):
    """A result was asked for where no result store is configured (RabbitMQ without
    ``RESULT_BACKEND_URL``): nothing keeps results, so there is none to read."""

    @classmethod
    def reading(cls, what: str) -> ResultsDisabledError:
        """The error for reading ``what`` (e.g. "the result of task 1f2e...")."""
        return cls(
            f"cannot read {what}: results are off, no result store is configured "
            "(RabbitMQ keeps no results). Set RESULT_BACKEND_URL to a redis:// URL (the "
            "setting ASYNCJOBS['RESULT_BACKEND_URL'] or the environment variable "
            "ASYNCJOBS_RESULT_BACKEND_URL) for wait_result(), get_result(), is_ready() "
            "and failed_attempts() to work; tasks run the same without it"
        )


class MonitorUnavailableError(AsyncJobsError):
    """The workers' registry or counters were asked for where nothing keeps them:
    ``MONITOR`` is off, or no configured URL names a store that can (RabbitMQ alone)."""

    @classmethod
    def monitor_off(cls) -> MonitorUnavailableError:
        return cls(
            "the worker registry and per-minute counters are off: MONITOR is false "
            "(ASYNCJOBS['MONITOR'] or the environment variable ASYNCJOBS_MONITOR)"
        )

    @classmethod
    def no_store(cls, transport: str) -> MonitorUnavailableError:
        return cls(
            f"no store keeps the worker registry and per-minute counters: {transport} "
            "cannot; set RESULT_BACKEND_URL to a redis:// URL (the setting "
            "ASYNCJOBS['RESULT_BACKEND_URL'] or the environment variable "
            "ASYNCJOBS_RESULT_BACKEND_URL), and workers keep them there"
        )
