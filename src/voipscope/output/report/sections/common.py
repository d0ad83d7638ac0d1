"""What the sections share: colours, the section and chart-row wrappers, endpoints,
percentages and the MOS cell (a number, or "unknown" with the reason: never invented)."""

from __future__ import annotations

from voipscope.addresses import format_endpoint
from voipscope.output.report.markup import join, lines, small, tag
from voipscope.output.report.text import Safe

CATEGORY_COLORS = {
    "voip-signaling": "#4e79a7",
    "voip-media": "#59a14f",
    "other": "#bab0ac",
    "unknown": "#f28e2b",
}
STATE_COLORS = {
    "answered": "#59a14f",
    "failed": "#e15759",
    "cancelled": "#f28e2b",
    "redirected": "#b07aa1",
    "unanswered": "#bab0ac",
    "ongoing": "#4e79a7",
}
KIND_COLORS = {
    "call": "#4e79a7",
    "app-call": "#76b7b2",
    "media-only": "#59a14f",
    "registration": "#bab0ac",
}
SEVERITY_COLORS = {"high": "#d62728", "medium": "#f28e2b", "low": "#edc948"}
BAND_COLORS = ("#1a9850", "#91cf60", "#d9ef8b", "#fee08b", "#fc8d59", "#d73027")
UNKNOWN_COLOR = "#cccccc"
SPURT_COLORS = {"speech": "#4e79a7", "stream": "#e3e8ef", "outage": "#c0392b"}


def section(anchor: str, title: str, *parts: object) -> Safe:
    return Safe(f'<section id="{anchor}"><h2>{tag("span", title)}</h2>{join(parts)}</section>')


def charts_row(*charts: Safe) -> Safe:
    return Safe(f'<div class="charts">{"".join(charts)}</div>')


def endpoint(ip: object, port: object) -> str:
    return "—" if ip is None else format_endpoint(str(ip), port)


def pct(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f} %" if whole else "—"


def band_colors(bands: list[tuple[str, int]], worst_last: bool = True) -> dict[str, str]:
    named = [label for label, _ in bands if label != "unknown"]
    palette = BAND_COLORS if worst_last else BAND_COLORS[::-1]
    return {"unknown": UNKNOWN_COLOR} | {
        label: palette[round(i * (len(palette) - 1) / max(1, len(named) - 1))]
        for i, label in enumerate(named)
    }


def mos_cell(text: str, reason: str) -> Safe:
    if text == "unknown":
        return lines(tag("span", "unknown", "mos-unknown"), small(reason))
    value = float(text)
    grade = "good" if value >= 4.03 else "fair" if value >= 3.60 else "poor"
    return tag("span", text, f"mos-{grade}")
