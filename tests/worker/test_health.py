"""Worker probes: liveness follows the event loop, readiness the broker and the drain."""

from __future__ import annotations

import asyncio
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from asyncjobs.worker.health import HealthHooks
from asyncjobs.worker.probe_server import ProbeServer, port_for_this_process
from example.processes import free_port
from tests.faults.workers import ledger, running_worker, wait_worker_ready, worker_env
from tests.support.helpers import wait_until
from tests.support.worker_harness import Worker
from tests.testapp import tasks

pytestmark = pytest.mark.redis


def get(port: int, path: str) -> tuple[int, dict[str, Any]]:
    """GET a probe (blocking: call it in a thread)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, orjson.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, orjson.loads(error.read())


async def probe(port: int, path: str) -> tuple[int, dict[str, Any]]:
    return await asyncio.to_thread(get, port, path)


async def test_probes_follow_the_worker_from_start_to_drain(
    start_worker: Callable[..., object],
) -> None:
    health = HealthHooks(liveness_timeout_s=2.0)
    server = ProbeServer(0, health, host="127.0.0.1").start()
    try:
        assert (await probe(server.port, "/livez"))[0] == 200  # starting: not judged yet
        status, body = await probe(server.port, "/readyz")
        assert status == 503 and body["connected"] is False
        worker: Worker = await start_worker(hooks=(health,))  # type: ignore[misc]
        await wait_until(
            lambda: _status_is(server.port, "/readyz", 200), what="the worker to be ready"
        )
        status, body = await probe(server.port, "/livez")
        assert status == 200 and body["heartbeat_age_s"] <= 2.0
        await worker.stop()
        status, body = await probe(server.port, "/readyz")
        assert status == 503 and body["draining"] is True
        assert (await probe(server.port, "/nope"))[0] == 404
    finally:
        server.stop()


async def test_readiness_fails_on_a_fetch_error_and_recovers() -> None:
    health = HealthHooks(liveness_timeout_s=5.0)
    await health.on_worker_ready()
    assert health.readiness().ok
    await health.on_fetch_error(ConnectionError("Redis is gone"))
    result = health.readiness()
    assert not result.ok and "Redis is gone" in result.detail["fetch_error"]
    await health.on_fetched([])
    assert health.readiness().ok
    stale = HealthHooks(liveness_timeout_s=5.0, fetch_silence_s=0.0)
    await stale.on_worker_ready()
    await stale.on_fetched([])
    await asyncio.sleep(0.01)  # a fetch silence longer than 0 s: the clock must move
    assert not stale.readiness().ok
    for hooks in (health, stale):
        await hooks.on_worker_stopped()


def test_each_worker_child_gets_its_own_port() -> None:
    assert port_for_this_process(8001) == 8001  # the test process is not a worker child


async def test_a_blocked_event_loop_fails_liveness_within_its_timeout(
    redis_url: str, prefix: str, redis_cleanup: None, tmp_path: Path
) -> None:
    port = free_port()
    env = worker_env(
        broker_url=redis_url,
        prefix=prefix,
        extra={
            "ASYNCJOBS_HEALTH_PORT": str(port),
            "ASYNCJOBS_LIVENESS_TIMEOUT": "2",
            "ASYNCJOBS_DRAIN_TIMEOUT": "2",
        },
    )
    from asyncjobs import configured
    from asyncjobs.config import load_config

    async with configured(load_config(None, environ=env)):
        with running_worker(env, log_dir=tmp_path, stop_timeout=5) as worker:
            await wait_worker_ready(worker)
            await wait_until(lambda: _status_is(port, "/livez", 200), what="liveness")
            assert (await probe(port, "/readyz"))[0] == 200
            await _stays_alive(port, 3.0)  # idle past the timeout: the heartbeat goes on
            await tasks.blocks_loop.kiq("b", 30.0)
            await wait_until(
                lambda: _in_ledger(redis_url, prefix, "block-start:b"), what="the task to start"
            )
            blocked_at = time.monotonic()
            await wait_until(
                lambda: _status_is(port, "/livez", 503), timeout=10, what="liveness to fail"
            )
            # The heartbeat is stamped every timeout / 4: it fails by timeout + a beat.
            assert time.monotonic() - blocked_at <= 2.0 + 0.5 + 1.0
            worker.kill()  # a kubelet would restart the container now


async def _stays_alive(port: int, seconds: float) -> None:
    began = time.monotonic()

    async def alive_long_enough() -> bool:
        status, body = await probe(port, "/livez")
        assert status == 200, body
        return time.monotonic() - began > seconds

    await wait_until(alive_long_enough, timeout=seconds + 5, interval=0.2, what="liveness")


async def _ready(health: HealthHooks) -> None:
    await health.on_worker_ready()


async def _status_is(port: int, path: str, status: int) -> bool:
    try:
        return (await probe(port, path))[0] == status
    except OSError:  # not listening yet
        return False


async def _in_ledger(redis_url: str, prefix: str, event: str) -> bool:
    return event in await ledger(redis_url, prefix)
