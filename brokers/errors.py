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


class UnknownQueueError(BrokerError, KeyError):
    """A message was routed to a queue that is not configured."""

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0]) if self.args else "unknown queue"


class DeadLetterNotFoundError(BrokerError, LookupError):
    """No dead letter has that id."""
