"""Process helpers for the end-to-end tests: the demo's (``example.processes``) plus waits
on the example's tasks over HTTP.

The demo must not import the tests, so the process management lives in
``example/processes.py``; this module re-exports it and adds what only tests need.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx

from example.processes import (
    REPO_ROOT,
    EmbeddedRedis,
    ExampleStack,
    ManagedProcess,
    ProcessError,
    delete_amqp_queues,
    delete_redis_prefix,
    delete_results,
    free_port,
    stop_all,
    tail,
    wait_http_ready,
)

__all__ = [
    "REPO_ROOT",
    "EmbeddedRedis",
    "ExampleStack",
    "ManagedProcess",
    "ProcessError",
    "delete_amqp_queues",
    "delete_redis_prefix",
    "delete_results",
    "free_port",
    "stop_all",
    "tail",
    "task_state",
    "wait_for_task",
    "wait_http_ready",
]


async def task_state(client: httpx.AsyncClient, task_id: str) -> dict[str, Any]:
    """What ``GET /tasks/<id>`` says about a task."""
    response = await client.get(f"/tasks/{task_id}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def wait_for_task(
    client: httpx.AsyncClient,
    stack: ExampleStack,
    task_id: str,
    *,
    timeout_s: float = 30.0,
) -> dict[str, Any]:
    """Poll ``GET /tasks/<id>`` until the task is ready; fail with the logs otherwise."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        stack.check_alive()
        state = await task_state(client, task_id)
        if state["ready"]:
            return state
        await asyncio.sleep(0.1)
    raise AssertionError(
        f"task {task_id} not finished after {timeout_s:.0f}s\n{stack.describe(lines=60)}"
    )
