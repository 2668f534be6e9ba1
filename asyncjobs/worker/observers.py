"""The observers a worker process runs with, chosen by the settings."""

from __future__ import annotations

import logging
from functools import partial

from asyncjobs.config import AsyncJobsConfig
from asyncjobs.worker.events import WorkerObserver
from asyncjobs.worker.health import HealthObserver
from asyncjobs.worker.probe_server import ProbeServer, port_for_this_process
from asyncjobs.worker.prometheus import metrics_setup, render

logger = logging.getLogger("asyncjobs.worker")


def observers_for(config: AsyncJobsConfig) -> tuple[WorkerObserver, ...]:
    """Health probes (with ``HEALTH_PORT``), metrics and tracing, as configured."""
    # Metrics always: a no-op meter unless the application configured OpenTelemetry
    # (or PROMETHEUS is on), a few microseconds per task.
    metrics, reader = metrics_setup(config)
    found: list[WorkerObserver] = [metrics]
    if config.health_port is not None:
        health = HealthObserver(config.liveness_timeout_s)
        port = port_for_this_process(config.health_port)
        scrape = partial(render, reader) if reader is not None else None
        try:
            ProbeServer(port, health, metrics=scrape).start()
        except OSError as exc:  # the probes then fail: loud in Kubernetes, and logged here
            logger.error("cannot serve the probes on port %d: %s", port, exc)
        found.append(health)
    if config.tracing_settings is not None:  # a process span per delivery
        from asyncjobs.worker.tracing import tracing_observer

        found.append(tracing_observer(config))
    return tuple(found)
