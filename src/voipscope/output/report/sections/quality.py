"""Media quality: streams per MOS, loss and jitter band, the worst streams, and who
talked when in the first calls with talk spurts."""

from __future__ import annotations

from typing import Any

from voipscope.calls.media_outages import outage_span
from voipscope.output.report import svg
from voipscope.output.report.data import STREAMS, Limits, SpurtCall
from voipscope.output.report.data import ReportData as Data
from voipscope.output.report.markup import more, table, tag
from voipscope.output.report.sections.common import (
    SPURT_COLORS,
    band_colors,
    charts_row,
    endpoint,
    mos_cell,
    section,
)
from voipscope.output.report.text import Safe, clip, count, num, seconds, utc


def _mos_or_reason(s: dict[str, Any]) -> Safe:
    if s.get("mos") is None:
        return mos_cell("unknown", s.get("mos_reason") or "no reason given")
    return mos_cell(f"{s['mos']:.2f}", "")


def _longest_gap(s: dict[str, Any]) -> str:
    """The stream's longest gap; its media outages (calls.media_outages) in red."""
    gap_ms = s.get("longest_gap_ms")
    if not gap_ms:
        return "—"
    if not s.get("outages"):
        return f"{num(gap_ms / 1000.0, 2)} s"
    text = f"outage {s['longest_outage_ms'] / 1000.0:.2f} s, {s['longest_outage_lost']} lost"
    if s["outages"] > 1:
        text += f" ({s['outages']} outages, {s['outage_s']:.2f} s)"
    return tag("span", text, "mos-poor")


def _spurt_lane(s: dict[str, Any]) -> svg.Lane:
    """One stream: its span in a pale colour, its talk spurts over it, a media outage
    (calls.media_outages) in red."""
    label = f"{endpoint(s['src_ip'], s['src_port'])} → {endpoint(s['dst_ip'], s['dst_port'])}"
    first, last = s["first_seen"], s["last_seen"]
    spans = [(first, last, "stream", f"stream {utc(first, False)}–{utc(last, False)}")]
    method = s.get("activity_method") or "activity"
    for spurt in s["talk_spurts"]:
        if len(spurt) == 2:
            a, b = spurt
            tip = f"talk spurt {utc(a, False)}–{utc(b, False)} ({seconds(b - a)}, {method})"
            spans.append((a, b, "speech", tip))
    outage = outage_span(s)
    if outage is not None:
        a, b = outage
        tip = (
            f"media outage {utc(a, False)}–{utc(b, False)} ({seconds(b - a)}): "
            f"{s['longest_outage_lost']} packets sent, never seen here"
        )
        spans.append((a, b, "outage", tip))
    return svg.Lane(f"{label} {s.get('codec') or ''}", spans)


def _spurt_chart(call: SpurtCall) -> Safe:
    t0 = min(s["first_seen"] for s in call.streams)
    t1 = max(s["last_seen"] for s in call.streams)
    lanes = [_spurt_lane(s) for s in call.streams]
    title = clip(f"Who talked when: {call.title} (call-id {call.call_id})", 120)
    legend = ["speech", "stream"]
    if any(outage_span(s) is not None for s in call.streams):
        legend.append("outage")
    return svg.lanes(t0, t1, lanes, title, SPURT_COLORS, legend=legend)


def quality(d: Data, limits: Limits) -> Safe:
    charts = charts_row(
        svg.hbar(d.mos_bands, "Streams per MOS band (E-model)", band_colors(d.mos_bands)),
        svg.hbar(d.loss_bands, "Streams per loss", band_colors(d.loss_bands, False)),
        svg.hbar(
            d.jitter_bands, "Streams per jitter (RFC 3550)", band_colors(d.jitter_bands, False)
        ),
    )
    columns = [
        ("call-id", "call-id"),
        ("src", "from"),
        ("dst", "to"),
        ("ssrc", "SSRC"),
        ("codec", "codec"),
        ("start", "first packet (UTC)"),
        ("packets", "packets"),
        ("lost", "lost"),
        ("loss", "loss %"),
        ("jitter", "jitter ms"),
        ("max-delta", "max Δ ms"),
        ("burst", "burst ratio"),
        ("gap", "longest gap"),
        ("mos", "MOS"),
    ]
    rows = [
        (
            s.get("call_id"),
            endpoint(s.get("src_ip"), s.get("src_port")),
            endpoint(s.get("dst_ip"), s.get("dst_port")),
            s.get("ssrc"),
            s.get("codec")
            or (None if s.get("payload_type") is None else f"PT {s['payload_type']}"),
            utc(s.get("first_seen")),
            num(s.get("packets")),
            num(s.get("lost")),
            num(s.get("loss_pct"), 2),
            num(s.get("jitter_ms"), 2),
            num(s.get("max_delta_ms"), 1),
            num(s.get("burst_ratio"), 2),
            _longest_gap(s),
            _mos_or_reason(s),
        )
        for s in d.streams
    ]
    spurts = [_spurt_chart(call) for call in d.spurt_calls]
    spurt_note = more(
        len(d.spurt_calls),
        d.spurt_calls_total,
        "calls with talk spurts",
        f"{STREAMS} (column talk_spurts)",
        "by first packet",
    )
    return section(
        "quality",
        f"Media quality: {count(d.streams_total, 'stream')}",
        charts,
        more(
            len(rows),
            d.streams_total,
            "media streams",
            STREAMS,
            "worst first: lowest MOS, then highest loss; streams without a MOS last",
        ),
        table("streams", columns, rows, "no media stream"),
        tag("h3", "Talk spurts"),
        spurt_note if spurts else tag("p", "No stream with talk spurts.", "muted"),
        charts_row(*spurts),
    )
