"""Reading a console request: every field checked before anything is sent. A bad value
is refused (400) with the reason and changes nothing."""

from __future__ import annotations

from django.http import HttpRequest, QueryDict

from asyncjobs.brokers.dead_letters import Reason
from asyncjobs.django.console import calls
from asyncjobs.errors import AsyncJobsError

MAX_IDS = 500  # one POST replays at most this many letters by id
MAX_FIELD = 500  # characters of an id, a task name, a cursor


class BadRequest(AsyncJobsError):
    """A request the console refuses (400): the message says why."""


def params(request: HttpRequest) -> QueryDict:
    return request.POST if request.method == "POST" else request.GET


def text(request: HttpRequest, name: str, *, required: bool = False) -> str | None:
    """The field, stripped; None when empty (``BadRequest`` if ``required``)."""
    value = params(request).get(name, "").strip()
    if len(value) > MAX_FIELD:
        raise BadRequest(f"{name}: longer than {MAX_FIELD} characters")
    if not value:
        if required:
            raise BadRequest(f"{name}: required")
        return None
    return value


def required_text(request: HttpRequest, name: str) -> str:
    """The field, stripped; ``BadRequest`` when it is empty or missing."""
    value = text(request, name, required=True)
    if value is None:  # text() raised already; this tells the type checker
        raise BadRequest(f"{name}: required")
    return value


def queue(request: HttpRequest, *, required: bool = False) -> str:
    """A queue of QUEUES (the first when none is given and none is required)."""
    queues = calls.app().config.queues
    name = text(request, "queue", required=required)
    if name is None:
        return queues[0]
    if name not in queues:
        raise BadRequest(f"queue: {name!r} is not in QUEUES ({', '.join(queues)})")
    return name


def reason(request: HttpRequest) -> Reason | None:
    value = text(request, "reason")
    if value is None:
        return None
    try:
        return Reason(value)
    except ValueError:
        known = ", ".join(item.value for item in Reason)
        raise BadRequest(f"reason: {value!r} is not one of {known}") from None


def ids(request: HttpRequest) -> list[str]:
    found = [value.strip() for value in request.POST.getlist("ids") if value.strip()]
    if not found:
        raise BadRequest("ids: select at least one dead letter")
    if len(found) > MAX_IDS or any(len(value) > MAX_FIELD for value in found):
        raise BadRequest(f"ids: at most {MAX_IDS} ids of at most {MAX_FIELD} characters")
    return found


def confirmed(request: HttpRequest) -> bool:
    """An action runs only from its confirmation page's form (``confirm=yes``)."""
    return request.method == "POST" and request.POST.get("confirm") == "yes"
