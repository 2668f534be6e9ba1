"""``asyncjobs inspect`` and the health view: queue figures of the configured broker,
and which of them are over the ``HEALTH_MAX_*`` limits.

The figures and what each transport can know are described in ``asyncjobs.brokers.inspection``.
"""

from __future__ import annotations

from collections.abc import Sequence

from asyncjobs.app import current_app
from asyncjobs.brokers.inspection import QueueStats, inspect_queues
from asyncjobs.config import AsyncJobsConfig

__all__ = ["QueueStats", "health_problems", "inspect"]


async def inspect(queue: str | None = None) -> list[QueueStats]:
    """The figures of ``queue``, or of every queue in ``QUEUES`` (in that order).

    Raises ``UnknownQueueError`` for a queue not in ``QUEUES``,
    ``BrokerConnectionError`` when the broker (or RabbitMQ's management API) cannot be
    reached.
    """
    app = current_app()
    queues = app.config.queues if queue is None else (queue,)
    return await inspect_queues(app.broker, queues)


def health_problems(stats: Sequence[QueueStats], config: AsyncJobsConfig) -> list[str]:
    """One line per figure over its limit (``HEALTH_MAX_BACKLOG``, ``HEALTH_MAX_WAIT``,
    ``HEALTH_MAX_DEAD_LETTERS``; a limit of None is no limit, 0 allows none). A figure
    that is unknown (RabbitMQ's message ages) is never a problem."""
    problems: list[str] = []
    for item in stats:
        if config.health_max_backlog is not None and item.backlog > config.health_max_backlog:
            problems.append(
                f"queue {item.queue!r}: backlog {item.backlog} > HEALTH_MAX_BACKLOG "
                f"{config.health_max_backlog}"
            )
        age, max_wait = item.oldest_waiting_age_s, config.health_max_wait_s
        if max_wait is not None and age is not None and age > max_wait:
            problems.append(
                f"queue {item.queue!r}: the oldest waiting message waited {age:.1f} s > "
                f"HEALTH_MAX_WAIT {max_wait:g} s"
            )
        limit = config.health_max_dead_letters
        if limit is not None and item.dead_letters > limit:
            problems.append(
                f"queue {item.queue!r}: {item.dead_letters} dead letters > "
                f"HEALTH_MAX_DEAD_LETTERS {limit}"
            )
    return problems
