"""Turning tracing on: ``ASYNCJOBS["TRACING"]``, the rest from the standard ``OTEL_*``
environment variables.

``configure_tracing`` sets a global ``TracerProvider`` unless the application (or
``opentelemetry-instrument``) already set one, which is then used as it is:

- ``service.name``: ``OTEL_SERVICE_NAME`` (or ``service.name`` in
  ``OTEL_RESOURCE_ATTRIBUTES``), else ``<SERVICE_NAME>-<role>``: the role is ``worker``
  in ``taskiq worker``, ``scheduler`` in ``taskiq scheduler``, ``web`` elsewhere;
  ``SERVICE_NAME`` defaults to the Django project's package (``asyncjobs`` without one);
- sampler: ``OTEL_TRACES_SAMPLER`` / ``OTEL_TRACES_SAMPLER_ARG`` (the SDK's default:
  ``parentbased_always_on``);
- exporters: ``OTEL_TRACES_EXPORTER`` (default ``otlp``; ``console``, ``none``, or any
  exporter's entry point name); ``otlp`` is OTLP over HTTP/protobuf
  (``opentelemetry-exporter-otlp-proto-http``, the ``tracing`` extra), configured by
  ``OTEL_EXPORTER_OTLP_ENDPOINT`` / ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``, ``..._HEADERS``,
  ``..._TIMEOUT``; with ``OTEL_EXPORTER_OTLP_PROTOCOL=grpc``, the gRPC exporter if
  installed. Spans are batched (``OTEL_BSP_*``).
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping, Sequence
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opentelemetry import trace
from opentelemetry.sdk.resources import SERVICE_NAME, OTELResourceDetector, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter

from asyncjobs.errors import ConfigurationError

if TYPE_CHECKING:
    from asyncjobs.config import AsyncJobsConfig
    from asyncjobs.hooks import Hooks

logger = logging.getLogger("asyncjobs.tracing")

ROLES = ("web", "worker", "scheduler")
EXPORTER_GROUP = "opentelemetry_traces_exporter"
FLUSH_TIMEOUT_MS = 2000  # a stopping worker's flush, within the drain's hard margin


def process_role(argv: Sequence[str] | None = None) -> str:
    """``worker`` or ``scheduler`` under ``taskiq worker|scheduler`` (also as
    ``python -m taskiq``, and in the worker processes it starts), else ``web``."""
    argv = sys.argv if argv is None else argv
    if argv and argv[0] in ("worker", "scheduler"):
        return argv[0]  # taskiq's CLI drops its own name from sys.argv before it runs
    if len(argv) > 1 and argv[1] in ("worker", "scheduler"):
        program = Path(argv[0])
        if program.name == "taskiq" or program.parent.name == "taskiq":
            return argv[1]
    return "web"


def service_name_for(prefix: str | None, role: str) -> str:
    return f"{prefix or 'asyncjobs'}-{role}"


def build_tracer_provider(service_name: str) -> TracerProvider:
    """A provider configured by the ``OTEL_*`` variables, ``service_name`` unless they
    name the service themselves."""
    named_by_env = SERVICE_NAME in OTELResourceDetector().detect().attributes
    resource = Resource.create({} if named_by_env else {SERVICE_NAME: service_name})
    provider = TracerProvider(resource=resource)  # the sampler comes from OTEL_TRACES_SAMPLER
    for exporter in exporters_from_env(os.environ):
        provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


def exporters_from_env(environ: Mapping[str, str]) -> list[SpanExporter]:
    names = [n.strip() for n in environ.get("OTEL_TRACES_EXPORTER", "otlp").split(",")]
    exporters: list[SpanExporter] = []
    for name in filter(None, names):
        if name == "none":
            continue
        if name == "otlp":
            protocol = environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or environ.get(
                "OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"
            )
            name = "otlp_proto_grpc" if protocol == "grpc" else "otlp_proto_http"
        exporters.append(_exporter(name))
    return exporters


def _exporter(name: str) -> SpanExporter:
    if name == "otlp_proto_http":
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        except ImportError:
            raise ConfigurationError(
                "TRACING: exporting spans over OTLP needs opentelemetry-exporter-otlp-proto-http: "
                "pip install 'django-asyncjobs[tracing]' (or set OTEL_TRACES_EXPORTER=console "
                "or none)"
            ) from None
        return OTLPSpanExporter()  # endpoint, headers, timeout: OTEL_EXPORTER_OTLP_*
    found = entry_points(group=EXPORTER_GROUP, name=name)
    if not found:
        known = sorted({"otlp", "none", *(ep.name for ep in entry_points(group=EXPORTER_GROUP))})
        raise ConfigurationError(
            f"OTEL_TRACES_EXPORTER: no span exporter named {name!r} is installed; known: "
            f"{', '.join(known)}"
        )
    exporter: Any = next(iter(found)).load()()
    return exporter  # type: ignore[no-any-return]


def configure_tracing(
    config: AsyncJobsConfig, *, project: str | None = None, role: str | None = None
) -> trace.TracerProvider | None:
    """Make sure spans go somewhere when ``TRACING`` is on: the global provider the
    application set, else a new one from the ``OTEL_*`` variables (see the module
    docstring). None when tracing is off. Idempotent."""
    settings = config.tracing_settings
    if settings is None:
        return None
    current = trace.get_tracer_provider()
    if isinstance(current, TracerProvider):  # the SDK's: set by the app, or by us before
        return current
    name = service_name_for(settings.service_name or project, role or process_role())
    provider = build_tracer_provider(name)
    trace.set_tracer_provider(provider)
    logger.debug("tracing on: service.name %s", provider.resource.attributes.get(SERVICE_NAME))
    return provider


def enable_tracing(config: AsyncJobsConfig) -> Hooks:
    """What ``asyncjobs.configure()`` does when ``TRACING`` is on: a provider (unless one
    is set), and the hooks that put a ``send`` span around every kiq."""
    from asyncjobs.tracing.producer import SendTracing

    configure_tracing(config)
    return SendTracing(config.transport.name, config.default_queue)


def flush(tracer_provider: trace.TracerProvider | None = None) -> None:
    """Export finished spans now (bounded): worker processes end with ``os._exit``, so
    the SDK's own flush at interpreter exit never runs there."""
    provider = tracer_provider or trace.get_tracer_provider()
    force_flush = getattr(provider, "force_flush", None)
    if force_flush is not None:  # an SDK provider; the API's proxy has none
        force_flush(timeout_millis=FLUSH_TIMEOUT_MS)
