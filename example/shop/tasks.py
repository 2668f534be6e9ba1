"""Background tasks of the shop app (found automatically: this module is ``tasks.py``)."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from django.utils import timezone
from opentelemetry import trace

from asyncjobs import Reject, cron, every, task
from example.shop.models import Signup, Visit

logger = logging.getLogger("example.shop")
# Spans a task opens are children of its "process" span (with ASYNCJOBS["TRACING"] on;
# a no-op otherwise).
tracer = trace.get_tracer("example.shop")


@task(queue="emails", max_attempts=5, timeout=30)
async def send_welcome_email(signup_id: int) -> str:
    """Send the welcome email once, even if the message is delivered twice."""
    signup = await _signup(signup_id)
    if signup.welcome_sent_at is not None:
        return "already sent"
    with tracer.start_as_current_span("email provider: send", kind=trace.SpanKind.CLIENT):
        await asyncio.sleep(0.01)  # stands in for the email provider's HTTP API
    sent = await Signup.objects.filter(pk=signup_id, welcome_sent_at__isnull=True).aupdate(
        welcome_sent_at=timezone.now()
    )
    logger.info("welcome email to %s: %s", signup.email, "sent" if sent else "already sent")
    return "sent" if sent else "already sent"


@task(max_attempts=3, timeout=10)
async def compute_score(signup_id: int) -> int:
    """A made-up lead score, stored on the signup."""
    signup = await _signup(signup_id)
    local, _, domain = signup.email.partition("@")
    score = len(local) * 3 + (10 if domain.endswith(".org") else 0)
    await Signup.objects.filter(pk=signup_id).aupdate(score=score)
    return score


@task(schedule=cron("0 2 * * *", tz="Europe/Berlin"))
def nightly_report() -> int:
    """A sync task with the sync ORM: runs in a thread, off the worker's event loop."""
    total = Signup.objects.count()
    welcomed = Signup.objects.filter(welcome_sent_at__isnull=False).count()
    logger.info("nightly report: %d signups, %d welcomed", total, welcomed)
    return total


@task
async def record_visit(page: str) -> None:
    """Count a page visit (sent by the views at ``/visits/<page>``)."""
    await Visit.objects.acreate(page=page)


HEARTBEAT_SCHEDULE = "demo-heartbeat"


@task(schedule=every(timedelta(seconds=2), id=HEARTBEAT_SCHEDULE))
async def heartbeat() -> str:
    """Sent by the scheduler every 2 s (once per tick, however many schedulers run)."""
    return "alive"


async def _signup(signup_id: int) -> Signup:
    try:
        return await Signup.objects.aget(pk=signup_id)
    except Signup.DoesNotExist:
        # Retrying cannot make it appear: fail for good (to the dead-letter queue).
        raise Reject(f"signup {signup_id} does not exist") from None
