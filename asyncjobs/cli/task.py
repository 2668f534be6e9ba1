"""``asyncjobs task ID [--json]``: where a task stands, by its id (``task_report``).

Exit status 0 when something is known of it, 1 when its state is ``unknown`` (the notes
on stderr say why: never sent, expired, or the broker cannot look into its queues).
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

import orjson

from asyncjobs.task_lookup import TaskReport, task_report


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The ``task`` subcommand of the ``asyncjobs`` parser."""
    task = commands.add_parser(
        "task", help="where a task stands by its id: waiting, running, succeeded, dead, ..."
    )
    task.add_argument("id", help="the task id kiq() returned and the worker logs")
    task.add_argument("--json", action="store_true", help="machine-readable output")


async def task_command(task_id: str, as_json: bool, out: TextIO) -> int:
    report = await task_report(task_id)
    if as_json:
        out.write(orjson.dumps(report.as_dict(), option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        out.write(text(report) + "\n")  # one write: Django's OutputWrapper adds a newline
    if report.state != "unknown":
        return 0
    for note in report.notes:
        print(f"asyncjobs: {note}", file=sys.stderr)
    return 1


def text(report: TaskReport) -> str:
    lines = [f"task {report.task_id}: {report.state}"]
    fields: list[tuple[str, Any]] = [
        ("task", report.task_name),
        ("queue", report.queue),
        ("attempts", report.attempts),
        ("error", report.error),
    ]
    if report.state == "succeeded":
        fields.append(("result", _json(report.result)))
    lines += [f"  {name}: {value}" for name, value in fields if value is not None]
    for failure in report.failed_attempts:
        lines.append(
            f"  failed attempt {failure.get('attempt')} at {_when(failure.get('at'))}: "
            f"{failure.get('error_type')}: {failure.get('error_message')}"
        )
    for letter in report.dead_letters:
        lines.append(
            f"  dead letter {letter.id} in {letter.queue} at {_when(letter.dead_lettered_at)}: "
            f"{letter.reason.value}"
        )
    lines += [f"  note: {note}" for note in report.notes]
    return "\n".join(lines)


def _json(value: Any) -> str:
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        return repr(value)


def _when(unix_s: Any) -> str:
    if not isinstance(unix_s, int | float):
        return "?"
    return datetime.fromtimestamp(unix_s, UTC).replace(microsecond=0).isoformat()
