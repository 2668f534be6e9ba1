"""Views of the test project: a sync view that sends the right way and one that forgot
the ``await`` a coroutine needs (it must fail loudly, not answer 202 with nothing sent)."""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse

from tests.testapp.tasks import add


def sends(request: HttpRequest) -> JsonResponse:
    handle = add.kiq_sync(1, 2)
    return JsonResponse({"task": handle.task_id}, status=202)


def forgot_await(request: HttpRequest) -> JsonResponse:
    add.kiq(1, 2)  # type: ignore[unused-coroutine]  # the mistake under test
    return JsonResponse({"task": "?"}, status=202)
