"""``asyncjobs inspect [--queue Q] [--json]``: the figures of each queue, as a table or JSON.

The JSON document is the health view's: ``{"queues": [...], "problems": [...]}``, an
unknown figure being ``null`` (``?`` in the table).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TextIO

import orjson

from asyncjobs.app import current_config
from asyncjobs.brokers.inspection import QueueStats
from asyncjobs.inspection import health_problems, inspect

COLUMNS = (
    "QUEUE",
    "TRANSPORT",
    "WAITING",
    "IN_FLIGHT",
    "SCHEDULED",
    "DEAD",
    "OLDEST",
    "CONSUMERS",
    "BACKLOG",
)


async def inspect_command(queue: str | None, as_json: bool, out: TextIO) -> int:
    """Print the figures; the exit status (0: being over a health limit is not an error)."""
    stats = await inspect(queue)
    problems = health_problems(stats, current_config())
    if as_json:
        document = {"queues": [item.as_dict() for item in stats], "problems": problems}
        body = orjson.dumps(document, option=orjson.OPT_INDENT_2).decode()
    else:
        body = table(stats, problems)
    out.write(body + "\n")  # one write: Django's OutputWrapper adds a newline per write
    return 0


def table(stats: Sequence[QueueStats], problems: Sequence[str] = ()) -> str:
    rows = [COLUMNS]
    for item in stats:
        rows.append(
            (
                item.queue,
                item.transport,
                _number(item.waiting),
                _number(item.in_flight),
                _number(item.scheduled),
                _number(item.dead_letters),
                age(item.oldest_waiting_age_s, item.waiting),
                _number(item.consumers),
                _number(item.backlog),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    lines = [
        "  ".join(
            cell.ljust(width) if i < 2 else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in rows
    ]
    notes = list(dict.fromkeys(note for item in stats for note in item.notes))
    lines += [f"note: {note}" for note in notes]
    lines += [f"problem: {problem}" for problem in problems]
    return "\n".join(lines)


def age(seconds: float | None, waiting: int) -> str:
    """``-`` when nothing waits, ``?`` when the age is unknown, else e.g. ``3.2s``, ``5m``."""
    if not waiting:
        return "-"
    if seconds is None:
        return "?"
    return duration(seconds)


def duration(seconds: float) -> str:
    """``4.2s``, ``12m``, ``3h``, ``2d`` (never negative: clocks differ a little)."""
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.1f}s"
    for unit, size in (("d", 86400), ("h", 3600)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds // 60)}m"


def _number(value: Any) -> str:
    return "?" if value is None else str(value)
