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

from asyncjobs.tracing.conventions import take_trace_context, without_trace_context
from asyncjobs.tracing.producer import SendTracing
from asyncjobs.tracing.setup import (
    build_tracer_provider,
    configure_tracing,
    enable_tracing,
    flush,
    process_role,
)

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
