"""Retry policy: which failures are retried, when, and what each attempt left behind.

A failed attempt is retried by scheduling the next one on the broker
(``Delivery.retry_at``), never by sleeping in the worker: a worker that dies during the
backoff loses nothing, and a draining worker has nothing to wait for.

- ``Backoff``: exponential with jitter and a cap. Before attempt ``n + 1`` the worker waits
  up to ``ceiling(n) = min(max_s, base_s * factor ** (n - 1))``; with ``jitter`` ``j`` the
  wait is uniform in ``[(1 - j) * ceiling, ceiling]`` (``j = 1``, the default, is "full
  jitter": spreads a burst of failures best; ``j = 0`` is no jitter).
- ``RetryPolicy``: ``Reject`` is never retried; an error that is an instance of
  ``no_retry_on``, or not of ``retry_on``, is dead-lettered as ``not_retryable``; the last
  attempt as ``max_attempts``.
- Every failure is appended to a history that travels with the message (the
  ``asyncjobs_history`` label, the last ``MAX_HISTORY`` entries, see
  ``asyncjobs.brokers.envelope``) and ends up in the
  dead letter's ``history``.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from asyncjobs.brokers.dead_letters import Reason
from asyncjobs.brokers.envelope import MAX_HISTORY, History, failure_entry
from asyncjobs.errors import ConfigurationError, Reject

_attempt: ContextVar[int] = ContextVar("asyncjobs_attempt", default=0)


def current_attempt() -> int:
    """The attempt the running task is on (1 for the first run); 0 outside a task."""
    return _attempt.get()


class running_attempt:
    """Make ``current_attempt()`` return ``attempt`` inside (the worker, around a task).
    A class, not a generator: it runs once per task, and costs a third as much."""

    __slots__ = ("_attempt", "_token")

    def __init__(self, attempt: int) -> None:
        self._attempt = attempt

    def __enter__(self) -> None:
        self._token = _attempt.set(self._attempt)

    def __exit__(self, *exc: object) -> None:
        _attempt.reset(self._token)


MAX_BACKOFF_S = 7 * 86_400  # the longest wait before a retry (RETRY_BACKOFF's MAX too)


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential backoff with jitter and a cap (seconds)."""

    base_s: float = 1.0
    factor: float = 2.0
    max_s: float = 300.0
    jitter: float = 1.0

    def __post_init__(self) -> None:
        if not (self.base_s > 0 and math.isfinite(self.base_s)):
            raise ConfigurationError(f"backoff base must be > 0 seconds, got {self.base_s}")
        if not (1 <= self.factor <= 100):
            raise ConfigurationError(f"backoff factor must be in [1, 100], got {self.factor}")
        if not (self.max_s >= self.base_s and math.isfinite(self.max_s)):
            raise ConfigurationError(
                f"backoff max ({self.max_s} s) must be finite and >= its base ({self.base_s} s)"
            )
        if self.max_s > MAX_BACKOFF_S:
            # The retry is parked on the broker until then: a week is already a long wait.
            raise ConfigurationError(
                f"backoff max ({self.max_s} s) must be at most {MAX_BACKOFF_S} s (7 days), "
                "as RETRY_BACKOFF's MAX"
            )
        if not (0 <= self.jitter <= 1):
            raise ConfigurationError(f"backoff jitter must be in [0, 1], got {self.jitter}")

    def ceiling_s(self, failed_attempt: int) -> float:
        """The longest wait after attempt ``failed_attempt`` (1-based) failed."""
        exponent = max(0, failed_attempt - 1)
        if exponent * math.log(max(self.factor, 1.0)) > math.log(self.max_s / self.base_s):
            return self.max_s  # also avoids float overflow for huge attempt numbers
        return min(self.max_s, self.base_s * self.factor**exponent)

    def bounds_s(self, failed_attempt: int) -> tuple[float, float]:
        ceiling = self.ceiling_s(failed_attempt)
        return (1 - self.jitter) * ceiling, ceiling

    def delay_s(self, failed_attempt: int, rng: random.Random | None = None) -> float:
        low, high = self.bounds_s(failed_attempt)
        return (rng or _rng).uniform(low, high)


_rng = random.Random()


@dataclass(frozen=True, slots=True)
class Decision:
    """What to do with a failed attempt: retry after ``delay_s``, or dead-letter."""

    give_up: Reason | None
    delay_s: float = 0.0

    def describe(self) -> str:
        if self.give_up is None:
            return f"retrying in {self.delay_s:.2f} s"
        return f"giving up ({self.give_up.value})"


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int = 3
    backoff: Backoff = field(default_factory=Backoff)
    retry_on: tuple[type[BaseException], ...] = (Exception,)
    no_retry_on: tuple[type[BaseException], ...] = ()

    def decide(self, error: BaseException | None, attempt: int) -> Decision:
        if isinstance(error, Reject):
            return Decision(Reason.REJECTED)
        if error is not None and (
            isinstance(error, self.no_retry_on) or not isinstance(error, self.retry_on)
        ):
            return Decision(Reason.NOT_RETRYABLE)
        if attempt >= self.max_attempts:
            return Decision(Reason.MAX_ATTEMPTS)
        return Decision(None, self.backoff.delay_s(attempt))


def policy_for(task: Any, max_attempts: int, default_backoff: Backoff) -> RetryPolicy:
    """The policy for a failed attempt of ``task`` (a registered ``JobTask``, or anything
    without ``options``: the defaults)."""
    options = getattr(task, "options", None)
    backoff = getattr(options, "backoff", None)
    retry_on = getattr(options, "retry_on", None)
    no_retry_on = getattr(options, "no_retry_on", None)
    return RetryPolicy(
        max_attempts=max_attempts,
        backoff=backoff if isinstance(backoff, Backoff) else default_backoff,
        retry_on=retry_on or (Exception,),
        no_retry_on=no_retry_on or (),
    )


def exception_types(
    value: type[BaseException] | Iterable[type[BaseException]] | None,
    where: str,
    *,
    allow_empty: bool = False,
) -> tuple[type[BaseException], ...] | None:
    """``retry_on=`` / ``no_retry_on=`` as a tuple of exception classes (validated);
    None stays None."""
    if value is None:
        return None
    types = (value,) if isinstance(value, type) else tuple(value)
    for kind in types:
        if not (isinstance(kind, type) and issubclass(kind, BaseException)):
            raise ConfigurationError(
                f"{where}: retry_on/no_retry_on take exception classes, got {kind!r}"
            )
    if not types and not allow_empty:
        raise ConfigurationError(f"{where}: retry_on is empty; use max_attempts=1 for no retries")
    return types


def history_with(history: History, error: BaseException | None, attempt: int) -> History:
    """``history`` (a message's, see ``Envelope.history``) plus this failure: the last
    ``MAX_HISTORY`` entries."""
    return (*history, failure_entry(error, attempt))[-MAX_HISTORY:]
