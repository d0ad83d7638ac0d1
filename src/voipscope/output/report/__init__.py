"""`report.html`: one self-contained page about an ``analyze`` output directory.

It reads back what ``analyze`` wrote there (flows/calls/streams Parquet, alerts and
anomalies JSONL, summary.json) without holding a file (``query``): each table shows at
most ``Limits`` rows and says how many more are in which file, and a cell at most
``text.MAX_CELL_CHARS`` characters, so the page is bounded whatever the capture holds:
~35 kB for the bundled sample, under 1 MB for 100k flows, ~6 MB at worst when every
field of every shown row is long and hostile.

Plots are small SVG drawn here, not plotly or altair/vega-lite. The page must work
offline and fetch nothing, so a plotting library would have to inline its runtime in
every report: plotly.js is ~4.6 MB per file (a 30 kB report would become 4.6 MB) and
vega + vega-lite + vega-embed ~1 MB, each a new dependency and import for ``analyze``.
What the report draws — counts per category, stacked histograms over capture time,
call and talk-spurt lanes — is a few rectangles; as SVG it costs a few kB, needs no
script at all (hover text is SVG ``<title>``), and is bounded by its pixels (histograms
have at most 60 bins, spans closer than a pixel merge).

Security: every string in the records may come from an attacker (SIP From/To/User-Agent,
Call-ID, SNI, DNS names, evidence quoting them). All of it is escaped by
``text.esc`` (also attributes; control and bidi-override characters shown as escapes),
the page has no ``<script>`` element and embeds no JSON (so there is no script data to
break out of; machine-readable counts are in summary.json beside it), and its
Content-Security-Policy forbids scripts and every fetch (``default-src 'none'``), so even
an escaping bug could neither run code nor call out.
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
from pathlib import Path

from voipscope._version import __version__
from voipscope.output.report import sections
from voipscope.output.report.data import (
    ALERTS,
    ANOMALIES,
    CALLS,
    FLOWS,
    STREAMS,
    SUMMARY,
    Limits,
    ReportData,
    load,
)
from voipscope.output.report.markup import join, tag
from voipscope.output.report.text import Safe, esc, num, seconds, utc

__all__ = ["REPORT_NAME", "Limits", "write_report"]

REPORT_NAME = "report.html"
# No script, no fetch of any kind; only the inline <style>. Links to the record files
# beside the report are navigation, which default-src does not govern.
CSP = "; ".join(
    ["default-src 'none'", "style-src 'unsafe-inline'", "base-uri 'none'", "form-action 'none'"]
)
MAX_LISTED = 50  # inputs and warnings listed in the header; summary.json has them all
FOOTER = "Written by voipscope analyze; every value is also in the record files above."

STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:0 2em 3em;color:#222;max-width:1500px}
h1{margin:.6em 0 .2em}h2{border-bottom:2px solid #4e79a7;padding-bottom:.1em;margin-top:1.6em}
nav a{margin-right:1em}dl{display:grid;grid-template-columns:max-content auto;gap:.15em 1em}
dt{font-weight:600}dd{margin:0}.muted{color:#777}.note{color:#555;font-style:italic}
.capped{color:#8a4b00}.notice{background:#fff3cd;border:1px solid #e0c36a;padding:.6em 1em}
.scroll{overflow-x:auto;max-height:42em;overflow-y:auto;border:1px solid #ddd}
table{border-collapse:collapse;font-size:13px}th{position:sticky;top:0;background:#eef2f7}
th,td{border-bottom:1px solid #e3e3e3;padding:.2em .5em;text-align:left;vertical-align:top}
td{max-width:28em;overflow-wrap:anywhere}td ul{margin:0;padding-left:1.1em}small{color:#666}
.charts{display:flex;flex-wrap:wrap;gap:1em 2em;margin:1em 0}
svg.chart{font:11px system-ui,sans-serif}svg .ct{font-weight:600;font-size:12px}
svg .axis{stroke:#888}svg .grid{stroke:#eee}svg .muted{fill:#777}
.mos-good{color:#1a7a3a}.mos-fair{color:#9a6b00}.mos-poor{color:#c0392b;font-weight:600}
.mos-unknown{color:#777}.sev-high{color:#c0392b;font-weight:700}.sev-medium{color:#b35c00}
code{font-size:12px;overflow-wrap:anywhere}
"""


def _inputs(d: ReportData) -> Safe:
    run = d.summary.get("run") or {}
    infos = run.get("inputs") or [{"path": p} for p in d.summary.get("inputs") or []]
    items = []
    for info in infos[:MAX_LISTED]:
        facts = [f"{info.get('format') or '?'}{' (gzip)' if info.get('compressed') else ''}"]
        if info.get("packets") is not None:
            facts.append(f"{num(info['packets'])} packets")
        for key, what in (("truncated_at", "truncated at byte"), ("corrupt_at", "corrupt at byte")):
            if info.get(key) is not None:
                facts.append(f"{what} {num(info[key])}")
        items.append(tag("li", join([tag("code", info.get("path")), " — ", ", ".join(facts)])))
    if len(infos) > MAX_LISTED:
        items.append(tag("li", f"+{len(infos) - MAX_LISTED} more in {SUMMARY}", "muted"))
    return Safe(f"<ul>{join(items)}</ul>") if items else Safe("—")


def _header(d: ReportData) -> Safe:
    run = d.summary.get("run") or {}
    span = "—"
    if d.span is not None:
        t0, t1 = d.span
        span = f"{utc(t0)} – {utc(t1)} UTC ({seconds(t1 - t0)})"
    by_status = run.get("packets_by_status") or {}
    status = ", ".join(f"{k} {num(v)}" for k, v in by_status.items())
    files = join(
        (tag("a", name, href=name) for name in (FLOWS, CALLS, STREAMS, ALERTS, ANOMALIES, SUMMARY)),
        " · ",
    )
    facts = [
        ("inputs", _inputs(d)),
        ("capture time", span),
        ("packets", f"{num(d.packets)}" + (f" ({status})" if status else "")),
        ("flows", num(d.flows_total)),
        (
            "calls · registrations · streams",
            f"{num(d.calls_total)} · {num(d.registrations_total)} · {num(d.streams_total)}",
        ),
        ("alerts · anomalies", f"{num(d.alerts_total)} · {num(d.anomalies_total)}"),
        ("records", files),
        ("voipscope", _versions(d.summary)),
        (
            "report generated",
            f"{d.generated_at:%Y-%m-%d %H:%M:%S} UTC (wall clock, not capture time)",
        ),
    ]
    body = join(tag("dt", k) + tag("dd", v, limit=1000) for k, v in facts)
    warnings = run.get("warnings") or []
    notices = [tag("p", w, "notice", 1000) for w in warnings[:MAX_LISTED]]
    if len(warnings) > MAX_LISTED:
        notices.append(tag("p", f"+{len(warnings) - MAX_LISTED} more warnings in {SUMMARY}"))
    if not d.packets:
        notices.insert(
            0, tag("p", "The inputs hold no packets: there is nothing to report.", "notice")
        )
    elif not d.flows_total:
        notices.insert(0, tag("p", "No IP flow was found in the packets.", "notice"))
    nav = join(
        (
            tag("a", title, href=f"#{anchor}")
            for anchor, title in (
                ("flows", "Flows"),
                ("calls", "Calls"),
                ("quality", "Media quality"),
                ("alerts", "Alerts"),
                ("anomalies", "Anomalies"),
            )
        ),
        " ",
    )
    return Safe(
        f"<header><h1>voipscope report</h1><dl>{body}</dl>{join(notices)}<nav>{nav}</nav></header>"
    )


def render(d: ReportData, limits: Limits) -> str:
    """The page as text."""
    names = [str(i.get("path")) for i in (d.summary.get("run") or {}).get("inputs") or []]
    title = "voipscope report" + (f" — {', '.join(names)}" if names else "")
    body = join(
        [
            _header(d),
            sections.flows(d, limits),
            sections.calls(d, limits),
            sections.quality(d, limits),
            sections.alerts(d, limits),
            sections.anomalies(d, limits),
        ]
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        '<meta name="referrer" content="no-referrer">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{STYLE}</style></head>"
        f"<body>{body}<footer>{tag('p', FOOTER, 'muted', 1000)}</footer>"
        "</body></html>\n"
    )


def write_report(
    out_dir: Path, limits: Limits | None = None, generated_at: dt.datetime | None = None
) -> Path:
    """Write ``out_dir/report.html`` from the records ``analyze`` wrote there; returns its
    path. Written to a temporary file and renamed: a failure leaves no partial report
    and touches none of the other files."""
    limits = limits or Limits()
    now = generated_at or dt.datetime.now(dt.UTC)
    page = render(load(out_dir, limits, now), limits)
    target = out_dir / REPORT_NAME
    # A name of our own opened exclusively (not mkstemp: its 0600 would ignore the umask
    # the other outputs were written with).
    tmp = out_dir / f".{REPORT_NAME}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    try:
        with tmp.open("x", encoding="utf-8") as f:
            f.write(page)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return target


def _versions(summary: dict[str, object]) -> str:
    """The version that wrote the records (summary.json), and this one if it differs:
    a report may be made again later from an older run's directory."""
    wrote = summary.get("voipscope_version")
    if not isinstance(wrote, str) or wrote == __version__:
        return __version__
    return f"{wrote} (records); report by {__version__}"
