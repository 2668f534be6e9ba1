"""Where a task's message is in its queue, for a lookup by task id
(``ReliableBroker.locate``): waiting, scheduled for later, or running.

A transport that can look into its queues (``Capabilities.locates``) searches a bounded
number of messages; one that cannot (AMQP takes a message to read it) answers None, as
for a message it did not find.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import orjson

Location = Literal["waiting", "scheduled", "running"]
LOCATE_SCAN = 10_000  # how many messages of each kind a search reads at most


@dataclass(frozen=True, slots=True)
class Located:
    """A message of the task: where it is, and its body as sent (for its task name and
    attempt)."""

    state: Location
    body: bytes


def names_task(data: bytes, task_id: str) -> bool:
    """Whether ``data`` is a message (taskiq's JSON) of task ``task_id``: a substring
    test first, which rejects almost every other message without decoding it."""
    if task_id.encode() not in data:
        return False
    try:
        message = orjson.loads(data)
    except orjson.JSONDecodeError:
        return False
    return isinstance(message, dict) and message.get("task_id") == task_id
