"""The hooks a worker process adds to its app's: metrics, health probes, tracing, the
worker registry and per-minute counts."""

from __future__ import annotations

import logging
from functools import partial
from typing import TYPE_CHECKING

from asyncjobs.app import App
from asyncjobs.brokers.inspection import inspect_queues
from asyncjobs.hooks import Hooks
from asyncjobs.worker.metrics import MetricsHooks
from asyncjobs.worker.registry import RegistryHooks

if TYPE_CHECKING:
    from asyncjobs.config import AsyncJobsConfig
    from asyncjobs.worker.prometheus import PrometheusReader

logger = logging.getLogger("asyncjobs.worker")


def worker_hooks(app: App, concurrency: int | None = None) -> tuple[Hooks, ...]:
    """Health probes (with ``HEALTH_PORT``), metrics, tracing and the registry (with
    ``MONITOR`` and a store for it), as configured; ``concurrency``: the worker's, when
    not ``WORKER_CONCURRENCY``."""
    config = app.config
    # Metrics always: a no-op meter unless the application configured OpenTelemetry
    # (or PROMETHEUS is on), a few microseconds per task.
    metrics, reader = _metrics(config)
    found: list[Hooks] = [metrics]
    if config.health_port is not None:
        found.append(_health(config.health_port, config.liveness_timeout_s, reader))
    if config.tracing_settings is not None:  # a process span per delivery
        from asyncjobs.worker.tracing import run_tracing

        found.append(run_tracing(config, app.broker.consumer_group))
    registry = _registry(app, concurrency or config.worker_concurrency)
    if registry is not None:
        found.append(registry)
    return tuple(found)


def _metrics(config: AsyncJobsConfig) -> tuple[MetricsHooks, PrometheusReader | None]:
    """``prometheus.metrics_setup``, imported only with ``PROMETHEUS`` on: it needs the
    OpenTelemetry SDK (its MeterProvider, resources, psutil: megabytes a worker without
    it need not carry, issue 22); off, the API's global meter is all there is."""
    if not config.prometheus:
        return MetricsHooks(), None
    from asyncjobs.worker.prometheus import metrics_setup

    return metrics_setup(config)


def _health(base_port: int, liveness_timeout_s: float, reader: PrometheusReader | None) -> Hooks:
    """The probes, served from a thread. Imported here: without ``HEALTH_PORT`` a worker
    needs no HTTP server (http.server and its imports: issue 22, a worker's RSS)."""
    from asyncjobs.worker.health import HealthHooks
    from asyncjobs.worker.probe_server import ProbeServer, port_for_this_process

    health = HealthHooks(liveness_timeout_s)
    port = port_for_this_process(base_port)
    scrape = None
    if reader is not None:  # PROMETHEUS on: the module is loaded already
        from asyncjobs.worker.prometheus import render

        scrape = partial(render, reader)
    try:
        ProbeServer(port, health, metrics=scrape).start()
    except OSError as exc:  # the probes then fail: loud in Kubernetes, and logged here
        logger.error("cannot serve the probes on port %d: %s", port, exc)
    return health


def _registry(app: App, concurrency: int) -> RegistryHooks | None:
    store = app.monitor_store  # None: MONITOR off, or nothing can keep it
    if store is None:
        return None
    broker = app.broker
    return RegistryHooks(
        store,
        partial(inspect_queues, broker),
        queues=broker.options.listened_queues,
        all_queues=app.config.queues,
        concurrency=concurrency,
        heartbeat_s=app.config.monitor_heartbeat_s,
    )
