"""``asyncjobs workers [--json]``: the live workers (``asyncjobs.monitor.live_workers``).

The table has one row per worker, sorted by host and pid; ``--json`` prints
``{"workers": [...]}`` with the same fields, times as ISO 8601 (UTC). When nothing keeps
the registry, ``MonitorUnavailableError`` says why (one line on stderr, status 1).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any, TextIO

import orjson

from asyncjobs.cli.inspect import duration
from asyncjobs.monitor import WorkerInfo, live_workers

COLUMNS = ("HOST", "PID", "QUEUES", "RUNNING", "CONCURRENCY", "UP", "HEARTBEAT", "VERSION", "ID")


async def workers_command(as_json: bool, out: TextIO) -> int:
    found = await live_workers()
    if as_json:
        document = {"workers": [as_dict(info) for info in found]}
        body = orjson.dumps(document, option=orjson.OPT_INDENT_2).decode()
    else:
        body = table(found, time.time())
    out.write(body + "\n")  # one write: Django's OutputWrapper adds a newline per write
    return 0


def as_dict(info: WorkerInfo) -> dict[str, Any]:
    return {
        "id": info.id,
        "host": info.host,
        "pid": info.pid,
        "queues": list(info.queues),
        "concurrency": info.concurrency,
        "running": info.running,
        "started_at": info.started_at.isoformat(),
        "heartbeat_at": info.heartbeat_at.isoformat(),
        "version": info.version,
    }


def table(found: Sequence[WorkerInfo], now: float) -> str:
    rows = [COLUMNS]
    for info in found:
        rows.append(
            (
                info.host,
                str(info.pid),
                ",".join(info.queues),
                str(info.running),
                str(info.concurrency),
                duration(now - info.started_at.timestamp()),
                f"{duration(now - info.heartbeat_at.timestamp())} ago",
                info.version,
                info.id,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]
    if not found:
        lines.append("(no live worker)")
    return "\n".join(lines)
