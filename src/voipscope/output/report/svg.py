"""Small inline SVG charts: horizontal bars, a stacked histogram over capture time, and
lanes of time spans (calls, talk spurts). No script: hover text is SVG ``<title>``.

Every chart is bounded by its pixels, not by the records: bars come pre-aggregated,
histograms have at most ``query.MAX_BINS`` bins, and lanes merge spans closer than a
pixel, so a chart stays a few kB whatever the capture held.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from voipscope.output.report.text import Safe, esc, num, short, utc

FALLBACK_COLORS = ("#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2",
                   "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac")  # fmt: skip
LABEL_CHARS = 30  # an SVG label does not wrap: longer ones are cut (the tooltip has all)
LANE_LABEL_CHARS, LANE_LABEL_PX = 40, 280
WIDE_PX = 900
# Steps a time axis or a histogram bin may take, in seconds: "nice" clock values.
TIME_STEPS_S = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30,
                60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400,
                172800, 604800, 2592000)  # fmt: skip


def color_of(name: str, colors: Mapping[str, str], index: int) -> str:
    return colors.get(name) or FALLBACK_COLORS[index % len(FALLBACK_COLORS)]


def nice_step(span_s: float, parts: int) -> float:
    """The smallest nice clock step that cuts ``span_s`` into at most ``parts``."""
    want = span_s / max(1, parts)
    for step in TIME_STEPS_S:
        if step >= want:
            return float(step)
    return float(math.ceil(want / TIME_STEPS_S[-1]) * TIME_STEPS_S[-1])


def _tick_label(ts: float, step_s: float) -> str:
    when = dt.datetime.fromtimestamp(ts, dt.UTC)
    if step_s < 1:
        return when.strftime("%H:%M:%S.%f")[:-3]
    if step_s < 60:
        return when.strftime("%H:%M:%S")
    if step_s < 86400:
        return when.strftime("%H:%M")
    return when.strftime("%Y-%m-%d")


def _svg(width: int, height: int, title: str, body: list[str]) -> Safe:
    return Safe(
        # No xmlns: inline SVG in HTML needs none, and the page then names no URL at all.
        f'<svg class="chart" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{esc(title)}"><title>{esc(title)}</title>{"".join(body)}</svg>'
    )


def hbar(
    items: Sequence[tuple[str, int]],
    title: str,
    colors: Mapping[str, str] | None = None,
    width: int = 430,
) -> Safe:
    """One bar per (label, count); labels as given (pre-sorted, pre-capped)."""
    colors = colors or {}
    row_px, label_px, top_px = 20, 190, 24
    height = top_px + row_px * max(1, len(items)) + 6
    body = [f'<text x="0" y="15" class="ct">{esc(title)}</text>']
    top = max((count for _, count in items), default=0) or 1
    bar_room = width - label_px - 60
    for i, (label, count) in enumerate(items):
        y = top_px + i * row_px
        bar = max(1.0, bar_room * count / top) if count else 0.0
        body.append(
            f'<text x="{label_px - 6}" y="{y + 14}" text-anchor="end">'
            f"{esc(short(label, LABEL_CHARS))}</text>"
            f'<rect x="{label_px}" y="{y + 3}" width="{bar:.1f}" height="{row_px - 6}" '
            f'fill="{color_of(label, colors, i)}"><title>{esc(label)}: {num(count)}</title></rect>'
            f'<text x="{label_px + bar + 4:.1f}" y="{y + 14}">{num(count)}</text>'
        )
    if not items:
        body.append(f'<text x="{label_px}" y="{top_px + 14}" class="muted">none</text>')
    return _svg(width, height, title, body)


@dataclass(slots=True)
class TimeAxis:
    """Capture time ``t0``..``t1`` (epoch s) onto ``x0``..``x1`` pixels."""

    t0: float
    t1: float
    x0: float = 190.0
    x1: float = WIDE_PX - 20.0

    def x(self, ts: float) -> float:
        span = self.t1 - self.t0
        if span <= 0:
            return self.x0
        return self.x0 + (self.x1 - self.x0) * min(1.0, max(0.0, (ts - self.t0) / span))

    def draw(self, y: float, top: float) -> list[str]:
        """Gridlines from ``top`` to ``y``, tick labels under ``y``, and the UTC date."""
        span = max(self.t1 - self.t0, 1e-3)
        step = nice_step(span, 6)
        first = math.ceil(self.t0 / step) * step
        out = [f'<line x1="{self.x0}" y1="{y}" x2="{self.x1}" y2="{y}" class="axis"/>']
        tick = first
        while tick <= self.t1 + 1e-9:
            x = self.x(tick)
            out.append(
                f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{y}" class="grid"/>'
                f'<text x="{x:.1f}" y="{y + 14}" text-anchor="middle">'
                f"{esc(_tick_label(tick, step))}</text>"
            )
            tick = first + round((tick - first) / step + 1) * step
        out.append(
            f'<text x="{self.x1}" y="{y + 30}" text-anchor="end" class="muted">'
            f"capture time, UTC, from {esc(utc(self.t0))}</text>"
        )
        return out


def stacked_histogram(
    t0: float,
    bin_s: float,
    series: Sequence[tuple[str, Sequence[int]]],
    title: str,
    colors: Mapping[str, str] | None = None,
) -> Safe:
    """Counts per time bin (``bin_s`` wide from ``t0``), one stacked colour per series."""
    colors = colors or {}
    bins = max((len(counts) for _, counts in series), default=0)
    axis = TimeAxis(t0, t0 + bin_s * max(1, bins), x0=50.0)
    plot_top, plot_bottom = 30.0, 170.0
    totals = [sum(counts[i] for _, counts in series if i < len(counts)) for i in range(bins)]
    top = max(totals, default=0) or 1
    body = [f'<text x="0" y="15" class="ct">{esc(title)} (per {esc(_bin_label(bin_s))})</text>']
    body += [
        f'<text x="44" y="{plot_top + 4}" text-anchor="end">{num(top)}</text>',
        f'<text x="44" y="{plot_bottom}" text-anchor="end">0</text>',
    ]
    body += axis.draw(plot_bottom, plot_top)
    bar_px = (axis.x1 - axis.x0) / max(1, bins)
    for i in range(bins):
        y = plot_bottom
        for n, (name, counts) in enumerate(series):
            count = counts[i] if i < len(counts) else 0
            if not count:
                continue
            h = (plot_bottom - plot_top) * count / top
            y -= h
            start, x = t0 + i * bin_s, axis.x0 + i * bar_px
            body.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{max(bar_px - 1, 1):.1f}" '
                f'height="{h:.1f}" fill="{color_of(name, colors, n)}"><title>{esc(name)}: '
                f"{num(count)} from {esc(utc(start))}</title></rect>"
            )
    body += _legend([name for name, _ in series], colors, 50.0, plot_bottom + 44)
    return _svg(WIDE_PX, int(plot_bottom + 56), title, body)


def _bin_label(bin_s: float) -> str:
    if bin_s < 1:
        return f"{bin_s * 1000:g} ms"
    if bin_s < 60:
        return f"{bin_s:g} s"
    if bin_s < 3600:
        return f"{bin_s / 60:g} min"
    if bin_s < 86400:
        return f"{bin_s / 3600:g} h"
    return f"{bin_s / 86400:g} d"


def _legend(names: Sequence[str], colors: Mapping[str, str], x: float, y: float) -> list[str]:
    out = []
    for n, name in enumerate(names):
        out.append(
            f'<rect x="{x:.1f}" y="{y - 9}" width="10" height="10" '
            f'fill="{color_of(name, colors, n)}"/>'
            f'<text x="{x + 14:.1f}" y="{y}">{esc(short(name, LABEL_CHARS))}</text>'
        )
        x += 24 + 7 * min(len(name), LABEL_CHARS)
    return out


@dataclass(slots=True)
class Lane:
    """One row of a lanes chart: a label and spans (start, end, colour name, tooltip)."""

    label: str
    spans: list[tuple[float, float, str, str]] = field(default_factory=list)


def lanes(
    t0: float,
    t1: float,
    rows: Sequence[Lane],
    title: str,
    colors: Mapping[str, str] | None = None,
    legend: Sequence[str] = (),
) -> Safe:
    """Spans on lanes over ``t0``..``t1``. Spans of a lane closer than a pixel merge into
    one mark (its tooltip counts them), so a lane is at most its width in marks."""
    colors = colors or {}
    row_px, top_px = 18, 26.0
    axis = TimeAxis(t0, t1, x0=LANE_LABEL_PX)
    bottom = top_px + row_px * max(1, len(rows)) + 4
    body = [f'<text x="0" y="15" class="ct">{esc(title)}</text>']
    body += axis.draw(bottom, top_px)
    for i, row in enumerate(rows):
        y = top_px + i * row_px
        body.append(
            f'<text x="{axis.x0 - 6}" y="{y + 13}" text-anchor="end">'
            f"{esc(short(row.label, LANE_LABEL_CHARS))}<title>{esc(row.label)}</title></text>"
        )
        for x0, x1, name, tip in _merge(axis, row.spans):
            body.append(
                f'<rect x="{x0:.1f}" y="{y + 3}" width="{max(x1 - x0, 2.0):.1f}" '
                f'height="{row_px - 6}" fill="{color_of(name, colors, 0)}">'
                f"<title>{esc(tip)}</title></rect>"
            )
    height = bottom + 36
    if legend:
        body += _legend(legend, colors, axis.x0, bottom + 50)
        height += 18
    return _svg(WIDE_PX, int(height), title, body)


def _merge(
    axis: TimeAxis, spans: Sequence[tuple[float, float, str, str]]
) -> list[tuple[float, float, str, str]]:
    """Pixel spans; spans of one colour less than a pixel apart merge into one. Colours
    are drawn in the order they first appear (a background span first, marks over it)."""
    out: list[tuple[float, float, str, str]] = []
    for name in dict.fromkeys(span[2] for span in spans):
        group: list[tuple[float, float, float, float, str, int]] = []  # x0, x1, t0, t1, tip, n
        for start, end, _, tip in sorted(s for s in spans if s[2] == name):
            x0, x1 = axis.x(start), axis.x(max(start, end))
            if group and x0 - group[-1][1] < 1.0:
                gx0, gx1, gt0, gt1, gtip, n = group[-1]
                group[-1] = (gx0, max(gx1, x1), gt0, max(gt1, end), gtip, n + 1)
            else:
                group.append((x0, x1, start, end, tip, 1))
        out += [
            (
                x0,
                x1,
                name,
                tip
                if n == 1
                else f"{n} spans {utc(t0, with_date=False)}–"
                f"{utc(t1, with_date=False)} (closer than a pixel at this scale)",
            )
            for x0, x1, t0, t1, tip, n in group
        ]
    return out
