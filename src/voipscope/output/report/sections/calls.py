"""Calls and registrations: counts by state, records started over time, a timeline of
the first calls, and the tables (worst MOS of each call, or why it is unknown)."""

from __future__ import annotations

from typing import Any

from voipscope.calls.media_outages import missing_media_flags
from voipscope.output.report import svg
from voipscope.output.report.data import CALLS, Limits
from voipscope.output.report.data import ReportData as Data
from voipscope.output.report.markup import lines, more, table, tag
from voipscope.output.report.sections.common import (
    KIND_COLORS,
    STATE_COLORS,
    charts_row,
    mos_cell,
    section,
)
from voipscope.output.report.text import Safe, count, num, seconds, utc


def worst_mos(call: dict[str, Any]) -> tuple[str, str]:
    """(the lowest MOS of the call's streams, "") or ("unknown", why): never invented."""
    streams = call.get("streams") or []
    known = [s["mos"] for s in streams if s.get("mos") is not None]
    if known:
        return f"{min(known):.2f}", ""
    if not streams:
        only_rtcp = " (RTCP reports only)" if call.get("rtcp_only_streams") else ""
        return "unknown", f"no RTP stream in the capture{only_rtcp}"
    reasons = list(dict.fromkeys(s.get("mos_reason") or "no reason given" for s in streams))
    return "unknown", "; ".join(reasons[:2]) + (
        f" (+{len(reasons) - 2})" if len(reasons) > 2 else ""
    )


def _protocol(c: dict[str, Any]) -> str:
    text = c.get("protocol") or "—"
    if c.get("kind") not in (None, "call", "registration"):
        text += f" {c['kind']}"
    return f"{text} ({c['app']})" if c.get("app") else text


def _party(c: dict[str, Any], side: str) -> str:
    """A short name for a chart label: the URI without its scheme, else the IP."""
    uri = c.get(side)
    if uri:
        return str(uri).removeprefix("sip:").removeprefix("sips:")
    return str(c.get(f"{side}_ip") or "?")


def _ips(c: dict[str, Any]) -> str:
    return f"{c.get('caller_ip') or '?'} → {c.get('callee_ip') or '?'}"


def _duration(c: dict[str, Any]) -> str:
    value = c.get("duration_s")
    return "—" if value is None else seconds(value)


def _user_agent(c: dict[str, Any]) -> str | None:
    agents = c.get("user_agents") or []
    return "; ".join(agents[:2]) + (f" (+{len(agents) - 2})" if len(agents) > 2 else "") or None


def _code(value: object) -> str:
    return "—" if value is None else str(value)


def _end(c: dict[str, Any]) -> float:
    return c.get("end") or c.get("answer") or c["start"]


def _timeline(d: Data, limits: Limits) -> Safe | None:
    """Lanes of the first calls, zoomed to them (the histogram shows the whole capture);
    calls outside the charts' time range (a clock far off) are left out and counted."""
    if not d.calls or d.chart_span is None:
        return None
    lo, hi = d.chart_span
    shown = d.calls[: limits.timeline_calls]
    drawn = [c for c in shown if c.get("start") is not None and lo <= c["start"] <= hi]
    title = f"Call timeline (first {len(shown)} of {num(d.calls_total)} calls"
    if len(drawn) < len(shown):
        title += f"; {len(shown) - len(drawn)} outside the charts' time range"
    if not drawn:
        return None
    lanes = [
        svg.Lane(
            f"{_party(c, 'caller')} → {_party(c, 'callee')}",
            [(c["start"], _end(c), c.get("state") or "",
              f"{c.get('state')} {_code(c.get('final_code'))}, {utc(c['start'])}, "
              f"{_duration(c)}, {_protocol(c)}")],
        )
        for c in drawn
    ]  # fmt: skip
    t0, t1 = min(c["start"] for c in drawn), max(_end(c) for c in drawn)
    return svg.lanes(t0, t1, lanes, title + ")", STATE_COLORS, legend=list(STATE_COLORS))


CALL_COLUMNS = [
    ("start", "start (UTC)"), ("protocol", "protocol"), ("caller", "caller"),
    ("callee", "callee"), ("ips", "caller → callee IP"), ("state", "state"),
    ("code", "final code"), ("duration", "duration"), ("streams", "streams"),
    ("mos", "worst MOS"), ("user-agent", "user agent"), ("call-id", "call-id"),
]  # fmt: skip
REGISTRATION_COLUMNS = [
    ("start", "start (UTC)"), ("protocol", "protocol"), ("caller", "user"),
    ("callee", "registrar / AOR"), ("ips", "client → server IP"), ("state", "state"),
    ("code", "final code"), ("result", "result"), ("challenges", "challenges"),
    ("rejected", "credentials rejected"), ("auth", "auth usernames"),
    ("user-agent", "user agent"), ("call-id", "call-id"),
]  # fmt: skip


def _streams_cell(c: dict[str, Any]) -> object:
    """How many streams, and in red when the signalling announced media that did not
    come (calls.media_outages: no media seen, one-way media)."""
    missing = missing_media_flags(c.get("evidence"))
    shown = str(len(c.get("streams") or []))
    return lines(shown, *(tag("span", what, "mos-poor") for what in missing)) if missing else shown


def _call_row(c: dict[str, Any]) -> tuple[object, ...]:
    return (
        utc(c.get("start")), _protocol(c), c.get("caller"), c.get("callee"), _ips(c),
        c.get("state"), _code(c.get("final_code")), _duration(c),
        _streams_cell(c), mos_cell(*worst_mos(c)), _user_agent(c),
        c.get("call_id"),
    )  # fmt: skip


def _registration_row(r: dict[str, Any]) -> tuple[object, ...]:
    return (
        utc(r.get("start")), r.get("protocol"), r.get("caller"), r.get("callee"), _ips(r),
        r.get("state"), _code(r.get("final_code")), r.get("result"),
        num(r.get("challenges")), num(r.get("credentials_rejected")),
        ", ".join(r.get("auth_usernames") or []) or None, _user_agent(r), r.get("call_id"),
    )  # fmt: skip


def calls(d: Data, limits: Limits) -> Safe:
    states = table(
        "call-states",
        [("state", "kind and state"), ("calls", "records")],
        [(name, num(n)) for name, n in d.calls_by_state],
        "no call",
    )
    charts = []
    if (h := d.call_histogram) is not None:
        title = "Calls and registrations started"
        charts.append(svg.stacked_histogram(h.t0, h.bin_s, h.series, title, KIND_COLORS))
    if (timeline := _timeline(d, limits)) is not None:
        charts.append(timeline)
    return section(
        "calls",
        f"Calls: {count(d.calls_total, 'call')}, {count(d.registrations_total, 'registration')}",
        states,
        charts_row(*charts),
        tag("h3", "Calls"),
        more(len(d.calls), d.calls_total, "calls", f"{CALLS} (kind other than registration)",
             "by start time"),
        table("calls", CALL_COLUMNS, [_call_row(c) for c in d.calls], "no call"),
        tag("h3", "Registrations"),
        more(len(d.registrations), d.registrations_total, "registrations",
             f"{CALLS} (kind registration)", "by start time"),
        table("registrations", REGISTRATION_COLUMNS,
              [_registration_row(r) for r in d.registrations], "no registration"),
    )  # fmt: skip
