"""The workers that are alive now, and what each queue did minute by minute.

Workers write both (``asyncjobs.worker.registry``) to the monitor store, the first of
BROKER_URL, RESULT_BACKEND_URL, SCHEDULE_STORE_URL that can keep them (Redis):

- ``live_workers()``: one ``WorkerInfo`` per worker whose heartbeat has not expired
  (three ``MONITOR_HEARTBEAT`` periods); a drained worker is gone at once.
- ``queue_history(queues, minutes)``: per queue, ``minutes`` ``MinuteCounts`` ending with
  the current minute: runs that succeeded, failed attempts, dead letters, and the
  backlog one worker sampled that minute (None when none did). Kept two hours.

Both raise ``MonitorUnavailableError`` when nothing keeps them (``MONITOR`` off, or
RabbitMQ without a Redis ``RESULT_BACKEND_URL``). A stored document that does not read
as one of ours is skipped with a warning: a broken or hostile entry never fails a read.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from asyncjobs.app import App, current_app
from asyncjobs.brokers.stores import BACKLOG, MonitorStore
from asyncjobs.errors import ConfigurationError, MonitorUnavailableError

__all__ = ["MinuteCounts", "WorkerInfo", "live_workers", "queue_history"]

logger = logging.getLogger("asyncjobs.monitor")

MAX_MINUTES = 120  # the counters' TTL (asyncjobs.worker.registry.COUNTS_TTL_S)
MAX_TEXT = 300  # longest host, id, queue or version a document may carry


@dataclass(frozen=True, slots=True)
class WorkerInfo:
    """A live worker process, as it last registered itself."""

    id: str  # host:pid plus a random suffix
    host: str
    pid: int
    queues: tuple[str, ...]  # the queues it consumes
    concurrency: int
    running: int  # tasks running in it at its last heartbeat
    started_at: datetime  # UTC
    heartbeat_at: datetime  # UTC, its last heartbeat
    version: str  # asyncjobs' version in the worker


@dataclass(frozen=True, slots=True)
class MinuteCounts:
    """What one queue did in one minute, across all workers."""

    minute: datetime  # UTC, the start of the minute
    succeeded: int  # runs that succeeded
    failed: int  # failed attempts, retried or dead-lettered
    dead_lettered: int  # messages dead-lettered, run or not
    backlog: int | None  # the queue's backlog sampled that minute; None: not sampled


async def live_workers() -> list[WorkerInfo]:
    """The current app's live workers, sorted by host and pid."""
    app = current_app()
    store = _store(app)
    documents = await app.broker.home.run(store.workers())
    found = [info for key, raw in documents.items() if (info := _worker(key, raw)) is not None]
    return sorted(found, key=lambda info: (info.host, info.pid, info.id))


async def queue_history(
    queues: Sequence[str] | None = None, minutes: int = 60
) -> dict[str, list[MinuteCounts]]:
    """Per queue (default: every queue of ``QUEUES``), exactly ``minutes`` points (1 to
    120), oldest first, ending with the current minute; minutes nothing was counted in
    are zeros."""
    app = current_app()
    store = _store(app)
    chosen = tuple(app.config.queues if queues is None else queues)
    for queue in chosen:
        app.broker.check_queue(queue)  # UnknownQueueError, naming QUEUES
    if isinstance(minutes, bool) or not isinstance(minutes, int):
        raise ConfigurationError(f"minutes: a whole number of minutes, got {minutes!r}")
    if not 1 <= minutes <= MAX_MINUTES:
        raise ConfigurationError(
            f"minutes: 1 to {MAX_MINUTES} (counts are kept 2 h), got {minutes}"
        )
    last = int(time.time() // 60) * 60
    first = last - 60 * (minutes - 1)
    found = await app.broker.home.run(store.counts(chosen, first, last))
    return {queue: _series(found.get(queue, {}), first, last) for queue in chosen}


def _store(app: App) -> MonitorStore:
    store = app.monitor_store
    if store is not None:
        return store
    if not app.config.monitor:
        raise MonitorUnavailableError.monitor_off()
    raise MonitorUnavailableError.no_store(app.config.transport.name)


def _series(counted: Mapping[int, Mapping[str, int]], first: int, last: int) -> list[MinuteCounts]:
    series = []
    for minute in range(first, last + 1, 60):
        fields = counted.get(minute, {})
        series.append(
            MinuteCounts(
                minute=datetime.fromtimestamp(minute, UTC),
                succeeded=max(0, fields.get("succeeded", 0)),
                failed=max(0, fields.get("failed", 0)),
                dead_lettered=max(0, fields.get("dead_lettered", 0)),
                backlog=fields.get(BACKLOG),
            )
        )
    return series


def _worker(key: str, raw: bytes) -> WorkerInfo | None:
    """The document as a ``WorkerInfo``; None (and a warning) when it is not one."""
    try:
        data = orjson.loads(raw)
        if not isinstance(data, dict):
            raise TypeError("not a JSON object")
        return WorkerInfo(
            id=_text(data, "id"),
            host=_text(data, "host"),
            pid=_count(data, "pid"),
            queues=tuple(_texts(data, "queues")),
            concurrency=_count(data, "concurrency"),
            running=_count(data, "running"),
            started_at=_time(data, "started_at"),
            heartbeat_at=_time(data, "heartbeat_at"),
            version=_text(data, "version"),
        )
    except (orjson.JSONDecodeError, TypeError, ValueError, OverflowError, OSError) as exc:
        logger.warning("skipping the registry entry %.100r: %s", key, exc)
        return None


def _text(data: dict[str, Any], name: str) -> str:
    value = data.get(name)
    if not isinstance(value, str) or len(value) > MAX_TEXT:
        raise ValueError(f"{name}: not a text of at most {MAX_TEXT} characters")
    return value


def _texts(data: dict[str, Any], name: str) -> list[str]:
    value = data.get(name)
    if not isinstance(value, list) or len(value) > 1000:
        raise ValueError(f"{name}: not a list")
    return [_text({name: item}, name) for item in value]


def _count(data: dict[str, Any], name: str) -> int:
    value = data.get(name)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name}: not a count")
    return value


def _time(data: dict[str, Any], name: str) -> datetime:
    value = data.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name}: not unix seconds")
    return datetime.fromtimestamp(value, UTC)
