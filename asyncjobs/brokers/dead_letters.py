"""What a dead letter records: the original message and why it could not be run."""

from __future__ import annotations

import base64
import time
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

import orjson

EXCERPT_CHARS = 120
MAX_TRACEBACK_CHARS = 8000


class Reason(StrEnum):
    """Machine-readable reasons a message was dead-lettered."""

    UNDECODABLE = "undecodable"
    UNKNOWN_TASK = "unknown_task"
    INVALID_ARGUMENTS = "invalid_arguments"
    REJECTED = "rejected"
    NOT_RETRYABLE = "not_retryable"  # failed with an error outside the task's retry_on
    MAX_ATTEMPTS = "max_attempts"
    MAX_DELIVERIES = "max_deliveries"
    # The transport's delivery count of the message is not a count (a hand-edited or
    # hostile stream field / header): it cannot be trusted to stop a crash loop.
    BAD_DELIVERY_COUNT = "bad_delivery_count"


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One dead-lettered message. ``body`` is the message exactly as it was received."""

    body: bytes
    queue: str
    reason: Reason
    error_type: str = ""
    error_message: str = ""
    # The final error's traceback (its last ``MAX_TRACEBACK_CHARS``: where it was raised).
    traceback: str = ""
    task_id: str = ""
    task_name: str = ""
    attempts: int = 0
    deliveries: int = 0
    history: tuple[dict[str, Any], ...] = ()
    dead_lettered_at: float = field(default_factory=time.time)
    id: str = ""

    def to_json(self) -> bytes:
        """The record as JSON; never raises. The history comes from message labels (a
        sender's input): if it cannot be encoded (an integer over 64 bits, ...), the
        record is written without it, saying so, rather than not at all."""
        data = asdict(self)
        data.pop("id")
        try:
            data["body"] = self.body.decode("utf-8")
        except UnicodeDecodeError:  # keep undecodable bodies byte for byte
            data["body"] = None
            data["body_b64"] = base64.b64encode(self.body).decode()
        try:
            return orjson.dumps(data)
        except TypeError as exc:
            return orjson.dumps(_encodable(data, f"history dropped: not encodable ({exc})"))

    @classmethod
    def from_json(cls, raw: bytes, dead_letter_id: str = "") -> DeadLetter:
        data = orjson.loads(raw)
        encoded = data.pop("body_b64", None)
        data["body"] = base64.b64decode(encoded) if encoded is not None else data["body"].encode()
        data["reason"] = Reason(data["reason"])
        data["history"] = tuple(data.get("history", ()))
        known = {name: data[name] for name in cls.__dataclass_fields__ if name in data}
        return cls(id=dead_letter_id, **known)  # a newer writer's extra fields are skipped


def _encodable(data: dict[str, Any], note: str) -> dict[str, Any]:
    """``data`` without its history and with every text made valid UTF-8 (an error
    message may carry lone surrogates)."""
    safe = {
        key: value.encode("utf-8", "replace").decode() if isinstance(value, str) else value
        for key, value in data.items()
    }
    safe["history"] = ()
    safe["error_message"] = f"{safe['error_message']} [{note}]".strip()
    return safe


def excerpt(body: bytes, limit: int = EXCERPT_CHARS) -> str:
    """A short, printable excerpt of a payload for logs (never the whole thing)."""
    text = body[: limit * 4].decode("utf-8", "backslashreplace")
    return text if len(text) <= limit else text[:limit] + f"... ({len(body)} bytes)"


async def older_than(
    snapshot: AsyncIterator[list[DeadLetter]], before: str | None, count: int
) -> list[DeadLetter]:
    """Up to ``count`` letters of an oldest-first ``snapshot`` that come before the letter
    ``before`` (None: the newest), newest first. A ``before`` no longer there (replayed
    or purged meanwhile) gives an empty page: its place in the order is unknown."""
    letters = [letter async for page in snapshot for letter in page]
    if before is not None:
        ids = [letter.id for letter in letters]
        letters = letters[: ids.index(before)] if before in ids else []
    return letters[::-1][: max(0, count)]
