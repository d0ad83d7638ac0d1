"""Alerts (worst first, with evidence and the data decoded from tones) and anomalies
(exact counts per name, one example each)."""

from __future__ import annotations

import json
from typing import Any

from voipscope.output.report import svg
from voipscope.output.report.data import ALERTS, ANOMALIES, Limits
from voipscope.output.report.data import ReportData as Data
from voipscope.output.report.markup import bullet_list, join, lines, more, small, table, tag
from voipscope.output.report.sections.common import SEVERITY_COLORS, charts_row, section
from voipscope.output.report.text import Safe, count, num, utc

HEX_SHOWN = 512  # hex digits of decoded data shown (256 bytes); all of it is in the JSONL


def _decoded(hex_text: str) -> Safe:
    """Data decoded from tones: the hex, and the bytes as text where printable."""
    shown = hex_text[:HEX_SHOWN]
    try:
        raw = bytes.fromhex(shown[: len(shown) // 2 * 2])
    except ValueError:
        raw = b""
    text = "".join(chr(b) if 32 <= b < 127 else "." for b in raw)
    rest = (
        f" (+{(len(hex_text) - len(shown)) // 2} bytes in {ALERTS})"
        if len(hex_text) > len(shown)
        else ""
    )
    return lines(
        Safe(f"decoded hex: {tag('code', shown, limit=HEX_SHOWN)}{join([rest])}"),
        Safe(f"as text: {tag('code', text, limit=HEX_SHOWN)}") if raw else None,
    )


def _alert_data(a: dict[str, Any]) -> Safe:
    data = a.get("data")
    if not isinstance(data, dict) or not data:
        return Safe("—")
    parts: list[object] = []
    if isinstance(data.get("decoded_hex"), str):
        parts.append(_decoded(data["decoded_hex"]))
    rest = {k: v for k, v in data.items() if k != "decoded_hex"}
    if rest:
        parts.append(small(json.dumps(rest, sort_keys=True, separators=(", ", ": "))))
    return lines(*parts)


def _severity_class(severity: object) -> str | None:
    return f"sev-{severity}" if severity in SEVERITY_COLORS else None  # never record text


def alerts(d: Data, limits: Limits) -> Safe:
    charts = charts_row(
        svg.hbar(d.alerts_by_severity, "Alerts per severity", SEVERITY_COLORS),
        svg.hbar(d.alerts_by_kind, "Alerts per kind"),
    )
    columns = [
        ("ts", "first seen (UTC)"),
        ("severity", "severity"),
        ("kind", "kind"),
        ("src", "src"),
        ("dst", "dst"),
        ("summary", "summary"),
        ("evidence", "evidence"),
        ("data", "data"),
        ("line", f"line in {ALERTS}"),
    ]
    rows = [
        (
            utc(a.get("ts")),
            tag("span", a.get("severity"), _severity_class(a.get("severity"))),
            a.get("kind"),
            a.get("src_ip"),
            a.get("dst_ip"),
            a.get("summary"),
            bullet_list(a.get("evidence") or [], limits.evidence_items, f"in {ALERTS}"),
            _alert_data(a),
            str(a["line"]),
        )
        for a in d.alerts
    ]
    return section(
        "alerts",
        f"Alerts: {count(d.alerts_total, 'alert')}",
        charts,
        more(len(rows), d.alerts_total, "alerts", ALERTS, "highest severity first, then earliest"),
        table("alerts", columns, rows, "No alert was raised."),
    )


def anomalies(d: Data, limits: Limits) -> Safe:
    rows = [
        (
            name,
            num(n),
            None
            if ex is None
            else lines(
                f"{utc(ex.get('ts'))} {ex.get('src_ip') or '?'} → {ex.get('dst_ip') or '?'}"
                + ("" if ex.get("flow_id") is None else f" (flow {ex['flow_id']})"),
                ex.get("detail"),
            ),
        )
        for name, n, ex in d.anomalies
    ]
    columns = [("name", "name"), ("count", "count"), ("example", "first example")]
    return section(
        "anomalies",
        f"Anomalies: {count(d.anomalies_total, 'anomaly', 'anomalies')}",
        tag(
            "p",
            "Named oddities on the wire (malformed or suspicious packets); counts are "
            f"exact, {ANOMALIES} keeps the first records of each name.",
            "note",
            1000,
        ),
        more(
            len(rows),
            d.anomaly_names_total,
            "anomaly names",
            "summary.json (run.anomalies)",
            "most frequent first",
        ),
        table("anomalies", columns, rows, "No anomaly was seen."),
    )
