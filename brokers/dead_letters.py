"""What a dead letter records: the original message and why it could not be run."""

from __future__ import annotations

import base64
import time
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

import orjson

EXCERPT_CHARS = 120


class Reason(StrEnum):
    """Machine-readable reasons a message was dead-lettered."""

    UNDECODABLE = "undecodable"
    UNKNOWN_TASK = "unknown_task"
    INVALID_ARGUMENTS = "invalid_arguments"
    REJECTED = "rejected"
    NOT_RETRYABLE = "not_retryable"  # failed with an error outside the task's retry_on
    MAX_ATTEMPTS = "max_attempts"
    MAX_DELIVERIES = "max_deliveries"


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One dead-lettered message. ``body`` is the message exactly as it was received."""

    body: bytes
    queue: str
    reason: Reason
    error_type: str = ""
    error_message: str = ""
    task_id: str = ""
    task_name: str = ""
    attempts: int = 0
    deliveries: int = 0
    history: tuple[dict[str, Any], ...] = ()
    dead_lettered_at: float = field(default_factory=time.time)
    id: str = ""

    def to_json(self) -> bytes:
        data = asdict(self)
        data.pop("id")
        try:
            data["body"] = self.body.decode("utf-8")
        except UnicodeDecodeError:  # keep undecodable bodies byte for byte
            data["body"] = None
            data["body_b64"] = base64.b64encode(self.body).decode()
        return orjson.dumps(data)

    @classmethod
    def from_json(cls, raw: bytes, dead_letter_id: str = "") -> DeadLetter:
        data = orjson.loads(raw)
        encoded = data.pop("body_b64", None)
        data["body"] = base64.b64decode(encoded) if encoded is not None else data["body"].encode()
        data["reason"] = Reason(data["reason"])
        data["history"] = tuple(data.get("history", ()))
        return cls(id=dead_letter_id, **data)


def excerpt(body: bytes, limit: int = EXCERPT_CHARS) -> str:
    """A short, printable excerpt of a payload for logs (never the whole thing)."""
    text = body[: limit * 4].decode("utf-8", "backslashreplace")
    return text if len(text) <= limit else text[:limit] + f"... ({len(body)} bytes)"
