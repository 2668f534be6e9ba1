"""Django's ASGI application plus the lifespan events Django does not handle.

Django's ASGI handler has no lifespan: the broker client starts lazily on the first
``kiq()`` anyway; this wrapper only closes it cleanly when the server shuts down (and
exports the spans still waiting in a batch, when tracing is on).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from django.core.asgi import get_asgi_application as django_asgi_application

from asyncjobs.tracing import flush as flush_spans

logger = logging.getLogger("asyncjobs.django")

Scope = dict[str, Any]
Receive = Any
Send = Any


def get_asgi_application() -> Any:
    django_app = django_asgi_application()

    async def application(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await django_app(scope, receive, send)
            return
        while True:
            event = await receive()
            if event["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif event["type"] == "lifespan.shutdown":
                await _close_broker()
                # uvicorn re-raises SIGTERM after its shutdown: atexit (the SDK's own
                # flush) never runs, and the last batch of spans would be lost.
                await asyncio.to_thread(flush_spans)
                await send({"type": "lifespan.shutdown.complete"})
                return

    return application


async def _close_broker() -> None:
    from asyncjobs.app import current_broker
    from asyncjobs.brokers.base import ReliableBroker

    broker = current_broker()
    if isinstance(broker, ReliableBroker) and broker.started:
        try:
            await broker.shutdown()
        except Exception as exc:
            logger.warning("closing the broker client failed: %s", exc)
