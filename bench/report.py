"""The tables ``python -m bench`` prints (one per broker: every side's figures, asyncjobs'
ratio to each other side, asyncjobs-only rows; then issue 22's goals) and its JSON."""

from __future__ import annotations

import json
import os
import platform
import sys
from dataclasses import dataclass
from pathlib import Path

from bench.goals import ISSUE_22, Own, own_goal, verdict
from bench.suite import Figure, Results
from bench.sync_sides import CELERY, DRAMATIQ
from bench.workers import ASYNCJOBS, RAW, SIDES

SIDE_NAMES = {ASYNCJOBS: "asyncjobs", RAW: "raw taskiq", CELERY: "celery", DRAMATIQ: "dramatiq"}
RATIO_NAMES = {RAW: "aj/raw", CELERY: "aj/celery", DRAMATIQ: "aj/dramatiq"}


@dataclass(frozen=True)
class Metric:
    key: str
    label: str
    fmt: str
    higher_is_better: bool
    own: Own | None = None  # asyncjobs-only rows: a goal against another figure of its own


# Every side, the same workloads (bench/README.md "Figures").
COMPARED = (
    Metric("enqueue_seq_per_s", "enqueue, one at a time /s", "{:,.0f}", True),
    Metric("enqueue_conc_per_s", "enqueue, concurrent /s", "{:,.0f}", True),
    Metric("process_per_s", "processing, no-op tasks /s", "{:,.0f}", True),
    Metric("cpu_us_per_msg", "CPU per message, us", "{:,.1f}", False),
    Metric("latency_p50_ms", "latency enqueue->start p50 ms", "{:.2f}", False),
    Metric("latency_p99_ms", "latency enqueue->start p99 ms", "{:.2f}", False),
    Metric("io_s", "I/O-bound {io:,} x 50 ms, s", "{:.2f}", False),  # {io}: Sizes.io
    Metric("rss_mb", "worker RSS after run, MiB", "{:.1f}", False),
)

# asyncjobs only, each with its goal against another figure of its own.
OWN = (
    Metric(
        "process_quiet_per_s",
        "processing, task log lines off /s",
        "{:,.0f}",
        True,
        Own(beside=("process_per_s", "with the lines")),
    ),
    Metric(
        "process_quiet_cpu_us",
        "  CPU per message, lines off, us",
        "{:,.1f}",
        False,
        Own(beside=("cpu_us_per_msg", "with the lines")),
    ),
    Metric(
        "process_monitor_off_per_s",
        "  same, MONITOR off /s",
        "{:,.0f}",
        True,
        Own(beside=("process_monitor_on_per_s", "on")),
    ),
    Metric("process_monitor_on_per_s", "  same, MONITOR on /s", "{:,.0f}", True),
    Metric(
        "process_monitor_on_cpu_us",
        "  CPU per task, MONITOR on, us",
        "{:,.1f}",
        False,
        # the registry's budget: <= 3 %
        Own(within=("process_monitor_off_cpu_us", 1.03), label="off"),
    ),
    Metric("process_monitor_off_cpu_us", "  CPU per task, MONITOR off, us", "{:,.1f}", False),
    Metric("send_await_per_s", "send: await kiq() /s", "{:,.0f}", True),
    Metric("send_sync_1_per_s", "send: kiq_sync 1 thread /s", "{:,.0f}", True),
    Metric(
        "send_sync_n_per_s",
        "send: kiq_sync 16 threads /s",
        "{:,.0f}",
        True,
        Own(of=("send_await_per_s", 0.5)),
    ),
    Metric("kiq_p50_us", "tasks: await kiq() p50 us", "{:,.0f}", False),
    Metric(
        "aenqueue_p50_us",
        "tasks: aenqueue() p50 us",
        "{:,.0f}",
        False,
        Own(within=("kiq_p50_us", 1.2), label="kiq"),
    ),
    Metric("kiq_per_s", "tasks: await kiq() /s", "{:,.0f}", True),
    Metric(
        "aenqueue_per_s",
        "tasks: aenqueue() /s",
        "{:,.0f}",
        True,
        # within 1.2x: at least 1 / 1.2 of the kiq() rate
        Own(of=("kiq_per_s", 0.83), label="kiq"),
    ),
)
LABEL_W, VALUE_W, RATIO_W = 34, 11, 12


def _cell(fig: Figure | None, fmt: str) -> str:
    if fig is None:
        return "-"
    return fmt.format(fig.value) if fig.value is not None else "INVALID"


def _ratio(ours: Figure | None, theirs: Figure | None) -> str:
    if ours and theirs and ours.value is not None and theirs.value:
        ratio = ours.value / theirs.value
        return f"{ratio:.2f}" if ratio >= 0.1 else f"{ratio:.3f}"
    return "-"


def _compared(sides: dict[str, Results], io_tasks: int) -> list[str]:
    """The figures of every side in columns, then asyncjobs / each other side."""
    shown = [s for s in SIDES if s in sides]
    others = [s for s in shown if s != ASYNCJOBS] if ASYNCJOBS in sides else []
    head = f"{'':<{LABEL_W}}" + "".join(f"{SIDE_NAMES[s]:>{VALUE_W}}" for s in shown)
    lines = [head + "".join(f"{RATIO_NAMES[s]:>{RATIO_W}}" for s in others)]
    ours = sides.get(ASYNCJOBS)
    for m in COMPARED:
        figs = {s: sides[s].figures.get(m.key) for s in shown}
        label = m.label.format(io=io_tasks)
        row = f"{label + (' ^' if m.higher_is_better else ' v'):<{LABEL_W}}"
        row += "".join(f"{_cell(figs[s], m.fmt):>{VALUE_W}}" for s in shown)
        mine = ours.figures.get(m.key) if ours else None
        lines.append(row + "".join(f"{_ratio(mine, figs[s]):>{RATIO_W}}" for s in others))
    return lines


def _own(ours: Results) -> list[str]:
    lines = ["asyncjobs only:"]
    for m in OWN:
        fig = ours.figures.get(m.key)
        if fig is None:
            continue
        goal = own_goal(m.own, fig.value, ours.figures)
        arrow = " ^" if m.higher_is_better else " v"
        lines.append(f"{m.label + arrow:<{LABEL_W}}{_cell(fig, m.fmt):>{VALUE_W}}  {goal}".rstrip())
    return lines


def goal_verdicts(
    results: dict[str, dict[str, Results]],
) -> dict[str, dict[str, tuple[str, bool | None]]]:
    """{goal key: {broker: (text, met)}} for issue 22's goals, where asyncjobs ran."""
    found: dict[str, dict[str, tuple[str, bool | None]]] = {}
    for goal in ISSUE_22:
        for broker, sides in results.items():
            if ASYNCJOBS not in sides:
                continue
            ours = sides[ASYNCJOBS].figures.get(goal.key)
            raw = sides[RAW].figures.get(goal.key) if RAW in sides else None
            text, met = verdict(goal, broker, ours, raw)
            if text:
                found.setdefault(goal.key, {})[broker] = (text, met)
    return found


def _goals(results: dict[str, dict[str, Results]]) -> list[str]:
    verdicts = goal_verdicts(results)
    if not verdicts:
        return []
    brokers = [b for b in results if ASYNCJOBS in results[b]]
    width = 36
    lines = ["", "== goals (issue 22; asyncjobs, one worker process) =="]
    lines.append((f"{'':<{LABEL_W}}" + "".join(f"{b:<{width}}" for b in brokers)).rstrip())
    met = total = 0
    for goal in ISSUE_22:
        cells = verdicts.get(goal.key, {})
        texts = [cells.get(b, ("", None))[0] for b in brokers]
        lines.append(f"{goal.label:<{LABEL_W}}" + "".join(f"{t:<{width}}" for t in texts).rstrip())
        total += len(cells)
        met += sum(1 for _, ok in cells.values() if ok)
    lines.append(f"met: {met} of {total}")
    return lines


def table(results: dict[str, dict[str, Results]], io_tasks: int) -> str:
    """``io_tasks``: how many tasks the I/O-bound phase ran (``Sizes.io``)."""
    lines: list[str] = []
    for broker, sides in results.items():
        lines += ["", f"== {broker} =="]
        lines += _compared(sides, io_tasks)
        if ASYNCJOBS in sides and any(m.key in sides[ASYNCJOBS].figures for m in OWN):
            lines += _own(sides[ASYNCJOBS])
        for side, res in sides.items():
            for key, fig in res.figures.items():
                if fig.note:
                    lines.append(f"  note: {side} {key}: {fig.note}")
    lines += _goals(results)
    lines.append("")
    lines.append(
        "^ higher is better (aj/x > 1: asyncjobs faster); v lower is better (aj/x < 1: "
        "asyncjobs better)"
    )
    return "\n".join(lines)


def machine() -> dict[str, object]:
    import taskiq

    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "taskiq": taskiq.__version__ if hasattr(taskiq, "__version__") else "?",
    }


def write_json(path: Path, meta: dict[str, object], results: dict[str, dict[str, Results]]) -> None:
    data = {
        "meta": meta,
        "goals": {
            key: {broker: {"goal": text, "met": met} for broker, (text, met) in cells.items()}
            for key, cells in goal_verdicts(results).items()
        },
        "results": {
            broker: {
                side: {key: fig.to_json() for key, fig in res.figures.items()}
                for side, res in sides.items()
            }
            for broker, sides in results.items()
        },
    }
    path.write_text(json.dumps(data, indent=2) + "\n")
