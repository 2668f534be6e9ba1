"""The ``asyncjobs`` command (also ``python manage.py asyncjobs``).

    asyncjobs inspect [--queue Q] [--json]
    asyncjobs workers [--json]                     (the live workers: asyncjobs.monitor)
    asyncjobs dlq list [--queue Q] [--limit N] [--reason R] [--task NAME] [--json]
    asyncjobs dlq show ID [--queue Q] [--json]         (ID: a dead letter's or a task's)
    asyncjobs dlq replay (ID | --all [--reason R] [--task NAME]) [--queue Q] [--json]
    asyncjobs dlq purge [--queue Q] --yes
    asyncjobs schedules list|add|remove|pause|resume|run [--json]
                                                   (see asyncjobs.cli.schedules)
    asyncjobs task ID [--json]                     (where a task stands, by its id)

The command runs against the configured broker: Django settings when run through
``manage.py`` or with ``DJANGO_SETTINGS_MODULE`` set, else ``ASYNCJOBS_*`` variables.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from typing import TextIO

from asyncjobs.app import current_broker, current_config
from asyncjobs.brokers.dead_letters import Reason
from asyncjobs.brokers.failures import library_errors
from asyncjobs.brokers.urls import describe_failure, scrub
from asyncjobs.cli.dead_letters import dlq_command
from asyncjobs.cli.inspect import inspect_command
from asyncjobs.cli.schedules import add_parser as add_schedules_parser
from asyncjobs.cli.schedules import schedules_command
from asyncjobs.cli.task import add_parser as add_task_parser
from asyncjobs.cli.task import task_command
from asyncjobs.cli.workers import workers_command
from asyncjobs.dead_letters import DeadLetters
from asyncjobs.errors import AsyncJobsError


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="asyncjobs", description="asyncjobs operations")
    commands = root.add_subparsers(dest="command", required=True)
    inspecting = commands.add_parser(
        "inspect", help="per-queue figures: waiting, in flight, scheduled, dead, backlog"
    )
    inspecting.add_argument("--queue", help="one queue (default: every queue)")
    inspecting.add_argument("--json", action="store_true", help="machine-readable output")
    workers = commands.add_parser("workers", help="the live workers, from their heartbeats")
    workers.add_argument("--json", action="store_true", help="machine-readable output")
    dlq = commands.add_parser("dlq", help="dead-letter queues").add_subparsers(
        dest="action", required=True
    )

    listing = dlq.add_parser("list", help="list dead letters, oldest first")
    listing.add_argument("--limit", type=int, default=100)
    show = dlq.add_parser(
        "show", help="a dead letter, or every dead letter of a task, with the original message"
    )
    show.add_argument("id", help="a dead letter's id, or a task id")
    replay = dlq.add_parser("replay", help="send dead letters back to their queue")
    target = replay.add_mutually_exclusive_group(required=True)
    target.add_argument(
        "id", nargs="?", help="a dead letter's id, or a task id (its newest dead letter)"
    )
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
    add_task_parser(commands)
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
    if args.command == "workers":
        return config.effective_monitor_url or "(no monitor store)"
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
    broker = current_broker()
    try:
        if args.command == "schedules":  # the schedule store; the broker for `run` only
            return await schedules_command(args, out)
        if args.command == "task":
            return await task_command(args.id, args.json, out)
        if args.command == "inspect":
            return await inspect_command(args.queue, args.json, out)
        if args.command == "workers":
            return await workers_command(args.json, out)
        return await dlq_command(DeadLetters.of(broker), args, out)
    finally:
        if getattr(broker, "started", False):
            await broker.shutdown()


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
