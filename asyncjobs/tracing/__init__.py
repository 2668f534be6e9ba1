"""OpenTelemetry tracing of tasks, from the HTTP request through the broker into the task.

Turned on by one setting, ``ASYNCJOBS["TRACING"] = True`` (or a dict, see
``asyncjobs.config.TracingSettings``); everything else comes from the standard
``OTEL_*`` environment variables (``asyncjobs.tracing.setup``).

- ``send {queue}`` (PRODUCER): every ``kiq()``, a child of the current span; a retry's
  re-publish by the worker, a child of the failed attempt's span; a scheduled firing
  (labels ``schedule_id``), the root of a new trace.
- ``process {queue}`` (CONSUMER): every delivery a worker runs (or dead-letters), a child
  of the ``send`` that delivered it (or, with ``LINK_TO_PRODUCER``, a new trace linked to
  it); spans the task creates are its children.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# Every worker needs the conventions (a stored result leaves the trace context out, with
# tracing on or off); the rest is imported on first use: the SDK's tracer provider,
# resources (psutil) and exporters are megabytes no process with tracing off should
# carry (issue 22: a worker's RSS).
from asyncjobs.tracing.conventions import take_trace_context, without_trace_context

if TYPE_CHECKING:
    from asyncjobs.tracing.producer import SendTracing
    from asyncjobs.tracing.setup import (
        build_tracer_provider,
        configure_tracing,
        enable_tracing,
        flush,
        process_role,
    )

_LAZY = {
    "SendTracing": "asyncjobs.tracing.producer",
    "build_tracer_provider": "asyncjobs.tracing.setup",
    "configure_tracing": "asyncjobs.tracing.setup",
    "enable_tracing": "asyncjobs.tracing.setup",
    "flush": "asyncjobs.tracing.setup",
    "process_role": "asyncjobs.tracing.setup",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


__all__ = [
    "SendTracing",
    "build_tracer_provider",
    "configure_tracing",
    "enable_tracing",
    "flush",
    "process_role",
    "take_trace_context",
    "without_trace_context",
]
