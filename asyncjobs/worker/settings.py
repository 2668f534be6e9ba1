"""The knobs a worker runs with, from the project config (or defaults in tests)."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from asyncjobs.hooks import Hooks
from asyncjobs.retries import Backoff

if TYPE_CHECKING:
    from asyncjobs.app import App

# The drain deadline is DRAIN_TIMEOUT + this margin: cancelling cut-off tasks, handing
# their messages back and closing connections must fit in it. Kubernetes'
# terminationGracePeriodSeconds must be larger still (see README, "Deploying").
HARD_MARGIN_S = 5.0
CANCEL_GRACE_S = 2.0
# A full worker waits up to REFILL_WAIT_S for 1/REFILL_SHARE of its slots to be free
# before it fetches again (asyncjobs.worker.receiver._more_slots).
REFILL_SHARE = 8
REFILL_WAIT_S = 0.002
DEFAULT_CONCURRENCY = 500


def isolation_line(max_deliveries: int) -> int:
    """From which delivery on a crash suspect runs alone in its worker: its last two
    permitted deliveries (from the 2nd with MAX_DELIVERIES <= 3). Up to the line,
    neighbours of a poison message share its crashes; from the line on, each runs
    alone, so only the poison message reaches MAX_DELIVERIES and is dead-lettered."""
    return max(2, max_deliveries - 1)


@dataclass(frozen=True, slots=True)
class WorkerSettings:
    concurrency: int = DEFAULT_CONCURRENCY
    drain_timeout_s: float = 25.0
    max_attempts: int = 3
    max_deliveries: int = 5
    fetch_block_s: float = 2.0
    backoff: Backoff = field(default_factory=Backoff)  # RETRY_BACKOFF; @task(backoff=) wins
    # The receiver is its process's (`taskiq worker`), not a guest in a test's: a drain
    # that overruns ends the process with os._exit, and once ready start-up's objects are
    # frozen out of the cyclic GC (``gc.freeze``). Off for in-process tests.
    owns_process: bool = True
    hooks: tuple[Hooks, ...] = ()  # the worker's own, after the app's: probes, metrics

    @classmethod
    def for_app(cls, app: App, cli_max_async_tasks: int | None = None) -> WorkerSettings:
        """From ``app``'s config; ``--max-async-tasks`` wins when given explicitly."""
        from asyncjobs.worker.process_hooks import worker_hooks

        config = app.config
        explicit = any(arg.startswith("--max-async-tasks") for arg in sys.argv)
        concurrency = cli_max_async_tasks if explicit and cli_max_async_tasks else None
        concurrency = concurrency or config.worker_concurrency
        return cls(
            concurrency=concurrency,
            drain_timeout_s=config.drain_timeout_s,
            max_attempts=config.max_attempts,
            max_deliveries=config.max_deliveries,
            backoff=config.retry_backoff.backoff(),
            hooks=worker_hooks(app, concurrency),
        )
