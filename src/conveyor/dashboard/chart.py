"""The overview's chart: tasks processed and failed per minute, as an inline SVG drawn on the
server (no JavaScript charting library, nothing fetched from elsewhere)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..brokers import MinuteCounts

WIDTH, HEIGHT, PAD = 900, 180, 28


@dataclass(frozen=True, slots=True)
class Chart:
    """Per-minute totals over every task name, oldest first, one entry per minute (zeros
    included) from ``start`` for ``minutes`` minutes."""

    start: int
    processed: tuple[int, ...]
    failed: tuple[int, ...]

    @property
    def peak(self) -> int:
        return max((*self.processed, 1))


def per_minute(counts: Sequence[MinuteCounts], start: int, minutes: int) -> Chart:
    """Sum the per-name counters into per-minute totals.

    >>> c = per_minute([MinuteCounts(60, "a", 3, 1), MinuteCounts(60, "b", 2)], 0, 3)
    >>> c.processed, c.failed
    ((0, 5, 0), (0, 1, 0))
    """
    processed = [0] * minutes
    failed = [0] * minutes
    for c in counts:
        i = (c.minute - start) // 60
        if 0 <= i < minutes:
            processed[i] += c.processed
            failed[i] += c.failed
    return Chart(start, tuple(processed), tuple(failed))


def svg(chart: Chart) -> str:
    """Bars for processed (with the failed part in red on top of each); only numbers and fixed
    text go into it, so it needs no escaping."""
    n = max(1, len(chart.processed))
    inner_w, inner_h = WIDTH - 2 * PAD, HEIGHT - 2 * PAD
    step = inner_w / n
    bar = max(1.0, step * 0.8)
    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="tasks processed and failed per minute">',
        f'<text x="{PAD}" y="16" class="legend">peak {chart.peak}/min · '
        f'<tspan class="ok">processed</tspan> · <tspan class="bad">failed</tspan></text>',
        f'<line x1="{PAD}" y1="{HEIGHT - PAD}" x2="{WIDTH - PAD}" y2="{HEIGHT - PAD}" class="axis"/>',
    ]
    for i, (done, bad) in enumerate(zip(chart.processed, chart.failed, strict=True)):
        if not done:
            continue
        x = PAD + i * step
        h = inner_h * done / chart.peak
        fh = inner_h * bad / chart.peak
        y = HEIGHT - PAD - h
        parts.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar:.1f}" height="{h - fh:.1f}" class="ok"/>')
        if bad:
            parts.append(
                f'<rect x="{x:.1f}" y="{y + h - fh:.1f}" width="{bar:.1f}" height="{fh:.1f}" class="bad"/>'
            )
    hours = n / 60
    parts.append(
        f'<text x="{PAD}" y="{HEIGHT - 8}" class="legend">{hours:g}h ago</text>'
        f'<text x="{WIDTH - PAD}" y="{HEIGHT - 8}" class="legend" text-anchor="end">now</text></svg>'
    )
    return "".join(parts)
