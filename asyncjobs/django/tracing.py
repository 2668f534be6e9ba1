"""Tracing in a Django project: the service name from the project, request spans.

With ``TRACING`` on, every process of the project (web, ``taskiq worker``, ``taskiq
scheduler``) gets a tracer provider named ``<project>-web|worker|scheduler`` (unless
``OTEL_SERVICE_NAME`` or ``TRACING["SERVICE_NAME"]`` says otherwise), and web processes
get request spans from ``opentelemetry-instrumentation-django``, so a ``kiq()`` in a view
is a child of its request. Async views are served over ASGI, which that instrumentation
traces only when ``opentelemetry-instrumentation-asgi`` is installed (without it, it
silently skips every ASGI request): both come with ``django-asyncjobs[tracing]``, and a missing
one stops the web process at start-up.
"""

from __future__ import annotations

import importlib.util

from django.conf import settings

from asyncjobs.config import AsyncJobsConfig
from asyncjobs.errors import ConfigurationError

REQUIRED_FOR_REQUESTS = {
    "opentelemetry.instrumentation.django": "opentelemetry-instrumentation-django",
    "opentelemetry.instrumentation.asgi": "opentelemetry-instrumentation-asgi",
}


def project_name() -> str | None:
    """The project's package: ``shop`` for ``DJANGO_SETTINGS_MODULE=shop.settings``."""
    module = getattr(settings, "SETTINGS_MODULE", None)
    return module.split(".")[0] if module else None


def setup_tracing(config: AsyncJobsConfig) -> None:
    """Before ``asyncjobs.configure()``, from ``AppConfig.ready()``: early enough for the
    request middleware to be in place when the ASGI/WSGI handler loads it."""
    tracing = config.tracing_settings
    if tracing is None:
        return
    # Here, not at the top: it brings the OpenTelemetry SDK, which a process with
    # tracing off never needs (issue 22: a worker's RSS).
    from asyncjobs.tracing import configure_tracing, process_role

    role = process_role()
    configure_tracing(config, project=project_name(), role=role)
    if role == "web" and tracing.instrument_django:
        instrument_django()


def instrument_django() -> None:
    missing = [
        package
        for module, package in REQUIRED_FOR_REQUESTS.items()
        if importlib.util.find_spec(module) is None
    ]
    if missing:
        raise ConfigurationError(
            f"TRACING: request spans need {' and '.join(missing)}: pip install "
            "'django-asyncjobs[tracing]', or set "
            "ASYNCJOBS['TRACING'] = {'INSTRUMENT_DJANGO': False}"
        )
    from opentelemetry.instrumentation.django import DjangoInstrumentor

    instrumentor = DjangoInstrumentor()
    if not instrumentor.is_instrumented_by_opentelemetry:  # e.g. opentelemetry-instrument
        instrumentor.instrument()
