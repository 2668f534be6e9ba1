"""``make bench`` keeps running: the whole suite at tiny sizes on Redis, for asyncjobs,
raw taskiq, Celery and Dramatiq (every phase's tasks must each have run exactly once: a
figure of a phase that lost or repeated one is printed INVALID), and the tracing-overhead
bench. The figures themselves are not
checked: speed is measured by ``make bench``, never asserted in tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from example.processes import REPO_ROOT

pytestmark = [pytest.mark.e2e, pytest.mark.redis, pytest.mark.timeout(300)]


def run(*argv: str) -> str:
    # As `make bench` runs it: no Django settings in the bench's own process (the test
    # session's DJANGO_SETTINGS_MODULE would hide an import that needs them).
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    done = subprocess.run(
        [sys.executable, "-m", *argv],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


def test_the_bench_suite_runs_and_every_phase_is_valid(redis_url: str, tmp_path: Path) -> None:
    out = tmp_path / "figures.json"
    printed = run("bench", "--smoke", "--brokers", "redis", "--json", str(out))
    written = json.loads(out.read_text())
    figures = written["results"]["redis"]
    invalid = [
        (side, key, figure["note"])
        for side, found in figures.items()
        for key, figure in found.items()
        if not figure["valid"]
    ]
    assert invalid == []
    # Every side ran every compared workload, the worker's CPU per message included.
    compared = {"enqueue_seq_per_s", "enqueue_conc_per_s", "process_per_s", "cpu_us_per_msg"}
    compared |= {"latency_p50_ms", "latency_p99_ms", "io_s", "rss_mb"}
    assert set(figures) == {"asyncjobs", "raw", "celery", "dramatiq"}
    assert all(compared <= set(found) for found in figures.values())
    head = next(line for line in printed.splitlines() if "aj/dramatiq" in line)
    assert head.split() == [
        "asyncjobs", "raw", "taskiq", "celery", "dramatiq", "aj/raw", "aj/celery", "aj/dramatiq"
    ]  # fmt: skip
    assert "CPU per message, us" in printed
    assert "I/O-bound 100 x 50 ms, s" in printed  # the phase's size at --smoke
    # Issue 22's goals, each marked on the broker that ran.
    assert "== goals (issue 22; asyncjobs, one worker process) ==" in printed
    goals = written["goals"]
    assert {"process_per_s", "enqueue_conc_per_s", "latency_p99_ms", "rss_mb"} <= set(goals)
    assert all(set(by_broker) == {"redis"} for by_broker in goals.values())
    assert {"send_await_per_s", "send_sync_1_per_s", "send_sync_n_per_s"} <= set(
        figures["asyncjobs"]
    )
    assert "send: kiq_sync 16 threads /s" in printed
    # The cost of the per-task log lines: the processing rate with them off, beside it.
    assert "process_quiet_per_s" in figures["asyncjobs"]
    assert "processing, task log lines off /s" in printed and "with the lines:" in printed
    # The worker registry's cost: MONITOR on and off, in the same run, beside each other.
    monitor = {"process_monitor_on_per_s", "process_monitor_off_per_s"}
    monitor |= {"process_monitor_on_cpu_us", "process_monitor_off_cpu_us"}
    assert monitor <= set(figures["asyncjobs"])
    assert "same, MONITOR on /s" in printed and "same, MONITOR off /s" in printed
    assert "CPU per task, MONITOR on, us" in printed and "<= 1.03x off:" in printed
    # Django's aenqueue() beside await kiq(), in the same run
    assert {"kiq_p50_us", "aenqueue_p50_us", "kiq_per_s", "aenqueue_per_s"} <= set(
        figures["asyncjobs"]
    )
    assert "tasks: aenqueue() p50 us" in printed
    # The console's dead-letter pages, rendered with many letters (2,000 in a smoke run).
    assert "console pages: 2,000 dead letters written" in printed
    assert "dead letters, newest page" in printed and "goal 500 ms" in printed


def test_the_tracing_overhead_bench_runs(redis_url: str) -> None:
    printed = run("bench.tracing_overhead", "--messages", "200", "--rounds", "1")
    assert "always_on recorded 400 spans per round" in printed


def test_the_worker_profile_script_explains_itself() -> None:
    assert "--broker" in run("bench.profile_worker", "--help")  # needs no py-spy


def test_the_ab_of_two_trees_runs(redis_url: str) -> None:
    """``bench.ab_trees``, the A/B of a change: the same tree on both sides, tiny sizes;
    each round's worker drained every task exactly once (or the run fails)."""
    root = str(REPO_ROOT)
    printed = run("bench.ab_trees", root, root, "--tasks", "50", "--rounds", "2")
    rounds = [line for line in printed.splitlines() if line.startswith("round ")]
    assert [line.split()[2] for line in rounds] == ["A", "B", "B", "A"]
    assert "B/A" in printed


@pytest.mark.rabbitmq
def test_the_latency_floor_runs_on_both_brokers(redis_url: str) -> None:
    """``bench.latency_floor``, enqueue->start without a task queue: a consumer process
    per broker received every message (or the run fails) and a p50 / p99 is printed."""
    printed = run("bench.latency_floor", "--messages", "30", "--rounds", "1", "--gap", "0")
    rows = {line.split()[0]: line.split()[1:3] for line in printed.splitlines()[1:]}
    assert set(rows) == {"redis", "redis-sockets", "amqp"}, printed
    for p50, p99 in rows.values():
        assert 0 < float(p50) <= float(p99), printed
