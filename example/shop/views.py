"""Views that send tasks, both ways: async views ``await task.kiq(...)``; sync views (a
WSGI server's threads, or sync views under ASGI) call ``task.kiq_sync(...)``, or
``task.kiq_on_commit(...)`` inside a transaction. Each returns once the broker has the
message (on commit: once it is registered with the transaction)."""

from __future__ import annotations

import json
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from asyncjobs import job
from example.shop.models import Signup, Visit
from example.shop.tasks import compute_score, nightly_report, record_visit, send_welcome_email


@require_GET
async def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"ok": True})


@csrf_exempt  # a JSON API called by other programs, not a browser form
@require_POST
async def signup(request: HttpRequest) -> JsonResponse:
    email = _email_from(request)
    if email is None:
        return JsonResponse({"error": 'send a valid email, e.g. {"email": "a@b.org"}'}, status=400)
    new = await Signup.objects.acreate(email=email)
    job = await send_welcome_email.kiq(new.pk)
    score_job = await compute_score.kiq(new.pk)
    return JsonResponse(
        {"signup": new.pk, "task": job.task_id, "score_task": score_job.task_id}, status=202
    )


@csrf_exempt
@require_POST
def signup_sync(request: HttpRequest) -> JsonResponse:
    """``/signup`` as a sync view: the row and the sends commit together. The tasks are
    sent when the transaction commits, so they never look for a row that is not there
    yet, and a rollback sends nothing."""
    email = _email_from(request)
    if email is None:
        return JsonResponse({"error": 'send a valid email, e.g. {"email": "a@b.org"}'}, status=400)
    with transaction.atomic():
        new = Signup.objects.create(email=email)
        job = send_welcome_email.kiq_on_commit(new.pk)
        score_job = compute_score.kiq_on_commit(new.pk)
    return JsonResponse(
        {"signup": new.pk, "task": job.task_id, "score_task": score_job.task_id}, status=202
    )


@csrf_exempt
@require_http_methods(["GET", "POST"])
def visits(request: HttpRequest, page: str) -> JsonResponse:
    """POST: count a visit of ``page`` in the background (a sync view sends); GET: the
    visits counted so far."""
    if request.method == "GET":
        return JsonResponse({"page": page, "visits": Visit.objects.filter(page=page).count()})
    job = record_visit.kiq_sync(page)
    return JsonResponse({"task": job.task_id}, status=202)


@csrf_exempt
@require_POST
async def visits_async(request: HttpRequest, page: str) -> JsonResponse:
    """POST ``/visits/<page>`` as an async view."""
    job = await record_visit.kiq(page)
    return JsonResponse({"task": job.task_id}, status=202)


@require_GET
async def signup_detail(request: HttpRequest, signup_id: int) -> JsonResponse:
    try:
        row = await Signup.objects.aget(pk=signup_id)
    except Signup.DoesNotExist:
        return JsonResponse({"error": f"no signup {signup_id}"}, status=404)
    return JsonResponse(row.as_dict())


@csrf_exempt
@require_POST
async def report(request: HttpRequest) -> JsonResponse:
    job = await nightly_report.kiq()
    return JsonResponse({"task": job.task_id}, status=202)


@require_GET
async def task_status(request: HttpRequest, task_id: str) -> JsonResponse:
    """Whether a task finished, and its outcome, from the result backend."""
    handle = job(task_id)
    if not await handle.is_ready():
        return JsonResponse({"task": task_id, "ready": False})
    result = await handle.get_result()
    body: dict[str, Any] = {
        "task": task_id,
        "ready": True,
        "is_err": result.is_err,
        "return_value": result.return_value,
        "error": repr(result.error) if result.error is not None else None,
        "execution_time": result.execution_time,
    }
    return JsonResponse(body)


def _email_from(request: HttpRequest) -> str | None:
    if request.content_type == "application/json":
        try:
            payload = json.loads(request.body or b"{}")
        except ValueError:
            return None
        email = payload.get("email") if isinstance(payload, dict) else None
    else:
        email = request.POST.get("email")
    if not isinstance(email, str):
        return None
    try:
        validate_email(email)
    except ValidationError:
        return None
    return email
