"""The process-wide state: which config and broker this process uses.

Configured once per process (by the Django adapter, or by ``configure()`` directly);
everything else asks ``current_broker()``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from taskiq import AsyncBroker

from asyncjobs.brokers.factory import build_broker
from asyncjobs.codec import JsonFormatter
from asyncjobs.config import AsyncJobsConfig
from asyncjobs.errors import ConfigurationError, NotConfiguredError
from asyncjobs.handles import JobHandle
from asyncjobs.schedules.registry import static_schedules
from asyncjobs.tasks import registered_tasks, registry


@dataclass(frozen=True, slots=True)
class App:
    config: AsyncJobsConfig
    broker: AsyncBroker


_app: App | None = None


def configure(config: AsyncJobsConfig) -> AsyncBroker:
    """Build this process's broker from ``config`` and route every task to it."""
    global _app
    broker = build_broker(
        config.broker_url,
        config.transport_options(),
        result_backend_url=config.effective_result_backend_url,
        result_ttl_s=config.result_ttl_s,
    )
    broker.with_formatter(JsonFormatter(config.max_payload_bytes))
    if config.tracing_settings is not None:
        from asyncjobs.tracing import enable_tracing

        enable_tracing(broker, config)  # send spans; a tracer provider unless one is set
    registry.default_broker(broker)
    _app = App(config, broker)
    return broker


def current_app() -> App:
    if _app is None:
        raise NotConfiguredError(
            "asyncjobs is not configured: add 'asyncjobs.django' to INSTALLED_APPS "
            "(with settings.ASYNCJOBS or ASYNCJOBS_BROKER_URL), or call asyncjobs.configure()"
        )
    return _app


def current_broker() -> AsyncBroker:
    return current_app().broker


def current_config() -> AsyncJobsConfig:
    return current_app().config


def job(task_id: str) -> JobHandle[Any]:
    """The handle of a task sent earlier, by id: ``is_ready()``, ``get_result()``,
    ``wait_result()`` (e.g. in a view that reports on a task another request sent)."""
    return JobHandle(task_id, current_broker().result_backend)


async def failed_attempts(task_id: str) -> list[dict[str, Any]]:
    """The failed attempts of a task so far, oldest first: ``attempt``, ``error_type``,
    ``error_message``, ``at`` (unix seconds). Empty when none failed, or when no result
    backend is configured (the worker's log has the same lines)."""
    attempts = getattr(current_broker().result_backend, "attempts", None)
    if attempts is None:
        return []
    found: list[dict[str, Any]] = await attempts(task_id)
    return found


def check_tasks(config: AsyncJobsConfig) -> None:
    """Fail at start-up when a task is routed to a queue that is not configured."""
    problems = [
        f"{name} (queue={t.options.queue!r})"
        for name, t in sorted(registered_tasks().items())
        if t.options.queue is not None and t.options.queue not in config.queues
    ]
    if problems:
        raise ConfigurationError(
            f"QUEUES {list(config.queues)} lacks the queue of: {', '.join(problems)}"
        )
    tasks = registered_tasks()
    unknown = [s.describe() for s in static_schedules(config) if s.task_name not in tasks]
    if unknown:
        raise ConfigurationError(f"SCHEDULES name tasks that do not exist: {'; '.join(unknown)}")
