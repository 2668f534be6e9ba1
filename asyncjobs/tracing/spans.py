"""Starting and ending asyncjobs' spans, shared by the sender and the worker."""

from __future__ import annotations

from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer, TracerProvider

from asyncjobs.tracing import conventions as c

MAX_DESCRIPTION_CHARS = 300

Attributes = dict[str, Any]


def tracer_for(tracer_provider: TracerProvider | None = None) -> Tracer:
    """asyncjobs' tracer: from ``tracer_provider``, else the global one (a proxy until
    the application, or ``configure_tracing``, sets a provider; it follows that one)."""
    from asyncjobs import __version__

    if tracer_provider is None:
        return trace.get_tracer(c.TRACER_NAME, __version__)
    return tracer_provider.get_tracer(c.TRACER_NAME, __version__)


def never_records(tracer_provider: TracerProvider | None = None) -> bool:
    """True when no span can ever be recorded here: the SDK with the always-off sampler
    (``OTEL_TRACES_SAMPLER=always_off``, whatever the parent) or the API's no-op
    provider. asyncjobs then starts no spans and only carries the trace context and
    baggage along, so that tracing switched on but sampled out costs next to nothing."""
    provider = tracer_provider or trace.get_tracer_provider()
    if isinstance(provider, trace.NoOpTracerProvider):
        return True
    sampler = getattr(provider, "sampler", None)
    return sampler is not None and sampler.get_description() == "AlwaysOffSampler"


class RecordingCheck:
    """``never_records`` of one provider, or of the global one (which an application may
    set after us), worked out once per provider object: it is asked once per message."""

    __slots__ = ("_given", "_never", "_seen")

    def __init__(self, tracer_provider: TracerProvider | None = None) -> None:
        self._given = tracer_provider
        self._seen: TracerProvider | None = None
        self._never = False

    def never(self) -> bool:
        provider = self._given or trace.get_tracer_provider()
        if provider is not self._seen:
            self._seen, self._never = provider, never_records(provider)
        return self._never


def start_send(
    tracer: Tracer,
    *,
    system: str,
    queue: str,
    task_id: str,
    task_name: str,
    attempt: int,
    context: Context | None = None,
    delay_s: float | None = None,
    extra: Attributes | None = None,
) -> Span:
    """A ``send {queue}`` PRODUCER span, child of ``context`` (default: the current one;
    without a current span it starts a new trace)."""
    attributes: Attributes = {
        c.MESSAGING_SYSTEM: system,
        c.OPERATION_TYPE: "send",
        c.OPERATION_NAME: "send",
        c.DESTINATION: queue,
        c.MESSAGE_ID: task_id,
        c.TASK_NAME: task_name,
        c.TASK_ATTEMPT: attempt,
    }
    if delay_s is not None and delay_s > 0:
        attributes[c.DELAY] = round(delay_s, 3)
    if extra:
        attributes.update(extra)
    return tracer.start_span(
        f"send {queue}", context=context, kind=SpanKind.PRODUCER, attributes=attributes
    )


def mark_failed(
    span: Span,
    error: BaseException | None,
    *,
    kind: str | None = None,
    description: str | None = None,
) -> None:
    """Status ERROR and ``error.type`` (``kind``, else the exception's class); the
    exception as an event (type, message, stack trace), as OpenTelemetry records them."""
    if not span.is_recording():
        return
    span.set_attribute(c.ERROR_TYPE, kind or c.error_type(error))
    if error is not None:
        span.record_exception(error)
        if description is None:
            name, text = type(error).__qualname__, str(error)
            description = f"{name}: {text}" if text else name
    span.set_status(Status(StatusCode.ERROR, (description or "")[:MAX_DESCRIPTION_CHARS] or None))


def send_failure(error: BaseException) -> BaseException:
    """What made a send fail: taskiq wraps the broker's error in ``SendTaskError``."""
    from taskiq.exceptions import SendTaskError

    if isinstance(error, SendTaskError) and error.__cause__ is not None:
        return error.__cause__
    return error
