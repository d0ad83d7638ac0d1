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


def test_srtcp_ciphertext_is_not_read_as_reports(write_pcap) -> None:  # type: ignore[no-untyped-def]
    """SRTCP (RFC 3711 §3.4) keeps the first 8 bytes in clear and appends E+index and a
    tag: a report block read from it would be ciphertext. Here the "encrypted" part is
    the same bytes as a real report about stream 0xA, so only the length rule can tell:
    the compound's lengths do not add up to the datagram."""
    ntp_frac = 0x8000_0000
    lsr = ((NTP_SECONDS & 0xFFFF) << 16) | (ntp_frac >> 16)
    index_and_tag = struct.pack("!I", 0x8000_0001) + bytes(10)
    rtcp = [
        pb.udp_packet(3.0, A, 4001, B, 5001, sender_report(0xA, NTP_SECONDS, ntp_frac)),
        pb.udp_packet(3.6, B, 5001, A, 4001,
                      receiver_report(0xB, 0xA, 26, 5, 80, lsr, 32768) + index_and_tag),
    ]  # fmt: skip
    (call,) = [c for c in iter_calls(write_pcap(call_with(rtcp))) if c["kind"] == "call"]
    (a_to_b,) = [s for s in call["streams"] if s["ssrc"] == "0x0000000A"]
    assert a_to_b.get("rtcp_reports") is None
    assert a_to_b.get("rtcp_loss_pct") is None


def test_a_stream_only_rtcp_tells_of_is_its_own_record(write_pcap) -> None:  # type: ignore[no-untyped-def]
    """B reports on SSRC 0xC, of which the capture holds no RTP (a one-sided capture):
    not a measured stream, but a stream the call's record names with what B said."""
    rtcp = [
        pb.udp_packet(3.6, B, 5001, A, 4001, receiver_report(0xB, 0xC, 64, 7, 160, 0, 0)),
        pb.udp_packet(4.6, B, 5001, A, 4001, receiver_report(0xB, 0xC, 128, 9, 240, 0, 0)),
    ]
    (call,) = [c for c in iter_calls(write_pcap(call_with(rtcp))) if c["kind"] == "call"]
    assert {s["ssrc"] for s in call["streams"]} == {"0x0000000A", "0x0000000B"}
    (only,) = call["rtcp_only_streams"]
    assert (only["ssrc"], only["sender_ip"], only["sender_port"]) == ("0x0000000C", A, 4001)
    assert (only["reporter_ip"], only["reporter_port"]) == (B, 5001)
    assert only["rtcp_reports"] == 2
    assert only["rtcp_loss_pct"] == 50.0  # the last report: 128/256
    assert only["rtcp_cumulative_lost"] == 9
    assert only["rtcp_jitter_ts_units"] == 240  # no payload type, so no clock for ms
    # The INVITE (the call's start) went at 1.0 s, the reports at 3.6 and 4.6 s.
    assert only["first_report"] == pytest.approx(call["start"] + 2.6)
    assert only["last_report"] == pytest.approx(call["start"] + 3.6)
    assert only["rtcp_rtt_ms"] is None  # no LSR: the reporter had no SR to quote


def test_measured_streams_are_not_repeated_as_rtcp_only(write_pcap) -> None:  # type: ignore[no-untyped-def]
    rtcp = [pb.udp_packet(3.6, B, 5001, A, 4001, receiver_report(0xB, 0xA, 26, 5, 80, 0, 0))]
    (call,) = [c for c in iter_calls(write_pcap(call_with(rtcp))) if c["kind"] == "call"]
    assert call["rtcp_only_streams"] == []
