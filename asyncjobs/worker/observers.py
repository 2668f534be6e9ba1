"""The observers a worker process runs with, chosen by the settings."""

from __future__ import annotations

from asyncjobs.config import AsyncJobsConfig
from asyncjobs.worker.events import WorkerObserver


def observers_for(config: AsyncJobsConfig) -> tuple[WorkerObserver, ...]:
    """Health probes and metrics, as configured (none by default)."""
    found: list[WorkerObserver] = []
    return tuple(found)
