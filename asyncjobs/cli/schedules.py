"""``asyncjobs schedules list|add|remove|pause|resume|run [--json]``: the static schedules
(declared in code with ``@task(schedule=...)`` and in ``SCHEDULES``) and the dynamic ones
(kept in Redis), through ``asyncjobs.schedule_control`` (the console's code path too).

    asyncjobs schedules list [--json]
    asyncjobs schedules add TASK (--cron EXPR [--tz TZ] | --every SECONDS)
        [--args JSON] [--kwargs JSON] [--id ID] [--catch-up N] [--json]
    asyncjobs schedules remove ID [--json]
    asyncjobs schedules pause ID [--json] | resume ID [--json]
    asyncjobs schedules run ID [--json]        (sends one message now; prints its task id)

Only dynamic schedules can be added and removed here; static ones change with the code.
Any schedule can be paused. The store is ``SCHEDULE_STORE_URL``, else the result
backend's Redis.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from datetime import datetime
from typing import Any, TextIO

import orjson

from asyncjobs import schedule_control
from asyncjobs.app import current_config
from asyncjobs.schedule_control import DYNAMIC, ScheduleState, store_url
from asyncjobs.schedules.definitions import Schedule

__all__ = ["add_parser", "schedules_command", "store_url", "table"]

COLUMNS = ("ID", "SOURCE", "TASK", "WHEN", "ARGS", "CATCH_UP", "PAUSED", "NEXT", "LAST_SENT")


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The ``schedules`` subcommand of the ``asyncjobs`` parser."""
    actions = commands.add_parser(
        "schedules", help="cron and interval schedules: list, pause, run; add or remove"
    ).add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", help="static (code, SCHEDULES) and dynamic schedules")
    add = actions.add_parser("add", help="add (or replace, same id) a dynamic schedule")
    add.add_argument("task", help="a registered task's full name, e.g. shop.tasks:send_report")
    when = add.add_mutually_exclusive_group(required=True)
    when.add_argument("--cron", metavar="EXPR", help="five fields, e.g. '0 9 * * MON-FRI'")
    when.add_argument("--every", metavar="SECONDS", type=float, help="a fixed interval")
    add.add_argument("--tz", help="time zone of --cron (default UTC), e.g. Europe/Berlin")
    add.add_argument("--args", metavar="JSON", help="positional arguments, a JSON array")
    add.add_argument("--kwargs", metavar="JSON", help="keyword arguments, a JSON object")
    add.add_argument("--id", help="the schedule's id (default: derived from the definition)")
    add.add_argument(
        "--catch-up", metavar="N", type=int, default=0, help="missed ticks sent after an outage"
    )
    by_id = {
        "remove": "remove a dynamic schedule",
        "pause": "pause a schedule (static or dynamic): its ticks are skipped until resumed",
        "resume": "resume a paused schedule: it ticks again from now",
        "run": "send one message of the schedule's task now (not a tick); prints the task id",
    }
    subs = [listing, add]
    for action, text in by_id.items():
        sub = actions.add_parser(action, help=text)
        sub.add_argument("id", help="the schedule's id, as listed")
        subs.append(sub)
    for sub in subs:
        sub.add_argument("--json", action="store_true", help="machine-readable output")


async def schedules_command(args: argparse.Namespace, out: TextIO) -> int:
    """Run a ``schedules`` action; the exit status. Errors are ``AsyncJobsError``s,
    which the CLI prints as one line (exit status 1)."""
    if args.action == "list":
        return await _list(args.json, out)
    if args.action == "add":
        return await _add(args, out)
    if args.action == "remove":
        await schedule_control.remove_schedule(args.id)
        _write(out, _json({"removed": args.id}) if args.json else f"removed schedule {args.id}")
        return 0
    if args.action == "run":
        task_id = await schedule_control.run_now(args.id)
        _write(out, _json({"schedule": args.id, "task_id": task_id}) if args.json else task_id)
        return 0
    pausing = args.action == "pause"
    state = await (schedule_control.pause if pausing else schedule_control.resume)(args.id)
    done = "paused" if pausing else "resumed"
    _write(out, _json(state.as_dict()) if args.json else f"{done} schedule {args.id}")
    return 0


async def _list(as_json: bool, out: TextIO) -> int:
    states = await schedule_control.schedule_states()
    if not current_config().effective_schedule_store_url:
        # Static schedules still list; dynamic ones and pauses need the store.
        print("asyncjobs: note: no schedule store (SCHEDULE_STORE_URL): static schedules "
              "only, none paused, last sends unknown", file=sys.stderr)  # fmt: skip
    _write(out, _json([state.as_dict() for state in states]) if as_json else table(states))
    return 0


async def _add(args: argparse.Namespace, out: TextIO) -> int:
    schedule = schedule_control.schedule_from_fields(
        task=args.task,
        cron=args.cron,
        every=None if args.every is None else repr(args.every),
        timezone=args.tz,
        args_json=args.args,
        kwargs_json=args.kwargs,
        schedule_id=args.id,
        catch_up=args.catch_up,
    )
    stored, replaced = await schedule_control.add_or_replace(schedule)
    if args.json:
        _write(out, _json({"added": as_row(stored, DYNAMIC), "replaced": replaced}))
    else:
        _write(out, f"{'replaced' if replaced else 'added'} schedule {stored.describe()}")
    return 0


def as_row(schedule: Schedule, source: str) -> dict[str, Any]:
    """A schedule as printed by ``add --json``: ``to_dict()`` plus where it comes from."""
    return {**schedule.to_dict(), "source": source}


def table(states: Sequence[ScheduleState]) -> str:
    if not states:
        return "no schedules"
    cells = [COLUMNS]
    for state in states:
        schedule = state.schedule
        # As JSON, the way --args and --kwargs take them.
        arguments = [orjson.dumps(a).decode() for a in schedule.args]
        arguments += [f"{k}={orjson.dumps(v).decode()}" for k, v in schedule.kwargs.items()]
        cells.append(
            (
                schedule.id,
                state.source,
                schedule.task_name,
                _when(schedule),
                _short(", ".join(arguments), 40),
                str(schedule.catch_up),
                "yes" if state.paused else "no",
                _moment(state.next_tick),
                _moment(state.last_sent),
            )
        )
    widths = [max(len(row[i]) for row in cells) for i in range(len(COLUMNS))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in cells
    )


def _moment(moment: datetime | None) -> str:
    """To the second, with its UTC offset (the schedule's time zone); ``-`` for none."""
    return "-" if moment is None else moment.replace(microsecond=0).isoformat()


def _when(schedule: Schedule) -> str:
    if schedule.cron is not None:
        return f"cron {schedule.cron} ({schedule.tz})"
    assert schedule.every_s is not None
    return f"every {schedule.every_s:g} s"


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _json(data: Any) -> str:
    return orjson.dumps(data, option=orjson.OPT_INDENT_2).decode()


def _write(out: TextIO, body: str) -> None:
    out.write(body + "\n")  # one write: Django's OutputWrapper adds a newline per write
