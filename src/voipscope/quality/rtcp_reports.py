"""What the endpoints said about each stream in RTCP (RFC 3550 §6.4), beside what the
capture measured: the receiver's loss fraction and cumulative loss, its interarrival
jitter, and the round-trip time from LSR/DLSR against the sender report the capture saw.

Round trip (RFC 3550 §6.4.1): a report block's LSR quotes the middle 32 bits of the NTP
timestamp of the last SR it got, and DLSR the delay since, in 1/65536 s. Seen from the
capture point, RTT ≈ (arrival of the block − arrival of that SR) − DLSR: exact when the
capture is at the SR sender, the path beyond the capture point otherwise.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from typing import Any

DLSR_UNITS_PER_S = 65536.0  # RFC 3550 §6.4.1
MAX_RTT_S = 10.0  # a larger value pairs a report with the wrong SR (wrap, clock reset)


def rtcp_figures(
    reports: Iterable[dict[str, Any]], clock_hz: dict[int, int]
) -> dict[int, dict[str, Any]]:
    """Per reported SSRC: rtcp_loss_pct (the last report's fraction lost), rtcp_cumulative_lost,
    rtcp_jitter_ms (last, with the stream's clock), rtcp_rtt_ms (median), rtcp_reports."""
    reports = list(reports)
    sent = {(r["ssrc"], r["ntp_mid"]): r["ts"] for r in reports if r["kind"] == "sr"}
    blocks: dict[int, list[dict[str, Any]]] = {}
    for r in reports:
        if r["kind"] == "block":
            blocks.setdefault(r["about_ssrc"], []).append(r)
    out: dict[int, dict[str, Any]] = {}
    for ssrc, about in blocks.items():
        about.sort(key=lambda r: r["ts"])
        last = about[-1]
        rtts = []
        for r in about:
            sr_ts = sent.get((ssrc, r["lsr"])) if r["lsr"] else None
            if sr_ts is not None:
                rtt = (r["ts"] - sr_ts) - r["dlsr"] / DLSR_UNITS_PER_S
                if 0.0 <= rtt <= MAX_RTT_S:
                    rtts.append(rtt * 1000.0)
        clock = clock_hz.get(ssrc)
        out[ssrc] = {
            "rtcp_reports": len(about),
            "rtcp_loss_pct": 100.0 * last["fraction_lost"],
            "rtcp_cumulative_lost": last["cumulative_lost"],
            "rtcp_jitter_ms": 1000.0 * last["jitter_ts"] / clock if clock else None,
            "rtcp_rtt_ms": statistics.median(rtts) if rtts else None,
        }
    return out


def reported_only(
    reports: Iterable[tuple[dict[str, Any], dict[str, Any]]], measured: set[int]
) -> list[dict[str, Any]]:
    """Streams known only from report blocks (``reports``: each with the Flow record it
    came on): their SSRC, who sent and who reported them, and what the reporter said,
    one record per (SSRC, reporter) -- both ends may report on one SSRC (an SSRC of 0
    standing for a source not yet known, a conference's sender).

    The sender is the far end of the flow from the reporter (RFC 3550 §6.4: a receiver
    reports on the sources it hears). Its ports are the RTCP flow's: where its RTP went
    is not in the capture. Jitter stays in timestamp units: without a payload type there
    is no clock to turn it into ms."""
    reports = list(reports)
    srs = [r for _, r in reports if r["kind"] == "sr"]
    groups: dict[tuple[int, int], list[tuple[dict[str, Any], dict[str, Any]]]] = {}
    for flow, r in reports:
        if r["kind"] == "block" and r["about_ssrc"] not in measured:
            groups.setdefault((r["about_ssrc"], r["direction"]), []).append((flow, r))
    out = []
    for (ssrc, direction), group in groups.items():
        group.sort(key=lambda fr: fr[1]["ts"])
        flow, last = group[-1]
        reporter, sender = ("src", "dst") if direction == 0 else ("dst", "src")
        figures = rtcp_figures(srs + [r for _, r in group], {})[ssrc]
        out.append(
            {
                "ssrc": f"0x{ssrc:08X}",
                "flow_id": flow["flow_id"],
                "sender_ip": flow[f"{sender}_ip"],
                "sender_port": flow[f"{sender}_port"],
                "reporter_ip": flow[f"{reporter}_ip"],
                "reporter_port": flow[f"{reporter}_port"],
                "first_report": group[0][1]["ts"],
                "last_report": last["ts"],
                "rtcp_reports": figures["rtcp_reports"],
                "rtcp_loss_pct": figures["rtcp_loss_pct"],
                "rtcp_cumulative_lost": figures["rtcp_cumulative_lost"],
                "rtcp_jitter_ts_units": last["jitter_ts"],
                "rtcp_rtt_ms": figures["rtcp_rtt_ms"],
            }
        )
    return sorted(out, key=lambda e: (e["first_report"], e["ssrc"], e["reporter_ip"]))
