"""``asyncjobs schedules list|add|remove [--json]``: the static schedules (declared in code
with ``@task(schedule=...)`` and in ``SCHEDULES``) and the dynamic ones (kept in Redis).

    asyncjobs schedules list [--json]
    asyncjobs schedules add TASK (--cron EXPR [--tz TZ] | --every SECONDS)
        [--args JSON] [--kwargs JSON] [--id ID] [--catch-up N] [--json]
    asyncjobs schedules remove ID [--json]

Only dynamic schedules can be added and removed here; static ones change with the code.
The store is ``SCHEDULE_STORE_URL``, else the result backend's Redis.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any, TextIO

import orjson

from asyncjobs.app import current_config
from asyncjobs.arguments import ArgumentValidator, InvalidArguments
from asyncjobs.brokers.failures import broker_failure, library_errors
from asyncjobs.config import AsyncJobsConfig
from asyncjobs.errors import AsyncJobsError, ConfigurationError
from asyncjobs.schedules.definitions import Schedule
from asyncjobs.schedules.registry import static_schedules
from asyncjobs.schedules.store import ScheduleStore
from asyncjobs.tasks import registered_tasks

STATIC = "static"
DYNAMIC = "dynamic"
COLUMNS = ("ID", "SOURCE", "TASK", "WHEN", "ARGS", "CATCH_UP")
DOING = {
    "list": "reading the schedule store",
    "add": "adding to the schedule store",
    "remove": "removing from the schedule store",
}


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The ``schedules`` subcommand of the ``asyncjobs`` parser."""
    actions = commands.add_parser(
        "schedules", help="cron and interval schedules: list, add or remove dynamic ones"
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
    remove = actions.add_parser("remove", help="remove a dynamic schedule")
    remove.add_argument("id")
    for sub in (listing, add, remove):
        sub.add_argument("--json", action="store_true", help="machine-readable output")


async def schedules_command(args: argparse.Namespace, out: TextIO) -> int:
    """Run ``schedules list|add|remove``; the exit status."""
    config = current_config()
    url = store_url(config)
    store = ScheduleStore.from_url(url, config.key_prefix)
    try:
        if args.action == "list":
            return await _list(store, config, args.json, out)
        if args.action == "add":
            return await _add(store, config, args, out)
        return await _remove(store, config, args.id, args.json, out)
    except AsyncJobsError:
        raise
    except library_errors() as exc:  # one line on stderr, never a traceback
        raise broker_failure(DOING[args.action], url, exc) from None
    finally:
        await store.aclose()


def store_url(config: AsyncJobsConfig) -> str:
    url = config.effective_schedule_store_url
    if not url:
        raise ConfigurationError(
            "SCHEDULE_STORE_URL: dynamic schedules are kept in Redis, and none is configured "
            "(no SCHEDULE_STORE_URL, no RESULT_BACKEND_URL, BROKER_URL is not Redis); set "
            "ASYNCJOBS_SCHEDULE_STORE_URL=redis://host:6379/0"
        )
    return url


async def _list(store: ScheduleStore, config: AsyncJobsConfig, as_json: bool, out: TextIO) -> int:
    rows = [(s, STATIC) for s in static_schedules(config)]
    rows += [(s, DYNAMIC) for s in await store.list()]
    rows.sort(key=lambda row: (row[0].id, row[1]))
    if as_json:
        _write(out, _json([as_row(s, source) for s, source in rows]))
    else:
        _write(out, table(rows))
    return 0


async def _add(
    store: ScheduleStore, config: AsyncJobsConfig, args: argparse.Namespace, out: TextIO
) -> int:
    if args.tz is not None and args.cron is None:
        raise ConfigurationError("--tz applies to --cron only (intervals count real seconds)")
    schedule = Schedule(
        task_name=args.task,
        cron=args.cron,
        every_s=args.every,
        tz=args.tz or "UTC",
        args=tuple(_json_arg("--args", args.args, list, '[1, "a"]') or ()),
        kwargs=_json_arg("--kwargs", args.kwargs, dict, '{"a": 1}') or {},
        catch_up=args.catch_up,
        given_id=args.id,
    )
    if schedule.id in {s.id for s in static_schedules(config)}:
        raise ConfigurationError(
            f"schedule {schedule.id!r} is static (declared in code or SCHEDULES); a dynamic "
            "schedule needs another --id"
        )
    known = registered_tasks()
    if not known:
        # Without Django no task module was imported: nothing to check the name against.
        raise ConfigurationError(
            f"cannot check task {schedule.task_name!r}: no task is registered in this process; "
            "run `python manage.py asyncjobs schedules add ...`, or set DJANGO_SETTINGS_MODULE"
        )
    job = known.get(schedule.task_name)
    if job is not None:
        # The worker's own check: arguments that do not fit would dead-letter every tick.
        try:
            ArgumentValidator(job.original_func).validate(
                list(schedule.args), dict(schedule.kwargs)
            )
        except InvalidArguments as exc:
            raise ConfigurationError(
                f"--args/--kwargs do not fit {schedule.task_name}: {exc}"
            ) from None
    replaced = await store.get(schedule.id) is not None
    stored = await store.add(schedule, known_tasks=known)
    if args.json:
        _write(out, _json({"added": as_row(stored, DYNAMIC), "replaced": replaced}))
    else:
        _write(out, f"{'replaced' if replaced else 'added'} schedule {stored.describe()}")
    return 0


async def _remove(
    store: ScheduleStore, config: AsyncJobsConfig, schedule_id: str, as_json: bool, out: TextIO
) -> int:
    if not await store.remove(schedule_id):
        if schedule_id in {s.id for s in static_schedules(config)}:
            raise AsyncJobsError(
                f"schedule {schedule_id!r} is static (declared in code or SCHEDULES): "
                "remove it there"
            )
        raise AsyncJobsError(
            f"no dynamic schedule has id {schedule_id!r} (`asyncjobs schedules list` shows them)"
        )
    _write(out, _json({"removed": schedule_id}) if as_json else f"removed schedule {schedule_id}")
    return 0


def as_row(schedule: Schedule, source: str) -> dict[str, Any]:
    """A schedule as printed by ``--json``: ``to_dict()`` plus where it comes from."""
    return {**schedule.to_dict(), "source": source}


def table(rows: Sequence[tuple[Schedule, str]]) -> str:
    if not rows:
        return "no schedules"
    cells = [COLUMNS]
    for schedule, source in rows:
        # As JSON, the way --args and --kwargs take them.
        arguments = [orjson.dumps(a).decode() for a in schedule.args]
        arguments += [f"{k}={orjson.dumps(v).decode()}" for k, v in schedule.kwargs.items()]
        cells.append(
            (
                schedule.id,
                source,
                schedule.task_name,
                _when(schedule),
                _short(", ".join(arguments), 40),
                str(schedule.catch_up),
            )
        )
    widths = [max(len(row[i]) for row in cells) for i in range(len(COLUMNS))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in cells
    )


def _when(schedule: Schedule) -> str:
    if schedule.cron is not None:
        return f"cron {schedule.cron} ({schedule.tz})"
    assert schedule.every_s is not None
    return f"every {schedule.every_s:g} s"


def _json_arg(option: str, text: str | None, kind: type, example: str) -> Any:
    if text is None:
        return None
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise ConfigurationError(f"{option}: not JSON ({exc}); e.g. {option} '{example}'") from None
    if not isinstance(value, kind):
        expected = "array" if kind is list else "object"
        raise ConfigurationError(f"{option}: expected a JSON {expected}, e.g. {option} '{example}'")
    return value


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _json(data: Any) -> str:
    return orjson.dumps(data, option=orjson.OPT_INDENT_2).decode()


def _write(out: TextIO, body: str) -> None:
    out.write(body + "\n")  # one write: Django's OutputWrapper adds a newline per write
