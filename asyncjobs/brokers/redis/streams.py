"""The names the Redis transport gives things: keys, stream fields, its consumer group."""

from __future__ import annotations

from typing import Any

from asyncjobs.brokers.base import process_name

# XREADGROUP's reply, as ``stream_entries`` gives it: [(stream, [(id, {field: value})])]
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


def stream_entries(reply: Any) -> StreamReply:
    """XREADGROUP's raw reply (a RESP3 map or a RESP2 array of ``[stream, entries]``;
    nil when the block ran out) as ``[(stream, [(id, {field: value})])]``; an entry
    deleted while pending has no fields: ``{}``."""
    if reply is None:
        return []
    pairs = reply.items() if isinstance(reply, dict) else reply
    return [(stream, [(i, _fields(flat)) for i, flat in entries]) for stream, entries in pairs]


def _fields(flat: Any) -> dict[bytes, bytes]:
    if not flat:
        return {}
    if isinstance(flat, dict):
        return flat
    values = iter(flat)
    return dict(zip(values, values, strict=False))
