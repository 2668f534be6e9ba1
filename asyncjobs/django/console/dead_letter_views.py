"""Dead letters: a queue's letters newest first, filtered by reason and task, in pages
that read a bounded number of letters; one letter's record; replay (one, the selected,
all matching the filter) and purge, each behind a confirmation page.

The actions are the CLI's (``asyncjobs dlq replay|purge``): a replay publishes first and
removes the letter second (a crash in between duplicates, never loses); a letter another
operator replayed or purged meanwhile is reported, and nothing is sent for it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import orjson
from django.http import HttpRequest, HttpResponse

from asyncjobs.app import current_broker
from asyncjobs.brokers.dead_letters import DeadLetter, Reason
from asyncjobs.dead_letters import DeadLetterPage, DeadLetters
from asyncjobs.django.console import calls, requests
from asyncjobs.django.console.access import PURGE, REPLAY, audit, can
from asyncjobs.django.console.pages import render
from asyncjobs.errors import DeadLetterNotFoundError

if TYPE_CHECKING:
    from asyncjobs.django.console.admin import ConsoleAdmin

PAGE_SIZE = 50


def letters() -> DeadLetters:
    return DeadLetters.of(current_broker())


def dead_letter_list(request: HttpRequest, admin: ConsoleAdmin) -> HttpResponse:
    queue, reason = requests.queue(request), requests.reason(request)
    task, before = requests.text(request, "task"), requests.text(request, "before")
    filters = {"queue": queue, "reason": reason.value if reason else "", "task": task or ""}
    try:
        page, count = calls.run(lambda: _page(queue, before, reason, task))
        banner = None
    except DeadLetterNotFoundError as exc:
        raise requests.BadRequest(f"before: {exc}") from None
    except calls.Unavailable as exc:
        page, count, banner = DeadLetterPage((), None, 0), None, str(exc)
    more = {**filters, "before": page.next_before} if page.next_before else None
    return render(
        request,
        admin,
        "dead_letters.html",
        title="Dead letters",
        tab="dead_letters",
        banner=banner,
        page=page,
        count=count,
        filters=filters,
        queues=calls.app().config.queues,
        reasons=[item.value for item in Reason],
        filtered=bool(reason or task),
        first_page=before is None,
        next_query=urlencode(more) if more else None,
        first_query=urlencode(filters),
    )


async def _page(
    queue: str, before: str | None, reason: Reason | None, task: str | None
) -> tuple[DeadLetterPage, int]:
    found = letters()
    page = await found.page(queue, before=before, size=PAGE_SIZE, reason=reason, task_name=task)
    return page, (await found.counts(queue))[queue]


def dead_letter_detail(request: HttpRequest, admin: ConsoleAdmin) -> HttpResponse:
    queue, letter_id = requests.queue(request, required=True), requests.required_text(request, "id")
    try:
        letter = calls.run(lambda: letters().get(queue, letter_id))
    except DeadLetterNotFoundError as exc:
        return _gone(request, admin, str(exc))
    except calls.Unavailable as exc:
        return render(
            request, admin, "dead_letter.html", title="Dead letter", tab="dead_letters",
            banner=str(exc), letter=None,
        )  # fmt: skip
    return render(
        request,
        admin,
        "dead_letter.html",
        title=f"Dead letter {letter.id}",
        tab="dead_letters",
        letter=letter,
        body=_pretty(letter.body) if can(request, "asyncjobs.view_message_bodies") else None,
    )


def replay(request: HttpRequest, admin: ConsoleAdmin) -> HttpResponse:
    """Replay the selected letters (``ids``) or every letter matching the filter
    (``all=1``): the first POST shows what will happen, the confirmed one does it."""
    queue = requests.queue(request, required=True)
    if request.POST.get("all") == "1":
        return _replay_all(request, admin, queue)
    chosen = requests.ids(request)
    if not requests.confirmed(request):
        found = calls.run(lambda: _existing(queue, chosen))
        if not found:
            return _gone(request, admin, _none_there(queue, chosen))
        return _confirm(request, admin, "replay", queue=queue, letters=found, ids=chosen)
    replayed, gone = calls.run(lambda: letters().replay_ids(queue, chosen))
    if not replayed:
        return _gone(request, admin, _none_there(queue, chosen))
    audit(request, f"dead letters of {queue}", f"replayed {_ids(replayed)} of queue {queue}")
    return _done(request, admin, f"Replayed {len(replayed)} of queue {queue}.", gone)


def _replay_all(request: HttpRequest, admin: ConsoleAdmin, queue: str) -> HttpResponse:
    reason, task = requests.reason(request), requests.text(request, "task")
    if not requests.confirmed(request):
        return _confirm(request, admin, "replay_all", queue=queue, reason=reason, task=task)
    report = calls.run(lambda: letters().replay_all(queue, reason=reason, task_name=task))
    what = f"matching reason={reason or 'any'}, task={task or 'any'}"
    message = f"replayed {report.replayed} dead letters of queue {queue} {what}"
    audit(request, f"dead letters of {queue}", f"{message} ({report.skipped} gone meanwhile)")
    return _done(request, admin, f"{message[0].upper()}{message[1:]}.", (), report.skipped)


def purge(request: HttpRequest, admin: ConsoleAdmin) -> HttpResponse:
    queue = requests.queue(request, required=True)
    if not requests.confirmed(request):
        count = calls.run(lambda: letters().counts(queue))[queue]
        return _confirm(request, admin, "purge", queue=queue, count=count)
    removed = calls.run(lambda: letters().purge(queue))[queue]
    audit(request, f"dead letters of {queue}", f"purged {removed} dead letters", deletion=True)
    return _done(request, admin, f"Purged {removed} dead letters of queue {queue}.", ())


async def _existing(queue: str, chosen: list[str]) -> list[DeadLetter]:
    found = []
    for letter_id in dict.fromkeys(chosen):
        try:
            found.append(await letters().get(queue, letter_id))
        except DeadLetterNotFoundError:
            continue
    return found


def _confirm(
    request: HttpRequest, admin: ConsoleAdmin, action: str, **context: Any
) -> HttpResponse:
    needed = PURGE if action == "purge" else REPLAY
    return render(
        request, admin, "confirm.html", title="Are you sure?", tab="dead_letters",
        action=action, allowed=can(request, needed), **context,
    )  # fmt: skip


def _done(
    request: HttpRequest, admin: ConsoleAdmin, message: str, gone: tuple[str, ...], skipped: int = 0
) -> HttpResponse:
    return render(
        request, admin, "done.html", title="Done", tab="dead_letters",
        message=message, gone=gone, skipped=skipped, back=requests.params(request).get("queue"),
    )  # fmt: skip


def _gone(request: HttpRequest, admin: ConsoleAdmin, reason: str) -> HttpResponse:
    return render(
        request, admin, "gone.html", title="Not there", tab="dead_letters", reason=reason,
        status=404,
    )  # fmt: skip


def _none_there(queue: str, chosen: list[str]) -> str:
    return (
        f"no dead letter {_ids(chosen)} is in queue {queue}: another operator replayed or "
        "purged it, or it never was there. Nothing was sent."
    )


def _ids(ids: tuple[str, ...] | list[str]) -> str:
    shown = ", ".join(ids[:10])
    return shown + (f" and {len(ids) - 10} more" if len(ids) > 10 else "")


def _pretty(body: bytes) -> str:
    try:
        return orjson.dumps(orjson.loads(body), option=orjson.OPT_INDENT_2).decode()
    except orjson.JSONDecodeError:
        return body.decode("utf-8", "backslashreplace")
