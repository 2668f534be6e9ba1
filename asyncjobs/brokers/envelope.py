"""What travels in a message's labels: every label name asyncjobs reads or writes, and
how each is read.

Labels are taskiq's per-message dict (the message body's ``labels``), readable by any
taskiq producer or worker. Whoever sent a message chose them, so everything read here is
untrusted input: ``Envelope.read`` never raises, drops what is malformed and bounds what
it keeps (a sender's history could otherwise make a dead letter impossible to encode,
an attempt number could overflow). Limits a label carries (``max_attempts``,
``timeout``) are what the sender *asked*; the worker takes the task's own and lets a
label only lower them (``asyncjobs.worker.limits``).

The one exception is ``due_of``, read where a message is sent: a delay that cannot be
meant (not finite, more than ``MAX_DELAY_S`` ahead) is refused there, loudly.

OpenTelemetry's context travels in labels too, under the names the configured
propagator writes (``traceparent``, ``tracestate``, ``baggage`` by default): see
``asyncjobs.tracing.conventions``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from asyncjobs.brokers.errors import ConfigurationError

# -- the names ---------------------------------------------------------------------------
QUEUE = "queue_name"  # the queue; the label taskiq-redis and taskiq-aio-pika route on
DELAY = "delay"  # seconds from now: ``fn.kicker().with_labels(delay=2)``
ETA = "eta"  # unix seconds, or an ISO 8601 datetime (naive means UTC)
MAX_ATTEMPTS = "max_attempts"  # what @task(max_attempts=) sends; a label may lower it
TIMEOUT = "timeout"  # seconds; taskiq's receiver enforces this label (the worker sets it)
ATTEMPT = "asyncjobs_attempt"  # which attempt a message is (1-based; absent: 1)
HISTORY = "asyncjobs_history"  # the failed attempts so far (a retry carries them)
SCHEDULE_ID = "schedule_id"  # a scheduled firing (taskiq's scheduler sets it too)
SCHEDULE_TICK = "schedule_tick"  # its tick, ISO 8601 UTC: a task's idempotency key
# A task sent through the Django Tasks backend (``asyncjobs.django.task_backend``): what
# its status document starts from, as text (ISO 8601 UTC times).
TASK_BACKEND = "asyncjobs_task_backend"  # the TASKS alias
ENQUEUED_AT = "asyncjobs_enqueued_at"
RUN_AFTER = "asyncjobs_run_after"

# -- the bounds --------------------------------------------------------------------------
# The furthest a ``delay``/``eta`` label may put a message in the future (documented in
# the README, "Retries, delays and timeouts"; RabbitMQ's delay queues hold a year).
MAX_DELAY_S = 366 * 86_400
# An attempt number is clamped to this (MAX_ATTEMPTS is at most 1000): it can neither
# overflow an encoder nor grant more attempts.
MAX_ATTEMPT_NUMBER = 1_000_000
MAX_HISTORY = 25  # the newest failures a message carries
MAX_ERROR_CHARS = 500
MAX_TYPE_CHARS = 200

History = tuple[dict[str, Any], ...]


@dataclass(frozen=True, slots=True)
class Envelope:
    """The labels of one message as asyncjobs reads them."""

    queue: str | None = None
    attempt: int = 1
    max_attempts: int | None = None  # asked by the sender: a positive integer, else None
    timeout_s: float | None = None  # asked by the sender: positive and finite, else None
    history: History = ()
    schedule_id: str | None = None
    schedule_tick: str | None = None

    @classmethod
    def read(cls, labels: Mapping[str, Any]) -> Envelope:
        """Never raises: a malformed label reads as absent."""
        return cls(
            queue=_text(labels.get(QUEUE)),
            attempt=attempt_of(labels),
            max_attempts=positive_int(labels.get(MAX_ATTEMPTS)),
            timeout_s=positive_seconds(labels.get(TIMEOUT)),
            history=history_of(labels),
            schedule_id=_text(labels.get(SCHEDULE_ID)),
            schedule_tick=_text(labels.get(SCHEDULE_TICK)),
        )


# -- reading -----------------------------------------------------------------------------
def attempt_of(labels: Mapping[str, Any]) -> int:
    """The attempt number: 1 when absent or not a number, clamped to
    ``[1, MAX_ATTEMPT_NUMBER]``."""
    value = labels.get(ATTEMPT, 1)
    if isinstance(value, float) and not math.isfinite(value):
        return 1
    try:
        return min(MAX_ATTEMPT_NUMBER, max(1, int(value)))
    except (TypeError, ValueError, OverflowError):
        return 1


def history_of(labels: Mapping[str, Any]) -> History:
    """The well-formed entries of the history label (the newest ``MAX_HISTORY``), each
    bounded: ``{attempt, error_type, error_message, at}``."""
    earlier = labels.get(HISTORY)
    if not earlier or not isinstance(earlier, list):  # a first attempt's: none at all
        return ()
    raw = earlier[-MAX_HISTORY:]
    return tuple(entry for item in raw if (entry := _history_entry(item)) is not None)


def failure_entry(error: BaseException | None, attempt: int) -> dict[str, Any]:
    """The history entry of a failed attempt."""
    return {
        "attempt": attempt,
        "error_type": type(error).__qualname__ if error is not None else "",
        "error_message": str(error)[:MAX_ERROR_CHARS] if error is not None else "",
        "at": round(time.time(), 3),
    }


def positive_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 1 else None
    if isinstance(value, str) and value.strip().isdigit():  # labels_types may leave text
        number = int(value)
        return number if number >= 1 else None
    return None


def positive_seconds(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        seconds = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return seconds if seconds > 0 and math.isfinite(seconds) else None


def _text(value: Any) -> str | None:
    return None if value in (None, "") else str(value)


def _history_entry(item: Any) -> dict[str, Any] | None:
    if not isinstance(item, dict):
        return None
    attempt, at = item.get("attempt"), item.get("at")
    if not isinstance(attempt, int) or isinstance(attempt, bool) or isinstance(at, bool):
        return None
    try:
        at_s = float(at)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        return None
    if not math.isfinite(at_s):
        return None
    return {
        "attempt": min(MAX_ATTEMPT_NUMBER, max(1, attempt)),
        "error_type": str(item.get("error_type") or "")[:MAX_TYPE_CHARS],
        "error_message": str(item.get("error_message") or "")[:MAX_ERROR_CHARS],
        "at": round(at_s, 3),
    }


# -- writing -----------------------------------------------------------------------------
def task_labels(
    queue: str | None, max_attempts: int | None, timeout_s: float | None
) -> dict[str, Any]:
    """The labels ``@task(...)`` options put on every message of the task."""
    labels: dict[str, Any] = {}
    if queue is not None:
        labels[QUEUE] = queue
    if max_attempts is not None:
        labels[MAX_ATTEMPTS] = max_attempts
    if timeout_s is not None:
        labels[TIMEOUT] = timeout_s
    return labels


def schedule_labels(schedule_id: str, tick: datetime) -> dict[str, Any]:
    """The labels of a scheduled firing of ``tick``."""
    return {SCHEDULE_ID: schedule_id, SCHEDULE_TICK: tick.isoformat()}


def set_timeout(labels: MutableMapping[str, Any], timeout_s: float | None) -> None:
    """Make the ``timeout`` label (which taskiq's ``run_task`` enforces) ``timeout_s``, or
    remove it."""
    if timeout_s is None:
        labels.pop(TIMEOUT, None)
    else:
        labels[TIMEOUT] = timeout_s


def set_retry(labels: MutableMapping[str, Any], attempt: int, history: History) -> None:
    """What a retry carries: its attempt number and the failures so far."""
    labels[ATTEMPT] = attempt
    labels[HISTORY] = list(history)


def set_history(labels: MutableMapping[str, Any], history: History) -> None:
    labels[HISTORY] = list(history)


def clear_retry(labels: MutableMapping[str, Any]) -> None:
    """A fresh attempt count (a replayed dead letter)."""
    labels.pop(ATTEMPT, None)
    labels.pop(HISTORY, None)


# -- when a message is due ---------------------------------------------------------------
def due_of(labels: Mapping[str, Any]) -> float | None:
    """When a message with these labels is due (unix seconds); None: at once.

    With both labels, the later time wins; a negative delay or a past eta means at once.
    Raises ``ConfigurationError`` (naming the label, its value and the maximum) on a value
    that is neither a number nor (for ``eta``) an ISO datetime, that is not finite, or
    that is more than ``MAX_DELAY_S`` ahead.
    """
    now = time.time()
    due: float | None = None
    delay = labels.get(DELAY)
    if delay not in (None, ""):
        try:
            seconds = float(delay)
        except OverflowError:  # an int too large for a float
            seconds = math.inf
        except (TypeError, ValueError):
            raise ConfigurationError(
                f"label {DELAY!r} must be a number of seconds, not {_shown(delay)}"
            ) from None
        due = _within_reach(DELAY, delay, now + seconds, now)
    eta = labels.get(ETA)
    if eta not in (None, ""):
        at = _within_reach(ETA, eta, _unix_seconds(eta), now)
        due = at if due is None else max(due, at)
    return due


def _within_reach(label: str, value: Any, due: float, now: float) -> float:
    if math.isfinite(due) and due - now <= MAX_DELAY_S:
        return due
    days = MAX_DELAY_S // 86_400
    # +inf is a number too large for a float (10**400): just too far, like 1e300.
    problem = f"more than {days} days ahead" if due > now else "not a finite number"
    raise ConfigurationError(
        f"label {label!r} = {_shown(value)} is {problem}; the maximum delay is "
        f"{days} days (asyncjobs.brokers.envelope.MAX_DELAY_S = {MAX_DELAY_S} s)"
    )


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _unix_seconds(eta: Any) -> float:
    if isinstance(eta, datetime):
        moment = eta
    else:
        try:
            return float(eta)
        except OverflowError:
            return math.inf
        except (TypeError, ValueError):
            pass
        try:
            moment = datetime.fromisoformat(str(eta))
        except ValueError:
            raise ConfigurationError(
                f"label {ETA!r} must be unix seconds or an ISO 8601 datetime, not {_shown(eta)}"
            ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    try:
        return moment.timestamp()
    except (OverflowError, ValueError):  # year 9999 in a zone west of UTC
        return math.inf
