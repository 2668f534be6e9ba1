"""Tracing fixtures: spans recorded in memory, on the process's global tracer provider.

Spans a task opens itself use the global provider (``trace.get_tracer(...)``), so the
tests record from it too: the first tracing test sets an SDK provider (always on) for
the rest of the session; each test gets its own in-memory exporter on it and reads only
its own traces.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_ON


class _Switch(SimpleSpanProcessor):
    """Forwards to the current test's exporter (processors cannot be removed)."""

    def __init__(self) -> None:
        self.current: InMemorySpanExporter | None = None
        super().__init__(InMemorySpanExporter())

    def on_end(self, span: object) -> None:
        if self.current is not None:
            self.current.export([span])  # type: ignore[list-item]


_switch: _Switch | None = None


def global_provider() -> TracerProvider:
    global _switch
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        trace.set_tracer_provider(TracerProvider(sampler=ALWAYS_ON))
        provider = trace.get_tracer_provider()
        assert isinstance(provider, TracerProvider)
    if _switch is None:
        _switch = _Switch()
        provider.add_span_processor(_switch)
    return provider


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    """What ends on the global tracer provider during this test."""
    global_provider()
    assert _switch is not None
    recorded = InMemorySpanExporter()
    _switch.current = recorded
    yield recorded
    _switch.current = None
