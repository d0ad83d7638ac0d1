"""What the far end's RTCP says about a stream (RFC 3550 §6.4) lands beside the measured
figures: loss fraction, cumulative loss, jitter in ms, and the round trip from LSR/DLSR
against the sender report the capture saw."""

from __future__ import annotations

import struct

import pytest

from tests import pcapbuild as pb
from tests.unit.detect.test_rtp_injection import A, B, call_with
from voipscope.api import iter_calls
from voipscope.quality.rtcp_reports import rtcp_figures

NTP_SECONDS = 3_900_000_000  # any NTP time: only its middle 32 bits travel in LSR


def sender_report(ssrc: int, ntp_s: int, ntp_frac: int) -> bytes:
    body = struct.pack("!IIIIII", ssrc, ntp_s, ntp_frac, 0, 100, 16000)
    return struct.pack("!BBH", 0x80, 200, len(body) // 4) + body


def receiver_report(ssrc: int, about: int, fraction: int, cumulative: int, jitter: int,
                    lsr: int, dlsr: int) -> bytes:  # fmt: skip
    block = struct.pack("!IBBHIIII", about, fraction, cumulative >> 16 & 0xFF,
                        cumulative & 0xFFFF, 99, jitter, lsr, dlsr)  # fmt: skip
    body = struct.pack("!I", ssrc) + block
    return struct.pack("!BBH", 0x81, 201, len(body) // 4) + body


def test_figures_from_reports() -> None:
    reports = [
        {"kind": "sr", "ts": 10.0, "ssrc": 7, "ntp_mid": 1234, "direction": 0},
        {"kind": "block", "ts": 10.6, "about_ssrc": 7, "fraction_lost": 0.25,
         "cumulative_lost": 12, "jitter_ts": 160, "lsr": 1234, "dlsr": 32768, "direction": 1},
    ]  # fmt: skip
    (figures,) = rtcp_figures(reports, {7: 8000}).values()
    assert figures["rtcp_loss_pct"] == 25.0 and figures["rtcp_cumulative_lost"] == 12
    assert figures["rtcp_jitter_ms"] == pytest.approx(20.0)
    assert figures["rtcp_rtt_ms"] == pytest.approx(100.0)  # 0.6 s later, 0.5 s held


def test_reports_reach_the_call_streams(write_pcap) -> None:  # type: ignore[no-untyped-def]
    ntp_frac = 0x8000_0000
    lsr = ((NTP_SECONDS & 0xFFFF) << 16) | (ntp_frac >> 16)
    rtcp = [
        pb.udp_packet(3.0, A, 4001, B, 5001, sender_report(0xA, NTP_SECONDS, ntp_frac)),
        pb.udp_packet(3.6, B, 5001, A, 4001, receiver_report(0xB, 0xA, 26, 5, 80, lsr, 32768)),
    ]
    (call,) = [c for c in iter_calls(write_pcap(call_with(rtcp))) if c["kind"] == "call"]
    (a_to_b,) = [s for s in call["streams"] if s["ssrc"] == "0x0000000A"]
    assert a_to_b["rtcp_reports"] == 1
    assert a_to_b["rtcp_loss_pct"] == pytest.approx(100 * 26 / 256)
    assert a_to_b["rtcp_cumulative_lost"] == 5
    assert a_to_b["rtcp_jitter_ms"] == pytest.approx(10.0)  # 80 ticks at 8 kHz
    assert a_to_b["rtcp_rtt_ms"] == pytest.approx(100.0, abs=0.01)
    (b_to_a,) = [s for s in call["streams"] if s["ssrc"] == "0x0000000B"]
    assert b_to_a.get("rtcp_reports") is None  # nobody reported on it
