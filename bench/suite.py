"""The measured phases, run for one target (one side on one broker).

1. enqueue, sequential: ``await kiq()`` one after another (``enqueue`` no-op tasks; the
   sync sides: ``.delay()`` / ``.send()``);
2. enqueue, concurrent: ``asyncio.gather`` over chunks of ``chunk`` (``enqueue`` more; the
   sync sides: a pool of threads, ``bench.sync_sides``);
3. processing: a worker started on that backlog (both enqueue phases, 2 x ``enqueue``)
   drains it; rate = tasks / (last task finished - first task started), worker clocks;
   CPU per message = the worker's process tree's CPU time from its first task's start to
   drained (``bench.cpu``) / tasks; asyncjobs only, then the same again with the
   worker's per-task log lines off (``--log-level WARNING``; the first run logs at
   taskiq's default, INFO); then the same with ``MONITOR`` on and off, in alternating
   rounds (``bench.monitor_cost``);
4. RSS of the worker's task process after those tasks;
5. latency: on the now idle worker, ``latency`` tasks sent one at a time, ``gap_s``
   apart; each task measures time.time() at its start minus the producer's time.time()
   just before ``kiq()``; p50 / p99;
6. I/O-bound: ``io`` tasks each sleeping 50 ms enqueued, then a fresh worker started
   (the same settings); time = last finished - first started.
7. asyncjobs only, sending paths (``bench.send_paths``, a process of its own as a WSGI
   worker is): ``sends`` tasks each by ``await kiq()``, by ``kiq_sync()`` from one
   thread and from ``send_threads`` threads; then a worker drains the 3 x ``sends``.
8. asyncjobs only, Django's Tasks API (``bench.task_backend``, a Django process of its
   own): ``sends`` tasks by ``await kiq()`` and ``sends`` by the backend's
   ``aenqueue()``, in alternating blocks, each call timed; a worker drains the 2 x
   ``sends``.

Every phase's tasks are counted in ``bench.recorder``: a figure whose phase did not run
each task exactly once is INVALID (enqueue figures are checked by the processing phase,
which runs the very messages they sent).
"""

from __future__ import annotations

import asyncio
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.cpu import CpuSampler
from bench.monitor_cost import monitor_cost
from bench.recorder import Ledger, Tally
from bench.workers import (
    ASYNCJOBS,
    Producer,
    Target,
    send_paths,
    task_backend_sends,
    worker_rss_mb,
)
from example.processes import ManagedProcess


@dataclass(frozen=True)
class Sizes:
    enqueue: int = 10_000  # per enqueue phase; processing drains both
    chunk: int = 100
    latency: int = 300
    gap_s: float = 0.01
    io: int = 2_000
    sends: int = 4_800  # per sending path; a multiple of send_threads
    send_threads: int = 16
    monitor: int = 10_000  # no-op tasks per round and side of bench.monitor_cost
    monitor_rounds: int = 3


@dataclass
class Figure:
    value: float | None  # None: not measured, or INVALID
    note: str = ""  # why it is INVALID / missing

    def to_json(self) -> dict[str, object]:
        return {"value": self.value, "valid": self.value is not None, "note": self.note}


@dataclass
class Results:
    figures: dict[str, Figure] = field(default_factory=dict)


def _check(tally: Tally, expected: int) -> str:
    if tally.exactly_once(expected):
        return ""
    return f"INVALID: {tally.count} runs, {tally.distinct} distinct of {expected}"


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def _wait(ledger: Ledger, key: str, expected: int, worker: ManagedProcess) -> Tally:
    waiting = asyncio.create_task(ledger.wait(key, expected))
    while not waiting.done():  # a worker that dies must not leave us waiting for 30 s
        if not worker.alive():
            waiting.cancel()
            raise RuntimeError(f"worker died\n{worker.describe()}")
        await asyncio.wait({waiting}, timeout=0.2)
    return waiting.result()


async def run_target(
    target: Target, sizes: Sizes, ledger: Ledger, log_dir: Path, run: str
) -> Results:
    out = Results()
    figs = out.figures
    tag = f"{run}:{target.kind}-{target.broker}"
    proc_key, lat_key, io_key = f"{tag}:proc", f"{tag}:lat", f"{tag}:io"
    total = 2 * sizes.enqueue
    async with Producer(target) as producer:
        began = time.perf_counter()
        await producer.send_each("noop", proc_key, range(sizes.enqueue))
        seq_rate = sizes.enqueue / (time.perf_counter() - began)
        began = time.perf_counter()
        await producer.send_concurrently("noop", proc_key, range(sizes.enqueue, total), sizes.chunk)
        conc_rate = sizes.enqueue / (time.perf_counter() - began)

        worker = target.start_worker(log_dir, "main")
        try:
            tally, cpu_s = await _drain_backlog(ledger, proc_key, total, worker)
            bad = _check(tally, total)
            figs["process_per_s"] = Figure(None if bad else total / tally.span_s, bad)
            figs["cpu_us_per_msg"] = _cpu_figure(cpu_s, total, bad)
            figs["enqueue_seq_per_s"] = Figure(None if bad else seq_rate, bad)
            figs["enqueue_conc_per_s"] = Figure(None if bad else conc_rate, bad)
            rss = worker_rss_mb(worker)
            figs["rss_mb"] = Figure(rss, "" if rss is not None else "no worker child found")
            figs.update(await _latency(producer, sizes, ledger, worker, lat_key))
        finally:
            worker.stop(timeout_s=20)
        figs.update(await _costs(producer, target, sizes, ledger, log_dir, tag))

        await producer.send_concurrently("sleep", io_key, range(sizes.io), sizes.chunk)
        worker = target.start_worker(log_dir, "io")
        try:
            tally = await _wait(ledger, io_key, sizes.io, worker)
            bad = _check(tally, sizes.io)
            figs["io_s"] = Figure(None if bad else tally.span_s, bad)
        finally:
            worker.stop(timeout_s=20)
    if target.kind == ASYNCJOBS:
        figs.update(await _send_paths(target, sizes, ledger, log_dir, f"{tag}:send"))
        figs.update(await _task_backend(target, sizes, ledger, log_dir, f"{tag}:tasks"))
    return out


async def _drain_backlog(
    ledger: Ledger, key: str, expected: int, worker: ManagedProcess
) -> tuple[Tally, float | None]:
    """Wait for a worker just started on a backlog to drain it; the tally and the CPU
    seconds its process tree used from the first task's start to drained (bench.cpu)."""
    async with CpuSampler(worker) as cpu:
        tally = await _wait(ledger, key, expected, worker)
    return tally, cpu.used_since(tally.first)


def _cpu_figure(cpu_s: float | None, n: int, bad: str) -> Figure:
    if bad:
        return Figure(None, bad)
    if cpu_s is None:
        return Figure(None, "no CPU samples around the first task's start")
    return Figure(cpu_s / n * 1e6)


async def _latency(
    producer: Producer, sizes: Sizes, ledger: Ledger, worker: ManagedProcess, key: str
) -> dict[str, Figure]:
    """Phase 5, on the idle worker: ``sizes.latency`` tasks sent one at a time."""
    for i in range(20):  # warm-up: connections, first-call paths
        await producer.kiq("latency", f"{key}-warm", i, time.time())
    await _wait(ledger, f"{key}-warm", 20, worker)
    for i in range(sizes.latency):
        await producer.kiq("latency", key, i, time.time())
        await asyncio.sleep(sizes.gap_s)
    tally = await _wait(ledger, key, sizes.latency, worker)
    bad = _check(tally, sizes.latency)
    lat_ms = [x * 1000 for x in tally.latencies]
    return {
        "latency_p50_ms": Figure(None if bad else statistics.median(lat_ms), bad),
        "latency_p99_ms": Figure(None if bad else _percentile(lat_ms, 0.99), bad),
    }


async def _costs(
    producer: Producer, target: Target, sizes: Sizes, ledger: Ledger, log_dir: Path, tag: str
) -> dict[str, Figure]:
    """asyncjobs only: the no-op rate without the per-task log lines, then with MONITOR
    on and off."""
    figs = await _quiet(producer, target, sizes, ledger, log_dir, f"{tag}:quiet")
    return figs | await _monitor(producer, target, sizes, ledger, log_dir, f"{tag}:monitor")


async def _quiet(
    producer: Producer, target: Target, sizes: Sizes, ledger: Ledger, log_dir: Path, key: str
) -> dict[str, Figure]:
    """asyncjobs only: phase 3 again with the worker's per-task lines off (``--log-level
    WARNING``); the cost of the per-task INFO line (succeeded) is the gap between the rates."""
    if target.kind != ASYNCJOBS:
        return {}
    total = 2 * sizes.enqueue
    await producer.send_concurrently("noop", key, range(total), sizes.chunk)
    worker = target.start_worker(log_dir, "quiet", log_level="WARNING")
    try:
        tally, cpu_s = await _drain_backlog(ledger, key, total, worker)
    finally:
        worker.stop(timeout_s=20)
    bad = _check(tally, total)
    return {
        "process_quiet_per_s": Figure(None if bad else total / tally.span_s, bad),
        "process_quiet_cpu_us": _cpu_figure(cpu_s, total, bad),
    }


async def _monitor(
    producer: Producer, target: Target, sizes: Sizes, ledger: Ledger, log_dir: Path, key: str
) -> dict[str, Figure]:
    """asyncjobs only: the no-op rate with MONITOR on and off (``bench.monitor_cost``)."""
    found = await monitor_cost(
        producer, target, sizes.monitor, sizes.monitor_rounds, ledger, log_dir, key
    )
    return {name: Figure(rate, bad) for name, (rate, bad) in found.items()}


async def _drain(
    target: Target, ledger: Ledger, log_dir: Path, key: str, expected: int, name: str
) -> str:
    """Run a worker until the ``expected`` tasks sent under ``key`` ran; why the figures
    are not valid (a task lost or run twice), or "" when they are."""
    worker = target.start_worker(log_dir, name)
    try:
        tally = await _wait(ledger, key, expected, worker)
    finally:
        worker.stop(timeout_s=20)
    return _check(tally, expected)


async def _send_paths(
    target: Target, sizes: Sizes, ledger: Ledger, log_dir: Path, key: str
) -> dict[str, Figure]:
    rates = await asyncio.to_thread(send_paths, target, key, sizes.sends, sizes.send_threads)
    bad = await _drain(target, ledger, log_dir, key, 3 * sizes.sends, "send")
    threads = sizes.send_threads
    return {
        "send_await_per_s": Figure(None if bad else rates["await"], bad),
        "send_sync_1_per_s": Figure(None if bad else rates["sync_1"], bad),
        "send_sync_n_per_s": Figure(None if bad else rates[f"sync_{threads}"], bad),
    }


async def _task_backend(
    target: Target, sizes: Sizes, ledger: Ledger, log_dir: Path, key: str
) -> dict[str, Figure]:
    """Django's ``aenqueue`` beside ``await kiq()`` (``bench.task_backend``)."""
    found = await asyncio.to_thread(task_backend_sends, target, key, sizes.sends)
    bad = await _drain(target, ledger, log_dir, key, 2 * sizes.sends, "tasks")
    return {name: Figure(None if bad else value, bad) for name, value in found.items()}
