"""Async views: they enqueue work with ``await task.kiq(...)`` and report on it."""

from __future__ import annotations

import json
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from asyncjobs import job
from example.shop.models import Signup
from example.shop.tasks import compute_score, nightly_report, send_welcome_email


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
