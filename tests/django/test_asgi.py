"""The ASGI wrapper closes this process's broker client when the server shuts down."""

from __future__ import annotations

from typing import Any

import pytest

from asyncjobs import current_broker
from asyncjobs.brokers.base import ReliableBroker
from asyncjobs.config import AsyncJobsConfig
from asyncjobs.django.asgi import get_asgi_application
from asyncjobs.django.errors import AsyncJobsImproperlyConfigured
from tests.testapp import tasks


async def lifespan() -> list[str]:
    """An ASGI server's lifespan through the app, start-up then shutdown: what it sent."""
    events = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return events.pop(0)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await get_asgi_application()({"type": "lifespan"}, receive, send)
    return [m["type"] for m in sent]


@pytest.mark.redis
async def test_lifespan_shutdown_closes_the_lazily_started_client(
    configured: AsyncJobsConfig,
) -> None:
    await tasks.add.kiq(1, 1)  # the web process's first kiq starts the client
    broker = current_broker()
    assert isinstance(broker, ReliableBroker) and broker.started
    assert await lifespan() == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert not broker.started


async def test_lifespan_with_a_bad_setting_starts_and_stops(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Django started with a bad setting (recorded): the site serves, its sends raise.
    from asyncjobs import app

    monkeypatch.setattr(app, "_current", AsyncJobsImproperlyConfigured("BROKER_URL is required"))
    assert await lifespan() == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
