"""Django's ASGI application plus the lifespan events Django does not handle.

Django's ASGI handler has no lifespan: the broker client starts lazily on the first
``kiq()`` anyway. At startup this wrapper tells the client that the server's loop lives
as long as the process (sends from sync views' threads go through it, not through a
loop of asyncjobs' own); at shutdown it closes the client cleanly (and exports the spans
still waiting in a batch, when tracing is on).
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
                await _claim_home()
                await send({"type": "lifespan.startup.complete"})
            elif event["type"] == "lifespan.shutdown":
                await _close_broker()
                # uvicorn re-raises SIGTERM after its shutdown: atexit (the SDK's own
                # flush) never runs, and the last batch of spans would be lost.
                await asyncio.to_thread(flush_spans)
                await send({"type": "lifespan.shutdown.complete"})
                return

    return application


async def _claim_home() -> None:
    from asyncjobs.app import configuration_error, current_broker

    if configuration_error() is not None:
        return  # a bad setting (logged at start-up): the site serves, its sends raise
    await current_broker().home.claim()


async def _close_broker() -> None:
    from asyncjobs.app import configuration_error, current_app

    if configuration_error() is not None:
        return  # no client was ever made
    try:
        await current_app().close()
    except Exception as exc:
        logger.warning("closing the broker client failed: %s", exc)
