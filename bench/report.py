"""The table ``python -m bench`` prints, the issue's goals, and the JSON it writes."""

from __future__ import annotations

import json
import os
import platform
import sys
from dataclasses import dataclass
from pathlib import Path

from bench.suite import Figure, Results


@dataclass(frozen=True)
class Metric:
    key: str
    label: str
    fmt: str
    higher_is_better: bool
    ratio_goal: float | None = None  # asyncjobs/raw must be at least this
    limit: float | None = None  # asyncjobs' own figure must be at most this
    limit_brokers: tuple[str, ...] = ("redis", "amqp")
    # (another figure of asyncjobs', at least this fraction of it)
    of_own: tuple[str, float] | None = None
    # (another figure of asyncjobs', what to call it): shows that one / this one
    beside: tuple[str, str] | None = None
    # (another figure of asyncjobs', at most this multiple of it)
    within_own: tuple[str, float] | None = None
    own_label: str = "await"  # what the other figure is called in the goal column


METRICS = (
    Metric("enqueue_seq_per_s", "enqueue, sequential awaits /s", "{:,.0f}", True, ratio_goal=2),
    Metric("enqueue_conc_per_s", "enqueue, gather chunks /s", "{:,.0f}", True, ratio_goal=2),
    Metric("process_per_s", "processing, no-op tasks /s", "{:,.0f}", True, ratio_goal=2),
    Metric(
        "process_quiet_per_s",
        "  same, task log lines off /s",
        "{:,.0f}",
        True,
        beside=("process_per_s", "with the lines"),
    ),
    Metric(
        "process_monitor_off_per_s",
        "  same, MONITOR off /s",
        "{:,.0f}",
        True,
        beside=("process_monitor_on_per_s", "on"),
    ),
    Metric("process_monitor_on_per_s", "  same, MONITOR on /s", "{:,.0f}", True),
    Metric(
        "process_monitor_on_cpu_us",
        "  CPU per task, MONITOR on, us",
        "{:,.1f}",
        False,
        within_own=("process_monitor_off_cpu_us", 1.03),  # the registry's budget: <= 3 %
        own_label="off",
    ),
    Metric("process_monitor_off_cpu_us", "  CPU per task, MONITOR off, us", "{:,.1f}", False),
    Metric("latency_p50_ms", "latency enqueue->start p50 ms", "{:.2f}", False, None, 2, ("redis",)),
    Metric("latency_p99_ms", "latency enqueue->start p99 ms", "{:.2f}", False, None, 5, ("redis",)),
    Metric("io_s", "I/O-bound 2,000 x 50 ms, s", "{:.2f}", False, limit=0.5),
    Metric("rss_mb", "worker RSS after run, MiB", "{:.1f}", False, limit=100),
    Metric("send_await_per_s", "send: await kiq() /s", "{:,.0f}", True),
    Metric("send_sync_1_per_s", "send: kiq_sync 1 thread /s", "{:,.0f}", True),
    Metric(
        "send_sync_n_per_s",
        "send: kiq_sync 16 threads /s",
        "{:,.0f}",
        True,
        of_own=("send_await_per_s", 0.5),
    ),
    Metric("kiq_p50_us", "tasks: await kiq() p50 us", "{:,.0f}", False),
    Metric(
        "aenqueue_p50_us",
        "tasks: aenqueue() p50 us",
        "{:,.0f}",
        False,
        within_own=("kiq_p50_us", 1.2),
        own_label="kiq",
    ),
    Metric("kiq_per_s", "tasks: await kiq() /s", "{:,.0f}", True),
    Metric(
        "aenqueue_per_s",
        "tasks: aenqueue() /s",
        "{:,.0f}",
        True,
        of_own=("kiq_per_s", 0.83),  # within 1.2x: at least 1 / 1.2 of the kiq() rate
        own_label="kiq",
    ),
)


def _cell(fig: Figure | None, fmt: str) -> str:
    if fig is None:
        return "-"
    return fmt.format(fig.value) if fig.value is not None else "INVALID"


def goal(
    metric: Metric,
    broker: str,
    ours: Figure | None,
    raw: Figure | None,
    own: dict[str, Figure] | None = None,
) -> str:
    """'goal: met' / 'goal: NOT met' / '' (no goal for this broker)."""
    mine = ours.value if ours else None
    against_own = _against_own(metric, mine, own or {})
    if against_own is not None:
        return against_own
    if metric.ratio_goal is not None:
        theirs = raw.value if raw else None
        return _verdict(f">= {metric.ratio_goal:g}x raw", mine, theirs, metric.ratio_goal)
    if metric.limit is not None and broker in metric.limit_brokers:
        if mine is None:
            return f"<= {metric.limit:g}: unknown"
        return f"<= {metric.limit:g}: {'met' if mine <= metric.limit else 'NOT met'}"
    return ""


def _against_own(metric: Metric, mine: float | None, own: dict[str, Figure]) -> str | None:
    """The goal column of a figure compared with another of asyncjobs' own; None: not one."""
    if metric.beside is not None:
        return _beside(metric.beside, mine, own)
    if metric.within_own is not None:
        return _within(metric.within_own, mine, own, metric.own_label)
    if metric.of_own is not None:
        other_key, fraction = metric.of_own
        other = own.get(other_key)
        text = f">= {fraction:g}x {metric.own_label}"
        return _verdict(text, mine, other.value if other else None, fraction)
    return None


def _beside(beside: tuple[str, str], mine: float | None, own: dict[str, Figure]) -> str:
    """'with the lines: 0.93x this': another figure of asyncjobs' over this one."""
    other_key, name = beside
    other = own.get(other_key)
    if not mine or other is None or other.value is None:
        return ""
    return f"{name}: {other.value / mine:.2f}x this"


def _within(
    within: tuple[str, float], mine: float | None, own: dict[str, Figure], label: str
) -> str:
    """Whether ``mine`` is at most ``factor`` times asyncjobs' other figure (the ratio)."""
    other_key, factor = within
    other = own.get(other_key)
    theirs = other.value if other else None
    if mine is None or not theirs:
        return f"<= {factor:g}x {label}: unknown"
    verdict = "met" if mine <= factor * theirs else "NOT met"
    return f"<= {factor:g}x {label}: {verdict} ({mine / theirs:.3f}x)"


def _verdict(text: str, mine: float | None, other: float | None, factor: float) -> str:
    """Whether ``mine`` is at least ``factor`` times ``other``."""
    if mine is None or not other:
        return f"{text}: unknown"
    return f"{text}: {'met' if mine >= factor * other else 'NOT met'}"


def table(results: dict[str, dict[str, Results]]) -> str:
    head = f"{'':<32}{'asyncjobs':>12}{'raw taskiq':>12}{'aj/raw':>9}  goal (asyncjobs)"
    lines: list[str] = []
    for broker, sides in results.items():
        lines += ["", f"== {broker} ==", head]
        ours, raw = sides.get("asyncjobs"), sides.get("raw")
        for m in METRICS:
            a = ours.figures.get(m.key) if ours else None
            r = raw.figures.get(m.key) if raw else None
            ratio = "-"
            if a and r and a.value is not None and r.value:
                ratio = f"{a.value / r.value:.2f}"
            arrow = "^" if m.higher_is_better else "v"
            lines.append(
                f"{m.label + ' ' + arrow:<32}{_cell(a, m.fmt):>12}{_cell(r, m.fmt):>12}"
                f"{ratio:>9}  {goal(m, broker, a, r, ours.figures if ours else None)}"
            )
        for side, res in sides.items():
            for key, fig in res.figures.items():
                if fig.note:
                    lines.append(f"  note: {side} {key}: {fig.note}")
    lines.append("")
    lines.append("^ higher is better (ratio > 1: asyncjobs faster); v lower is better (ratio < 1)")
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
        "results": {
            broker: {
                side: {key: fig.to_json() for key, fig in res.figures.items()}
                for side, res in sides.items()
            }
            for broker, sides in results.items()
        },
    }
    path.write_text(json.dumps(data, indent=2) + "\n")
