"""When a message is due: the ``delay`` and ``eta`` labels of ``kiq``, within reach.

``fn.kicker().with_labels(delay=60)`` (seconds from now) or ``eta=`` (unix seconds, or an
ISO 8601 datetime, naive meaning UTC). A time further ahead than ``MAX_DELAY_S`` is a
mistake (a delay in milliseconds, an eta in milliseconds or year 9999), never a plan:
``kiq()`` refuses it instead of parking the message for good.
"""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime
from typing import Any

from asyncjobs.brokers.errors import ConfigurationError

DELAY_LABEL = "delay"  # seconds from now: ``fn.kicker().with_labels(delay=2)``
ETA_LABEL = "eta"  # unix seconds, or an ISO 8601 datetime (naive means UTC)


# The furthest a ``delay``/``eta`` label may put a message in the future (documented in
# the README, "Retries, delays and timeouts"; RabbitMQ's delay queues hold a year).
MAX_DELAY_S = 366 * 86_400


def due_of(labels: dict[str, Any]) -> float | None:
    """When a message with these labels is due (unix seconds); None: at once.

    With both labels, the later time wins; a negative delay or a past eta means at once.
    Raises ``ConfigurationError`` (naming the label, its value and the maximum) on a value
    that is neither a number nor (for ``eta``) an ISO datetime, that is not finite, or
    that is more than ``MAX_DELAY_S`` ahead.
    """
    now = time.time()
    due: float | None = None
    delay = labels.get(DELAY_LABEL)
    if delay not in (None, ""):
        try:
            seconds = float(delay)
        except OverflowError:  # an int too large for a float
            seconds = math.inf
        except (TypeError, ValueError):
            raise ConfigurationError(
                f"label {DELAY_LABEL!r} must be a number of seconds, not {_shown(delay)}"
            ) from None
        due = _within_reach(DELAY_LABEL, delay, now + seconds, now)
    eta = labels.get(ETA_LABEL)
    if eta not in (None, ""):
        at = _within_reach(ETA_LABEL, eta, _unix_seconds(eta), now)
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
        f"{days} days (asyncjobs.brokers.due.MAX_DELAY_S = {MAX_DELAY_S} s)"
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
                f"label {ETA_LABEL!r} must be unix seconds or an ISO 8601 datetime, "
                f"not {_shown(eta)}"
            ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    try:
        return moment.timestamp()
    except (OverflowError, ValueError):  # year 9999 in a zone west of UTC
        return math.inf
