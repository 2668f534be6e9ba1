"""The worker's probe endpoints over HTTP, served from a thread.

``GET /livez`` and ``GET /readyz`` answer 200 or 503 with a small JSON body;
``GET /metrics`` serves Prometheus text when metrics are exported that way. A thread,
not the event loop, answers: a blocked loop must fail liveness, not hang the probe.
With ``taskiq worker --workers N``, child ``worker-i`` listens on ``HEALTH_PORT + i``.
"""

from __future__ import annotations

import logging
import multiprocessing
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import orjson

from asyncjobs.worker.health import HealthHooks, ProbeResult

logger = logging.getLogger("asyncjobs.worker")

PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def port_for_this_process(base_port: int) -> int:
    """``HEALTH_PORT`` for the only (or first) worker child, ``+ i`` for ``worker-i``."""
    name = multiprocessing.current_process().name
    index = name.removeprefix("worker-")
    return base_port + int(index) if index.isdigit() else base_port


class ProbeServer:
    def __init__(
        self,
        port: int,
        health: HealthHooks,
        metrics: Callable[[], bytes] | None = None,
        host: str = "0.0.0.0",  # noqa: S104 - the kubelet probes the pod's IP
    ) -> None:
        self.health = health
        self.metrics = metrics
        self._server = ThreadingHTTPServer((host, port), self._handler())
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="asyncjobs-probes", daemon=True
        )

    def start(self) -> ProbeServer:
        self._thread.start()
        extra = ", /metrics" if self.metrics else ""
        logger.info("probes on :%d (/livez, /readyz%s)", self.port, extra)
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path == "/livez":
                    self._probe(server.health.liveness())
                elif path == "/readyz":
                    self._probe(server.health.readiness())
                elif path == "/metrics" and server.metrics is not None:
                    self._send(200, PROMETHEUS_CONTENT_TYPE, server.metrics())
                else:
                    self._send(404, "application/json", b'{"ok": false, "error": "not found"}')

            def _probe(self, result: ProbeResult) -> None:
                body = orjson.dumps({"ok": result.ok, **result.detail})
                self._send(200 if result.ok else 503, "application/json", body)

            def _send(self, status: int, content_type: str, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass  # probes every few seconds would drown the worker's log

        return Handler
