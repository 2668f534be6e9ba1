"""The goals ``python -m bench`` marks met / not met.

Issue 22's, on asyncjobs' figures of the comparison table (one worker process, each
broker), and the goals of the asyncjobs-only rows, each against another figure of
asyncjobs' own in the same run (the MONITOR budget, the sync send paths of issue 18, the
django.tasks ``aenqueue()`` of issue 20).
"""

from __future__ import annotations

from dataclasses import dataclass

from bench.suite import Figure


@dataclass(frozen=True)
class Bound:
    """A bound on asyncjobs' figure: a number (``at_least`` / ``at_most``) or a
    multiple of raw taskiq's figure on the same broker (``times_raw``)."""

    at_least: float | None = None
    at_most: float | None = None
    times_raw: float | None = None

    def text(self, fmt: str) -> str:
        if self.times_raw is not None:
            return f">= {self.times_raw:g}x raw"
        if self.at_least is not None:
            return ">= " + fmt.format(self.at_least)
        return "<= " + fmt.format(self.at_most)

    def met(self, mine: float | None, raw: float | None) -> bool | None:
        """None: unknown (a figure missing or INVALID)."""
        if mine is None:
            return None
        if self.times_raw is not None:
            return None if not raw else mine >= self.times_raw * raw
        if self.at_least is not None:
            return mine >= self.at_least
        return self.at_most is not None and mine <= self.at_most


@dataclass(frozen=True)
class Goal:
    key: str
    label: str
    fmt: str
    per_broker: dict[str, Bound]


# Issue 22 "Goals": one worker process, today's figures in the issue, these the aims.
# "2x raw aio-pika" / "raw" on RabbitMQ: raw taskiq's figure (taskiq-aio-pika).
ISSUE_22 = (
    Goal(
        "process_per_s",
        "processing no-op tasks /s",
        "{:,.0f}",
        {"redis": Bound(at_least=20_000), "amqp": Bound(at_least=9_000)},
    ),
    Goal(
        "enqueue_conc_per_s",
        "enqueue concurrent /s",
        "{:,.0f}",
        {"redis": Bound(at_least=25_000), "amqp": Bound(times_raw=2)},
    ),
    Goal(
        "enqueue_seq_per_s",
        "enqueue one at a time /s",
        "{:,.0f}",
        {"redis": Bound(at_least=9_000), "amqp": Bound(times_raw=1)},
    ),
    Goal(
        "latency_p50_ms",
        "enqueue->start p50 ms",
        "{:.2f}",
        {"redis": Bound(at_most=0.5), "amqp": Bound(at_most=0.5)},
    ),
    Goal(
        "latency_p99_ms",
        "enqueue->start p99 ms",
        "{:.2f}",
        {"redis": Bound(at_most=1.0), "amqp": Bound(at_most=1.0)},
    ),
    Goal(
        "rss_mb",
        "worker RSS, task process, MiB",
        "{:.1f}",
        {"redis": Bound(at_most=55), "amqp": Bound(at_most=55)},
    ),
)


def verdict(
    goal: Goal, broker: str, ours: Figure | None, raw: Figure | None
) -> tuple[str, bool | None]:
    """('17,680 >= 25,000: NOT met', False) for one goal on one broker; ('', None)
    when the goal has nothing for that broker."""
    target = goal.per_broker.get(broker)
    if target is None:
        return "", None
    mine = ours.value if ours else None
    theirs = raw.value if raw else None
    met = target.met(mine, theirs)
    shown = "INVALID" if ours and mine is None else "-" if mine is None else goal.fmt.format(mine)
    if target.times_raw is not None and mine is not None and theirs:
        shown = f"{mine / theirs:.2f}x raw"
    word = "unknown" if met is None else "met" if met else "NOT met"
    return f"{shown} {target.text(goal.fmt)}: {word}", met


@dataclass(frozen=True)
class Own:
    """The goal column of an asyncjobs-only row: against another figure of its own."""

    # (other figure, what to call it): shows that one / this one
    beside: tuple[str, str] | None = None
    # (other figure, factor): this one at most factor x that one
    within: tuple[str, float] | None = None
    # (other figure, fraction): this one at least fraction x that one
    of: tuple[str, float] | None = None
    label: str = "await"  # what the other figure is called


def own_goal(own: Own | None, mine: float | None, figures: dict[str, Figure]) -> str:
    if own is None:
        return ""
    if own.beside is not None:
        return _beside(own.beside, mine, figures)
    key, factor = own.within or own.of or ("", 0.0)
    other = figures.get(key)
    theirs = other.value if other else None
    if own.within is not None:
        return _within(factor, own.label, mine, theirs)
    text = f">= {factor:g}x {own.label}"
    if mine is None or not theirs:
        return f"{text}: unknown"
    return f"{text}: {'met' if mine >= factor * theirs else 'NOT met'}"


def _beside(beside: tuple[str, str], mine: float | None, figures: dict[str, Figure]) -> str:
    """'with the lines: 0.93x this': another figure of asyncjobs' over this one."""
    other_key, name = beside
    other = figures.get(other_key)
    if not mine or other is None or other.value is None:
        return ""
    return f"{name}: {other.value / mine:.2f}x this"


def _within(factor: float, label: str, mine: float | None, theirs: float | None) -> str:
    """Whether ``mine`` is at most ``factor`` times the other figure (and the ratio)."""
    if mine is None or not theirs:
        return f"<= {factor:g}x {label}: unknown"
    met = "met" if mine <= factor * theirs else "NOT met"
    return f"<= {factor:g}x {label}: {met} ({mine / theirs:.3f}x)"
