"""The example project behind other web servers than the demo's uvicorn: gunicorn (WSGI,
threads, maybe ``--preload``) and ``manage.py runserver``; and the load that drives them.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import signal
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from example.processes import REPO_ROOT, ExampleStack, ManagedProcess, free_port
from tests.support.helpers import wait_until

PRELOAD_CONFIG = "python:tests.support.gunicorn_preload"


def start_gunicorn(
    stack: ExampleStack, *, workers: int, threads: int, preload: bool = False
) -> ManagedProcess:
    """gunicorn's threaded workers serving ``example.wsgi``; with ``preload`` the master
    loads the app and sends a task before it forks them (``gunicorn_preload.py``)."""
    stack.web_port = free_port()
    argv = [
        sys.executable, "-m", "gunicorn", "example.wsgi:application",
        "--bind", f"127.0.0.1:{stack.web_port}",
        "--worker-class", "gthread",
        "--workers", str(workers),
        "--threads", str(threads),
        "--backlog", "2048",
        "--graceful-timeout", "10",
        "--log-level", "warning",
    ]  # fmt: skip
    if preload:
        argv += ["--preload", "--config", PRELOAD_CONFIG]
    stack.web = stack.start("web", argv)  # SIGTERM: a graceful stop, exit code 0
    return stack.web


def start_runserver(stack: ExampleStack) -> ManagedProcess:
    """Django's development server (threaded; each async view in a loop of its own)."""
    stack.web_port = free_port()
    manage = str(REPO_ROOT / "example" / "manage.py")
    argv = [sys.executable, manage, "runserver", f"127.0.0.1:{stack.web_port}", "--noreload"]
    # runserver has no graceful stop: SIGTERM ends it (-15).
    stack.web = stack.start("web", argv, clean_exit_codes=frozenset({0, -signal.SIGTERM}))
    return stack.web


def worker_pids(master: ManagedProcess, count: int) -> list[int]:
    """The pids of gunicorn's ``count`` workers (the master's children), once forked."""

    children_file = Path(f"/proc/{master.pid}/task/{master.pid}/children")

    async def forked() -> list[int]:
        children = children_file.read_text().split()  # noqa: ASYNC240 - a /proc read
        return [int(pid) for pid in children] if len(children) >= count else []

    return asyncio.run(wait_until(forked, timeout=30, what=f"{count} gunicorn workers"))


def post_from_threads(base_url: str, path: str, threads: int, each: int) -> list[str]:
    """``threads`` clients, each POSTing ``path`` ``each`` times on one keep-alive
    connection; the task ids of the answers (every one must be 202)."""
    host, port = base_url.removeprefix("http://").split(":")

    def client(_: int) -> list[str]:
        conn = http.client.HTTPConnection(host, int(port), timeout=30)
        try:
            return [_post(conn, path) for _ in range(each)]
        finally:
            conn.close()

    with ThreadPoolExecutor(threads) as pool:
        return [task_id for ids in pool.map(client, range(threads)) for task_id in ids]


def _post(conn: http.client.HTTPConnection, path: str) -> str:
    conn.request("POST", path, body=b"", headers={"Content-Length": "0"})
    response = conn.getresponse()
    body = response.read()
    assert response.status == 202, (response.status, body[:300])
    return str(json.loads(body)["task"])


async def post_in_bursts(
    base_url: str, path: str, bursts: int, size: int, answer_within_s: float
) -> list[str]:
    """``bursts`` rounds of ``size`` concurrent POSTs; each must answer 202 within
    ``answer_within_s``. The task ids."""
    sent: list[str] = []
    async with httpx.AsyncClient(base_url=base_url, timeout=answer_within_s) as client:
        for _ in range(bursts):
            answers = await asyncio.gather(*(client.post(path) for _ in range(size)))
            for answer in answers:
                assert answer.status_code == 202, (answer.status_code, answer.text[:300])
                sent.append(str(answer.json()["task"]))
    return sent


def wait_for_visits(stack: ExampleStack, page: str, expected: int, timeout_s: float = 180.0) -> int:
    """Poll ``GET /visits/<page>`` until ``expected`` visits are counted; the count."""
    deadline = time.monotonic() + timeout_s
    while True:
        stack.check_alive()
        counted = visits_counted(stack, page)
        if counted >= expected or time.monotonic() > deadline:
            return counted
        time.sleep(0.2)  # polling the count the worker is filling in


def visits_counted(stack: ExampleStack, page: str) -> int:
    with httpx.Client(base_url=stack.base_url, timeout=10) as client:
        return int(client.get(f"/visits/{page}").json()["visits"])
