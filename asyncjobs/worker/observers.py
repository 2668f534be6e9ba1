"""The observers a worker process runs with, chosen by the settings."""

from __future__ import annotations

import logging

from asyncjobs.config import AsyncJobsConfig
from asyncjobs.worker.events import WorkerObserver
from asyncjobs.worker.health import HealthObserver
from asyncjobs.worker.probe_server import ProbeServer, port_for_this_process

logger = logging.getLogger("asyncjobs.worker")


def observers_for(config: AsyncJobsConfig) -> tuple[WorkerObserver, ...]:
    """Health probes (with ``HEALTH_PORT``) and metrics, as configured."""
    found: list[WorkerObserver] = []
    if config.health_port is not None:
        health = HealthObserver(config.liveness_timeout_s)
        port = port_for_this_process(config.health_port)
        try:
            ProbeServer(port, health).start()
        except OSError as exc:  # the probes then fail: loud in Kubernetes, and logged here
            logger.error("cannot serve the probes on port %d: %s", port, exc)
        found.append(health)
    return tuple(found)
