"""asyncjobs: an asyncio-native task queue for async Django, built on Taskiq.

from asyncjobs import task

@task(queue="emails", max_attempts=5, timeout=30)
async def send_welcome_email(user_id: int) -> str: ...

job = await send_welcome_email.kiq(user.pk)
"""

from asyncjobs.app import (
    App,
    configure,
    configured,
    current_app,
    current_broker,
    current_config,
    failed_attempts,
    job,
)
from asyncjobs.config import AsyncJobsConfig, load_config
from asyncjobs.errors import Reject
from asyncjobs.hooks import Hooks, Outcome, Postpone, Run, Settlement
from asyncjobs.retries import Backoff, RetryPolicy, current_attempt
from asyncjobs.schedules.definitions import cron, every
from asyncjobs.tasks import JobTask, TaskOptions, task

__all__ = [
    "App",
    "AsyncJobsConfig",
    "Backoff",
    "Hooks",
    "JobTask",
    "Outcome",
    "Postpone",
    "Reject",
    "RetryPolicy",
    "Run",
    "Settlement",
    "TaskOptions",
    "configure",
    "configured",
    "cron",
    "current_app",
    "current_attempt",
    "current_broker",
    "current_config",
    "every",
    "failed_attempts",
    "job",
    "load_config",
    "task",
]
__version__ = "0.1.0"
