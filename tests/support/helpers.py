"""Waiting on state (never on bare sleeps), asyncjobs configured for one test, and a
missing prerequisite that skips locally but fails under CI."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, NoReturn, TypeVar

import pytest

if TYPE_CHECKING:
    from asyncjobs.brokers.base import Delivery, ReliableBroker
    from asyncjobs.config import AsyncJobsConfig

T = TypeVar("T")


async def wait_until(
    probe: Callable[[], Awaitable[T]],
    *,
    timeout: float = 10.0,
    interval: float = 0.02,
    what: str = "",
) -> T:
    """Poll ``probe`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = await probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what or probe}")
        await asyncio.sleep(interval)


@contextlib.asynccontextmanager
async def configured_app(config: AsyncJobsConfig) -> AsyncIterator[ReliableBroker]:
    """``asyncjobs.configured(config)`` for the block, yielding its broker; the test's
    loop holds the client, as an ASGI server's does (its lifespan claims it), so the
    test may call the broker's own methods too."""
    from asyncjobs import configured

    async with configured(config) as app:
        await app.broker.home.claim()
        yield app.broker


def unavailable(what: str) -> NoReturn:
    """Skip a test whose prerequisite ``what`` is missing; fail it under CI (``CI`` set),
    where a skip would pass a run that tested nothing."""
    if os.environ.get("CI"):
        pytest.fail(f"{what}, and CI is set")
    pytest.skip(what)


async def fetch_n(broker: ReliableBroker, n: int) -> list[Delivery]:
    """Fetch until ``n`` deliveries arrived (a fetch may return fewer)."""
    got: list[Delivery] = []

    async def probe() -> bool:
        got.extend(await broker.fetch(n - len(got), 0.2))
        return len(got) >= n

    await wait_until(probe, what=f"{n} deliveries")
    assert len(got) == n
    return got


def django_env(config: AsyncJobsConfig) -> dict[str, str]:
    """The environment of a Django process of the test project (an operator's CLI next
    to the workers) on ``config``'s broker, key prefix and result store; no other
    ``ASYNCJOBS_*`` variable of this process leaks in."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("ASYNCJOBS_")}
    env |= {
        "DJANGO_SETTINGS_MODULE": "tests.django_settings",
        "ASYNCJOBS_BROKER_URL": config.broker_url,
        "ASYNCJOBS_KEY_PREFIX": config.key_prefix,
    }
    if config.result_backend_url:
        env["ASYNCJOBS_RESULT_BACKEND_URL"] = config.result_backend_url
    return env
