"""The names the Redis transport gives things: keys, stream fields, its consumer group."""

from __future__ import annotations

from asyncjobs.brokers.base import process_name

# XREADGROUP's reply without decode_responses: [(stream, [(id, {field: value})])]
EntryList = list[tuple[bytes, dict[bytes, bytes]]]
StreamReply = list[tuple[bytes, EntryList]]

GROUP = "asyncjobs"
DATA = b"data"  # the field taskiq-redis uses, so raw taskiq producers interoperate
DELIVERIES = b"deliveries"  # deliveries before this entry was (re)added
HANDED_BACK = b"handed_back"  # set when a live worker gave it back (not a crash suspect)


def stream_key(prefix: str, queue: str) -> str:
    return f"{prefix}:{queue}"


def dead_letter_key(prefix: str, queue: str) -> str:
    return f"{prefix}:{queue}:dead"


def consumer_name() -> str:
    """Stable within a process and meaningful in XINFO (a Kubernetes pod name + pid)."""
    return process_name()
