"""A tiny OTLP/HTTP trace receiver, and a trace printed as a tree.

``make demo`` (when no OTLP endpoint is configured) and the end-to-end tests point the
example's processes at ``OtlpReceiver``: ``POST /v1/traces`` with a protobuf
``ExportTraceServiceRequest`` (what ``opentelemetry-exporter-otlp-proto-http`` sends),
decoded into plain records. Needs ``opentelemetry-proto`` (``django-asyncjobs[tracing]``).
"""

from __future__ import annotations

import gzip
import threading
import time
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span as PbSpan
from opentelemetry.proto.trace.v1.trace_pb2 import Status as PbStatus

KINDS = {
    PbSpan.SPAN_KIND_INTERNAL: "INTERNAL",
    PbSpan.SPAN_KIND_SERVER: "SERVER",
    PbSpan.SPAN_KIND_CLIENT: "CLIENT",
    PbSpan.SPAN_KIND_PRODUCER: "PRODUCER",
    PbSpan.SPAN_KIND_CONSUMER: "CONSUMER",
}
STATUSES = {
    PbStatus.STATUS_CODE_UNSET: "UNSET",
    PbStatus.STATUS_CODE_OK: "OK",
    PbStatus.STATUS_CODE_ERROR: "ERROR",
}


@dataclass(frozen=True)
class ReceivedSpan:
    service: str
    trace_id: str
    span_id: str
    parent_id: str  # "" for a root
    name: str
    kind: str
    status: str
    attributes: dict[str, Any] = field(default_factory=dict)
    events: tuple[str, ...] = ()
    start_ns: int = 0
    end_ns: int = 0


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_value(v) for v in value.array_value.values]
    return getattr(value, kind) if kind else None


def decode(body: bytes) -> list[ReceivedSpan]:
    request = ExportTraceServiceRequest()
    request.ParseFromString(body)
    spans = []
    for resource_spans in request.resource_spans:
        resource = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                spans.append(
                    ReceivedSpan(
                        service=str(resource.get("service.name", "")),
                        trace_id=span.trace_id.hex(),
                        span_id=span.span_id.hex(),
                        parent_id=span.parent_span_id.hex(),
                        name=span.name,
                        kind=KINDS.get(span.kind, str(span.kind)),
                        status=STATUSES.get(span.status.code, str(span.status.code)),
                        attributes={a.key: _value(a.value) for a in span.attributes},
                        events=tuple(e.name for e in span.events),
                        start_ns=span.start_time_unix_nano,
                        end_ns=span.end_time_unix_nano,
                    )
                )
    return spans


class OtlpReceiver:
    """Listens on 127.0.0.1:<free port> in a thread; ``spans`` is what arrived so far."""

    def __init__(self) -> None:
        self.spans: list[ReceivedSpan] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                encoding = self.headers.get("Content-Encoding", "")
                if encoding == "gzip":
                    body = gzip.decompress(body)
                elif encoding == "deflate":
                    body = zlib.decompress(body)
                if self.path != "/v1/traces":
                    self.send_response(404)
                    self.end_headers()
                    return
                received = decode(body)
                with receiver._lock:
                    receiver.spans.extend(received)
                answer = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> OtlpReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def snapshot(self) -> list[ReceivedSpan]:
        with self._lock:
            return list(self.spans)


def render_tree(spans: list[ReceivedSpan], trace_id: str) -> list[str]:
    """The spans of one trace as an indented tree, children in start order: name,
    service, kind, duration and (when set) status."""
    mine = sorted((s for s in spans if s.trace_id == trace_id), key=lambda s: s.start_ns)
    ids = {s.span_id for s in mine}
    children: dict[str, list[ReceivedSpan]] = {}
    for span in mine:
        # A parent that never arrived (or is in another process's unsent batch): a root.
        parent = span.parent_id if span.parent_id in ids else ""
        children.setdefault(parent, []).append(span)
    rows: list[tuple[str, ReceivedSpan]] = []

    def walk(parent: str, prefix: str) -> None:
        below = children.get(parent, [])
        for index, span in enumerate(below):
            last = index == len(below) - 1
            branch = "" if parent == "" else ("└─ " if last else "├─ ")
            rows.append((prefix + branch + span.name, span))
            walk(span.span_id, prefix + ("" if parent == "" else ("   " if last else "│  ")))

    walk("", "")
    width = max((len(label) for label, _ in rows), default=0)
    service_width = max((len(s.service) for _, s in rows), default=0)
    lines = []
    for label, span in rows:
        took_ms = max(0, span.end_ns - span.start_ns) / 1e6
        status = "" if span.status == "UNSET" else f"  {span.status}"
        error = span.attributes.get("error.type")
        lines.append(
            f"{label:<{width}}  {span.service:<{service_width}}  {span.kind:<8} "
            f"{took_ms:8.1f} ms{status}{f' ({error})' if error else ''}"
        )
    return lines


class DemoTracing:
    """How ``make demo`` traces, from its environment:

    - ``ASYNCJOBS_TRACING`` set to a false value: not at all;
    - an OTLP endpoint configured (``OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT``), or
      ``ASYNCJOBS_TRACING`` set: the processes export as the ``OTEL_*`` variables say;
    - otherwise: to a receiver in the demo, which prints one signup's trace at the end.
    """

    def __init__(self, environ: Mapping[str, str]) -> None:
        self.receiver: OtlpReceiver | None = None
        self.env: dict[str, str] = {}
        setting = environ.get("ASYNCJOBS_TRACING", "").strip()
        if setting.lower() in ("0", "false", "no", "off"):
            self.note = "tracing off (ASYNCJOBS_TRACING)"
            return
        if setting or any(environ.get(f"OTEL_EXPORTER_OTLP_{k}ENDPOINT") for k in ("", "TRACES_")):
            self.env = {"ASYNCJOBS_TRACING": setting or "true"}
            self.note = "tracing on: spans go where the OTEL_* variables say"
            return
        self.receiver = OtlpReceiver().__enter__()
        self.env = {
            "ASYNCJOBS_TRACING": "true",
            "OTEL_TRACES_EXPORTER": "otlp",
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            "OTEL_EXPORTER_OTLP_ENDPOINT": self.receiver.endpoint,
            "OTEL_BSP_SCHEDULE_DELAY": "500",
        }
        self.note = f"tracing on: spans go to the demo's OTLP receiver at {self.receiver.endpoint}"

    def trace_of(self, task_id: str, wait_s: float = 3.0) -> list[str]:
        """The tree of the trace that sent ``task_id`` (its processes have stopped, so
        they flushed; a moment for the last request to land)."""
        if self.receiver is None:
            return []
        deadline = time.monotonic() + wait_s
        while True:
            spans = self.receiver.snapshot()
            mine = [s for s in spans if s.attributes.get("messaging.message.id") == task_id]
            if any(s.kind == "CONSUMER" for s in mine) or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        if not mine:
            return []
        trace_id = mine[0].trace_id
        return [f"trace {trace_id}:", *render_tree(spans, trace_id)]

    def close(self) -> None:
        if self.receiver is not None:
            self.receiver.__exit__(None, None, None)
            self.receiver = None
