"""Flows: counts per category, protocol and app, flows started over time, and the
VoIP flows with their evidence."""

from __future__ import annotations

from voipscope.output.report import svg
from voipscope.output.report.data import FLOWS, Limits
from voipscope.output.report.data import ReportData as Data
from voipscope.output.report.markup import bullet_list, more, table, tag
from voipscope.output.report.sections.common import (
    CATEGORY_COLORS,
    charts_row,
    endpoint,
    pct,
    section,
)
from voipscope.output.report.text import Safe, count, num, utc


def outside_note(d: Data) -> Safe:
    """Says which flows the charts leave out (a few far from all others in time)."""
    if not d.flows_outside_charts or d.chart_span is None or d.span is None:
        return Safe("")
    lo, hi = d.chart_span
    return tag(
        "p",
        f"The charts over time cover {utc(lo)} – {utc(hi)} UTC: "
        f"{count(d.flows_outside_charts, 'flow')} far from all the others in time (the "
        f"capture spans {utc(d.span[0])} – {utc(d.span[1])}; a clock set wrong?) "
        "are counted in the tables and totals but not drawn.",
        "notice",
        1000,
    )


def flows(d: Data, limits: Limits) -> Safe:
    total = d.flows_total
    counts = table(
        "flow-categories",
        [("category", "category"), ("flows", "flows"), ("share", "share")],
        [(name, num(n), pct(n, total)) for name, n in d.flows_by_category],
    )
    charts = [
        svg.hbar(d.flows_by_category, "Flows per category", CATEGORY_COLORS),
        svg.hbar(d.flows_by_protocol, "Flows per protocol"),
        svg.hbar(d.flows_by_app, f"Flows per app ({num(d.flows_without_app)} without an app)"),
    ]
    if d.flow_histogram is not None:
        h = d.flow_histogram
        charts.append(
            svg.stacked_histogram(h.t0, h.bin_s, h.series, "Flows started", CATEGORY_COLORS)
        )
    rows = [
        (
            utc(f.get("first_seen")),
            f.get("proto"),
            endpoint(f.get("src_ip"), f.get("src_port")),
            endpoint(f.get("dst_ip"), f.get("dst_port")),
            f.get("category"),
            f.get("protocol"),
            f.get("app"),
            f.get("media"),
            f"{num(f.get('src2dst_packets'))} / {num(f.get('dst2src_packets'))}",
            f"{num(f.get('src2dst_bytes'))} / {num(f.get('dst2src_bytes'))}",
            num(f.get("confidence"), 2),
            bullet_list(
                f.get("evidence") or [],
                limits.evidence_items,
                f"in {FLOWS} (flow_id {f.get('flow_id')})",
            ),
            f.get("call_id"),
        )
        for f in d.voip_flows
    ]
    columns = [
        ("first-seen", "first seen (UTC)"),
        ("proto", "L4"),
        ("src", "src"),
        ("dst", "dst"),
        ("category", "category"),
        ("protocol", "protocol"),
        ("app", "app"),
        ("media", "media"),
        ("packets", "packets → / ←"),
        ("bytes", "IP bytes → / ←"),
        ("confidence", "conf."),
        ("evidence", "evidence"),
        ("call-id", "call-id"),
    ]
    return section(
        "flows",
        f"Flows: {count(total, 'flow')}",
        counts,
        outside_note(d),
        charts_row(*charts),
        tag("h3", "VoIP flows"),
        more(
            len(rows),
            d.voip_flows_total,
            "VoIP flows",
            f"{FLOWS} (category voip-*)",
            "by first packet",
        ),
        table("voip-flows", columns, rows, "no VoIP flow"),
    )
