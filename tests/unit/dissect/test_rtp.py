"""RTP/RTCP header parsing: each branch, each truncation, and fuzzing."""

from __future__ import annotations

import contextlib
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.unit.dissect.appcases import drive
from voipscope.dissect.rtp import FOLLOW_PACKETS, RtpDissector, parse_rtcp_compound, parse_rtp
from voipscope.errors import DecodeError, Malformed, Truncated


def rtp(
    pt=0,
    seq=1,
    ts=160,
    ssrc=0x1234,
    marker=False,
    csrc=(),
    ext=None,
    padding=0,
    payload=b"\xff" * 160,
):
    b0 = 0x80 | len(csrc) | (0x10 if ext is not None else 0) | (0x20 if padding else 0)
    out = struct.pack("!BBHII", b0, (0x80 if marker else 0) | pt, seq, ts, ssrc)
    out += b"".join(struct.pack("!I", c) for c in csrc)
    if ext is not None:
        profile, words = ext
        out += struct.pack("!HH", profile, len(words) // 4) + words
    out += payload
    if padding:
        out += b"\0" * (padding - 1) + bytes([padding])
    return out


def test_plain_g711():
    h = parse_rtp(rtp(pt=8, seq=65535, ts=2**32 - 1, marker=True))
    assert (h.payload_type, h.sequence, h.timestamp, h.ssrc, h.marker) == (
        8,
        65535,
        2**32 - 1,
        0x1234,
        True,
    )
    assert (h.header_bytes, h.payload_bytes, h.padding_bytes) == (12, 160, 0)


def test_csrc_extension_padding():
    h = parse_rtp(
        rtp(pt=111, csrc=(1, 2), ext=(0xBEDE, b"\x10\xff\x00\x00"), padding=4, payload=b"x" * 20)
    )
    assert h.csrc == (1, 2) and h.extension_profile == 0xBEDE
    assert (h.header_bytes, h.payload_bytes, h.padding_bytes) == (12 + 8 + 8, 20, 4)


@pytest.mark.parametrize("cut", range(12 + 8 + 8))
def test_truncated_headers(cut):
    with pytest.raises(Truncated):
        parse_rtp(rtp(csrc=(1, 2), ext=(0xBEDE, b"\x10\xff\x00\x00"), payload=b"")[:cut])


def test_bad_version_and_padding():
    with pytest.raises(Malformed, match="version"):
        parse_rtp(b"\x40" + rtp()[1:])
    bad_padding = bytearray(rtp(padding=4, payload=b""))
    bad_padding[-1] = 200
    with pytest.raises(Malformed, match="padding"):
        parse_rtp(bytes(bad_padding))


def rtcp(pt, count=0, body=b"\0" * 20):
    return struct.pack("!BBH", 0x80 | count, pt, len(body) // 4) + body


def test_rtcp_compound():
    packets = parse_rtcp_compound(
        rtcp(200, body=struct.pack("!I", 7) + b"\0" * 20) + rtcp(202, 1, b"\0" * 8)
    )
    assert [(p.packet_type, p.count, p.length_bytes) for p in packets] == [
        (200, 0, 28),
        (202, 1, 12),
    ]
    assert packets[0].ssrc == 7


def test_rtcp_errors():
    with pytest.raises(Truncated):
        parse_rtcp_compound(rtcp(201)[:-1])
    with pytest.raises(Malformed, match="type"):
        parse_rtcp_compound(rtcp(199))
    with pytest.raises(Malformed, match="more than"):
        parse_rtcp_compound(rtcp(201, body=b"") * 40)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=120))
def test_fuzz_only_decode_errors(data):
    for parse in (parse_rtp, parse_rtcp_compound):
        with contextlib.suppress(DecodeError):
            parse(data)


def test_rtp_long_after_rtcp_on_the_flow_is_still_found() -> None:
    """stun_signal.pcapng: SRTCP receiver reports and ICE checks for ~90 packets before the
    first RTP on an rtcp-mux flow. The flow is followed past the usual 24 packets while
    only RTCP matched, and for 24 more after the RTP."""
    report = rtcp(201, 1, bytes(28))  # an RR: sender SSRC and one report block
    stun = bytes.fromhex("000100002112a442") + bytes(12)  # a Binding request, no attributes
    early = [report if k % 3 else stun for k in range(100)]
    media = [rtp(pt=118, seq=100 + k, ts=160 * k) for k in range(40)]
    result = drive(RtpDissector(), *early, *media)
    found = {f.protocol: f for f in result.ctx.findings}
    assert set(found) == {"RTCP", "RTP"} and found["RTP"].at_packet == 101
    assert result.ctx.state["RTP"].rtp_packets == 1 + FOLLOW_PACKETS
