"""The ``asyncjobs`` command (also ``python manage.py asyncjobs``).

    asyncjobs inspect [--queue Q] [--json]
    asyncjobs dlq list [--queue Q] [--limit N] [--reason R] [--task NAME] [--json]
    asyncjobs dlq show ID [--queue Q] [--json]
    asyncjobs dlq replay (ID | --all [--reason R] [--task NAME]) [--queue Q] [--json]
    asyncjobs dlq purge [--queue Q] --yes
    asyncjobs schedules list|add|remove [--json]   (see asyncjobs.schedules_cli)

The command runs against the configured broker: Django settings when run through
``manage.py`` or with ``DJANGO_SETTINGS_MODULE`` set, else ``ASYNCJOBS_*`` variables.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any, TextIO

import orjson

from asyncjobs.app import current_broker, current_config
from asyncjobs.brokers.dead_letters import DeadLetter, Reason, excerpt
from asyncjobs.brokers.failures import library_errors
from asyncjobs.brokers.urls import describe_failure, scrub
from asyncjobs.dead_letters import DeadLetters
from asyncjobs.errors import AsyncJobsError, ConfigurationError
from asyncjobs.inspect_cli import inspect_command
from asyncjobs.schedules_cli import add_parser as add_schedules_parser
from asyncjobs.schedules_cli import schedules_command


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="asyncjobs", description="asyncjobs operations")
    commands = root.add_subparsers(dest="command", required=True)
    inspecting = commands.add_parser(
        "inspect", help="per-queue figures: waiting, in flight, scheduled, dead, backlog"
    )
    inspecting.add_argument("--queue", help="one queue (default: every queue)")
    inspecting.add_argument("--json", action="store_true", help="machine-readable output")
    dlq = commands.add_parser("dlq", help="dead-letter queues").add_subparsers(
        dest="action", required=True
    )

    listing = dlq.add_parser("list", help="list dead letters, oldest first")
    listing.add_argument("--limit", type=int, default=100)
    show = dlq.add_parser("show", help="one dead letter, with its original message")
    show.add_argument("id")
    replay = dlq.add_parser("replay", help="send dead letters back to their queue")
    target = replay.add_mutually_exclusive_group(required=True)
    target.add_argument("id", nargs="?")
    target.add_argument(
        "--all",
        action="store_true",
        help="every dead letter there when it starts (and matching the filters), once",
    )
    purge = dlq.add_parser("purge", help="delete dead letters for good")
    purge.add_argument("--yes", action="store_true", help="really delete them")
    for sub in (listing, show, replay, purge):
        sub.add_argument("--queue", help="one queue (default: every queue)")
        sub.add_argument("--json", action="store_true", help="machine-readable output")
    for sub in (listing, replay):
        sub.add_argument("--reason", choices=[reason.value for reason in Reason])
        sub.add_argument("--task", metavar="NAME", help="the task's full name, as listed")
    add_schedules_parser(commands)
    return root


def run(argv: Sequence[str], out: TextIO = sys.stdout) -> int:
    """Run a command against the configured broker; the exit status. A failure is one
    line on stderr (``asyncjobs: ...``, no secrets) and status 1, never a traceback."""
    args = parser().parse_args(argv)
    try:
        return asyncio.run(_dispatch(args, out))
    except AsyncJobsError as exc:
        return _failed(str(exc))
    except library_errors() as exc:
        # The transports translate their libraries' errors; this catches what slips past.
        doing = f"asyncjobs {args.command} {getattr(args, 'action', '')}".rstrip()
        return _failed(describe_failure(f"{doing} failed", _url_of(args), exc))


def _failed(message: str) -> int:
    print(f"asyncjobs: {scrub(message, *_configured_urls())}", file=sys.stderr)
    return 1


def _url_of(args: argparse.Namespace) -> str:
    """Where the command went: the schedule store for ``schedules``, else the broker."""
    try:
        config = current_config()
    except AsyncJobsError:
        return "(not configured)"
    if args.command == "schedules":
        return config.effective_schedule_store_url or "(no schedule store)"
    return config.broker_url


def _configured_urls() -> tuple[str | None, ...]:
    """Every configured URL, whose secrets no message may show (belt and braces: the
    messages are built with redacted URLs, but may quote a library's text)."""
    try:
        config = current_config()
    except AsyncJobsError:
        return ()
    return (
        config.broker_url,
        config.result_backend_url,
        config.schedule_store_url,
        config.amqp_management_url,
    )


async def _dispatch(args: argparse.Namespace, out: TextIO) -> int:
    if args.command == "schedules":  # the schedule store only, no broker
        return await schedules_command(args, out)
    broker = current_broker()
    try:
        if args.command == "inspect":
            return await inspect_command(args.queue, args.json, out)
        letters = DeadLetters.of(broker)
        return await _dlq(letters, args, out)
    finally:
        if getattr(broker, "started", False):
            await broker.shutdown()


async def _dlq(letters: DeadLetters, args: argparse.Namespace, out: TextIO) -> int:
    await letters.broker.ensure_started()
    if args.action == "list":
        found = await letters.list(args.queue, args.limit, reason=args.reason, task_name=args.task)
        _emit(out, args.json, [_as_dict(item, full=False) for item in found], _table(found))
    elif args.action == "show":
        letter = await letters.find(args.id, args.queue)
        _emit(out, args.json, _as_dict(letter, full=True), _details(letter))
    elif args.action == "replay":
        if args.all:
            report = await letters.replay_all(args.queue, reason=args.reason, task_name=args.task)
            _emit(
                out,
                args.json,
                {"replayed": report.replayed, "skipped": report.skipped},
                f"replayed {report.replayed} dead letters "
                f"({report.skipped} skipped: gone meanwhile)",
            )
        elif args.reason or args.task:
            raise ConfigurationError("--reason and --task filter --all, not one ID")
        else:
            letter = await letters.replay(args.id, args.queue)
            _emit(
                out,
                args.json,
                {"replayed": 1, "id": letter.id, "queue": letter.queue},
                f"replayed {letter.id} to queue {letter.queue}",
            )
    elif args.action == "purge":
        if not args.yes:
            counts = await letters.counts(args.queue)
            out.write(f"would delete {sum(counts.values())} dead letters {counts}; add --yes\n")
            return 2
        counts = await letters.purge(args.queue)
        _emit(
            out,
            args.json,
            {"purged": counts},
            f"purged {sum(counts.values())} dead letters {counts}",
        )
    return 0


def _emit(out: TextIO, as_json: bool, data: Any, text: str) -> None:
    # One write per output: Django's OutputWrapper adds a newline to each write otherwise.
    body = orjson.dumps(data, option=orjson.OPT_INDENT_2).decode() if as_json else text
    out.write(body + "\n")


def _as_dict(letter: DeadLetter, *, full: bool) -> dict[str, Any]:
    data = asdict(letter)
    body = data.pop("body")
    if full:
        try:
            data["body"] = body.decode()
        except UnicodeDecodeError:
            data["body_b64"] = base64.b64encode(body).decode()
    else:
        data["excerpt"] = excerpt(body, 60)
        data.pop("history")
    return data


def _table(letters: list[DeadLetter]) -> str:
    if not letters:
        return "no dead letters"
    rows = [("ID", "QUEUE", "REASON", "TASK", "ATTEMPTS", "DELIVERIES", "AGE", "ERROR")]
    now = time.time()
    for item in letters:
        error = f"{item.error_type}: {item.error_message}" if item.error_type else ""
        rows.append(
            (
                item.id,
                item.queue,
                item.reason.value,
                item.task_name or "?",
                str(item.attempts),
                str(item.deliveries),
                _age(now - item.dead_lettered_at),
                error[:60],
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )


def _details(letter: DeadLetter) -> str:
    lines = [
        f"{key}: {value}"
        for key, value in _as_dict(letter, full=True).items()
        if value not in ("", (), None) and key != "history"
    ]
    if letter.history:
        lines.append("history:")
        lines += [f"  {_failure(entry)}" for entry in letter.history]
    return "\n".join(lines)


def _failure(entry: dict[str, Any]) -> str:
    at = entry.get("at")
    when = (
        datetime.fromtimestamp(at, UTC).isoformat(timespec="seconds")
        if isinstance(at, int | float)
        else "?"
    )
    message = entry.get("error_message") or ""
    error = f"{entry.get('error_type', '?')}: {message}" if message else entry.get("error_type")
    return f"attempt {entry.get('attempt', '?')} at {when}: {error}"


def _age(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s"


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point without Django: configured from ``ASYNCJOBS_*`` variables."""
    from asyncjobs.app import configure
    from asyncjobs.config import load_config

    try:
        configure(load_config(None))
    except AsyncJobsError as exc:
        print(f"asyncjobs: {exc}", file=sys.stderr)
        return 78
    return run(sys.argv[1:] if argv is None else argv)
