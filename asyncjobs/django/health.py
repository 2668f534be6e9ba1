"""``queue_health``: an async view with the queue figures, 503 when something is wrong.

Route it in the project's ``urls.py``::

    from django.urls import path
    from asyncjobs.django.health import queue_health

    urlpatterns = [..., path("asyncjobs/health/", queue_health)]

``GET`` answers ``{"queues": [...], "problems": [...]}`` (the JSON of
``asyncjobs inspect --json``): 200 when every figure is within ``HEALTH_MAX_BACKLOG``,
``HEALTH_MAX_WAIT`` and ``HEALTH_MAX_DEAD_LETTERS`` (unset: no limit), else 503 with one
line per problem. 503 with ``"error"`` when the broker cannot be reached or does not
answer within ``TIMEOUT_S``. Meant for monitoring and alerting, not as a liveness probe
of web pods: restarting them does not cure a broker outage. The figures are not a
secret, but protect the route like any operational endpoint.
"""

from __future__ import annotations

import asyncio
import logging

from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_safe

from asyncjobs.app import current_config
from asyncjobs.errors import AsyncJobsError
from asyncjobs.inspection import health_problems, inspect

logger = logging.getLogger("asyncjobs.health")

TIMEOUT_S = 10.0  # below the usual probe and load-balancer timeouts


@require_safe
async def queue_health(request: HttpRequest) -> JsonResponse:
    try:
        async with asyncio.timeout(TIMEOUT_S):
            stats = await inspect()
    except TimeoutError:
        error = f"the broker did not answer within {TIMEOUT_S:g} s"
    except AsyncJobsError as exc:  # messages never carry a password
        error = str(exc)
    else:
        problems = health_problems(stats, current_config())
        return JsonResponse(
            {"queues": [item.as_dict() for item in stats], "problems": problems},
            status=503 if problems else 200,
        )
    logger.warning("queue health: %s", error)
    return JsonResponse({"queues": [], "problems": [error], "error": error}, status=503)
