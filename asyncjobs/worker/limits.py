"""A task's limits in the worker: what the registered task declares, which a message's
labels may lower but never raise.

Labels are written by whoever sent the message (a raw taskiq producer, a script, an
attacker with access to the broker): a ``max_attempts`` label of 1,000,000 on a task
declared with ``max_attempts=2`` must not buy a million runs, a message without labels
must still get the task's timeout, and a label that is not a number must neither crash
the worker's decision nor change anything.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from asyncjobs.tasks import ATTEMPTS_LABEL, TIMEOUT_LABEL


@dataclass(frozen=True, slots=True)
class Limits:
    max_attempts: int
    timeout_s: float | None  # None: no timeout


def limits_for(task: Any, labels: Mapping[str, Any], default_max_attempts: int) -> Limits:
    """The limits one run of ``task`` (a registered ``JobTask``; anything without
    ``options`` gets the defaults) has under ``labels``."""
    options = getattr(task, "options", None)
    max_attempts = getattr(options, "max_attempts", None) or default_max_attempts
    timeout_s = getattr(options, "timeout_s", None)
    asked_attempts = _positive_int(labels.get(ATTEMPTS_LABEL))
    if asked_attempts is not None:
        max_attempts = min(max_attempts, asked_attempts)
    asked_timeout = _positive_seconds(labels.get(TIMEOUT_LABEL))
    if asked_timeout is not None:
        timeout_s = asked_timeout if timeout_s is None else min(timeout_s, asked_timeout)
    return Limits(max_attempts, timeout_s)


def apply_timeout(labels: dict[str, Any], limits: Limits) -> None:
    """Make the ``timeout`` label (which taskiq's ``run_task`` enforces) the effective
    one: set, replaced by a lower declared one, or removed when it is not a number."""
    if limits.timeout_s is None:
        labels.pop(TIMEOUT_LABEL, None)
    else:
        labels[TIMEOUT_LABEL] = limits.timeout_s


def _positive_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 1 else None
    if isinstance(value, str) and value.strip().isdigit():  # labels_types may leave text
        number = int(value)
        return number if number >= 1 else None
    return None


def _positive_seconds(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        seconds = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return seconds if seconds > 0 and math.isfinite(seconds) else None
