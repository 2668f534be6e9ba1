"""The overview's charts, drawn on the server as inline SVG: the page loads nothing
from outside (no script, no font, no stylesheet of a CDN).

One chart per queue over the last hour: succeeded, failed and dead-lettered per minute
as lines, and the backlog sampled each minute as a shaded area on its own scale.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

from django.utils.safestring import SafeString, mark_safe

from asyncjobs.monitor import MinuteCounts

WIDTH, HEIGHT, PAD = 640, 150, 28
SERIES = (  # field, label, colour (the admin's palette: readable in light and dark mode)
    ("succeeded", "succeeded", "#2e7d32"),
    ("failed", "failed", "#ef6c00"),
    ("dead_lettered", "dead-lettered", "#c62828"),
)
BACKLOG_COLOUR = "#79aec8"


@dataclass(frozen=True, slots=True)
class Totals:
    succeeded: int
    failed: int
    dead_lettered: int
    backlog_now: int | None


def totals(points: Sequence[MinuteCounts]) -> Totals:
    sampled = [p.backlog for p in points if p.backlog is not None]
    return Totals(
        sum(p.succeeded for p in points),
        sum(p.failed for p in points),
        sum(p.dead_lettered for p in points),
        sampled[-1] if sampled else None,
    )


def queue_chart(queue: str, points: Sequence[MinuteCounts]) -> SafeString:
    """An SVG of ``points`` (oldest first, one per minute)."""
    rate_top = max([1] + [getattr(p, f) for p in points for f, _, _ in SERIES])
    backlog_top = max([1] + [p.backlog or 0 for p in points])
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="asyncjobs-chart" role="img" '
        f'width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'data-queue="{escape(queue)}">',
        f"<title>{escape(queue)}: the last {len(points)} minutes</title>",
        _area(points, backlog_top),
        *(_line(points, f, colour, rate_top) for f, _, colour in SERIES),
        _axes(len(points), rate_top, backlog_top),
        "</svg>",
    ]
    return mark_safe("".join(parts))  # noqa: S308 - every text in it is escaped above


def legend() -> SafeString:
    items = [(label, colour) for _, label, colour in SERIES] + [("backlog", BACKLOG_COLOUR)]
    spans = "".join(
        f'<span class="asyncjobs-legend-item"><span style="background:{colour}"></span>'
        f"{escape(label)}</span>"
        for label, colour in items
    )
    return mark_safe(f'<p class="asyncjobs-legend">{spans}</p>')  # noqa: S308 - constants


def _x(index: int, count: int) -> float:
    return PAD + (WIDTH - 2 * PAD) * (index / max(1, count - 1))


def _y(value: float, top: float) -> float:
    return HEIGHT - PAD - (HEIGHT - 2 * PAD) * (value / top)


def _line(points: Sequence[MinuteCounts], field: str, colour: str, top: int) -> str:
    coords = " ".join(
        f"{_x(i, len(points)):.1f},{_y(getattr(p, field), top):.1f}" for i, p in enumerate(points)
    )
    return (
        f'<polyline fill="none" stroke="{colour}" stroke-width="1.5" points="{coords}" '
        f'data-series="{field}"/>'
    )


def _area(points: Sequence[MinuteCounts], top: int) -> str:
    """The backlog where it was sampled; unsampled minutes are gaps, not zeros."""
    runs: list[list[tuple[float, float]]] = [[]]
    for i, p in enumerate(points):
        if p.backlog is None:
            runs.append([])
            continue
        runs[-1].append((_x(i, len(points)), _y(p.backlog, top)))
    base = HEIGHT - PAD
    shapes = []
    for run in (r for r in runs if r):
        coords = " ".join(f"{x:.1f},{y:.1f}" for x, y in run)
        closing = f"{run[-1][0]:.1f},{base} {run[0][0]:.1f},{base}"
        shapes.append(
            f'<polygon fill="{BACKLOG_COLOUR}" fill-opacity="0.35" stroke="none" '
            f'points="{coords} {closing}" data-series="backlog"/>'
        )
    return "".join(shapes)


def _axes(count: int, rate_top: int, backlog_top: int) -> str:
    base, right = HEIGHT - PAD, WIDTH - PAD
    style = 'font-size="10" fill="currentColor"'
    return (
        f'<line x1="{PAD}" y1="{base}" x2="{right}" y2="{base}" stroke="#999"/>'
        f'<text x="{PAD}" y="{HEIGHT - 8}" {style}>-{count - 1} min</text>'
        f'<text x="{right}" y="{HEIGHT - 8}" text-anchor="end" {style}>now</text>'
        f'<text x="2" y="{PAD - 8}" {style}>{rate_top}/min</text>'
        f'<text x="{right}" y="{PAD - 8}" text-anchor="end" {style}>backlog {backlog_top}</text>'
    )
