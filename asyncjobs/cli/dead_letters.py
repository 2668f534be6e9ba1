"""``asyncjobs dlq list|show|replay|purge``: the dead letters of the configured broker,
as a table or JSON (see ``asyncjobs.dead_letters`` for what each does).

``show ID`` and ``replay ID`` take a dead letter's id or a task id: ``show`` prints the
one letter, or every letter of the task (JSON: a list); ``replay`` replays the letter, or
the task's newest and names the others it left."""

from __future__ import annotations

import argparse
import base64
import time
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any, TextIO

import orjson

from asyncjobs.brokers.dead_letters import DeadLetter, excerpt
from asyncjobs.dead_letters import DeadLetters, Lookup
from asyncjobs.errors import ConfigurationError


async def dlq_command(letters: DeadLetters, args: argparse.Namespace, out: TextIO) -> int:
    await letters.broker.ensure_started()
    if args.action == "list":
        found = await letters.list(args.queue, args.limit, reason=args.reason, task_name=args.task)
        _emit(out, args.json, [_as_dict(item, full=False) for item in found], _table(found))
    elif args.action == "show":
        await _show(letters, args, out)
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
            await _replay_one(letters, args, out)
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


async def _show(letters: DeadLetters, args: argparse.Namespace, out: TextIO) -> None:
    """``show ID``: that letter (an object), or every letter of the task (a list)."""
    found = await letters.lookup(args.id, args.queue)
    if found.by_task_id:
        everything = [_as_dict(item, full=True) for item in found.letters]
        _emit(out, args.json, everything, _all(found))
    else:
        _emit(out, args.json, _as_dict(found.newest, full=True), _details(found.newest))


async def _replay_one(letters: DeadLetters, args: argparse.Namespace, out: TextIO) -> None:
    """``replay ID``: that letter, or the newest of the task with that id."""
    found = await letters.lookup(args.id, args.queue)
    letter = await letters.replay_letter(found.newest)
    data: dict[str, Any] = {
        "replayed": 1,
        "id": letter.id,
        "queue": letter.queue,
        "task_id": letter.task_id,
    }
    text = f"replayed {letter.id} (task {letter.task_id or '?'}) to queue {letter.queue}"
    if found.by_task_id:
        left = [item.id for item in found.letters[:-1]]
        data["left"] = left
        if left:
            text += f"; older dead letters of this task left: {', '.join(left)}"
    _emit(out, args.json, data, text)


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


def _all(found: Lookup) -> str:
    count = len(found.letters)
    head = f"{count} dead letter{'s' if count > 1 else ''} of task {found.key}, oldest first"
    return "\n\n".join([head, *(_details(letter) for letter in found.letters)])


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
