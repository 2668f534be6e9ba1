"""A task's limits in the worker: what the registered task declares, which a message's
labels may lower but never raise.

Labels are written by whoever sent the message (a raw taskiq producer, a script, an
attacker with access to the broker): a ``max_attempts`` label of 1,000,000 on a task
declared with ``max_attempts=2`` must not buy a million runs, a message without labels
must still get the task's timeout, and a label that is not a number must neither crash
the worker's decision nor change anything (``Envelope`` reads it as absent).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from asyncjobs.brokers.envelope import Envelope


@dataclass(frozen=True, slots=True)
class Limits:
    max_attempts: int
    timeout_s: float | None  # None: no timeout


def limits_for(task: Any, asked: Envelope, default_max_attempts: int) -> Limits:
    """The limits one run of ``task`` (a registered ``JobTask``; anything without
    ``options`` gets the defaults) has when its message asked for ``asked``."""
    options = getattr(task, "options", None)
    max_attempts = getattr(options, "max_attempts", None) or default_max_attempts
    timeout_s = getattr(options, "timeout_s", None)
    if asked.max_attempts is not None:
        max_attempts = min(max_attempts, asked.max_attempts)
    if asked.timeout_s is not None:
        timeout_s = asked.timeout_s if timeout_s is None else min(timeout_s, asked.timeout_s)
    return Limits(max_attempts, timeout_s)
