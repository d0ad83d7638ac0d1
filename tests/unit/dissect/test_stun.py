"""STUN against the RFC 5769 test vectors, and every truncation of them."""

from __future__ import annotations

import contextlib
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.dissectdrive import context, packets, run
from voipscope.anomalies import AnomalyLog
from voipscope.dissect.base import UDP, FlowContext, Packet
from voipscope.dissect.knowledge import Knowledge
from voipscope.dissect.stun import (
    StunDissector,
    demux_first_byte,
    looks_like_stun,
    parse_channel_data,
    parse_stun,
)
from voipscope.errors import DecodeError, Malformed, Truncated

# RFC 5769 §2.1 sample request and §2.2 sample IPv4 response.
REQUEST = bytes.fromhex(
    "000100582112a442b7e7a701bc34d686fa87dfae"
    "802200105354554e207465737420636c69656e74"
    "002400046e0001ff"
    "80290008932ff9b151263b36"
    "000600096576746a3a68367659202020"
    "000800149aeaa70cbfd8cb56781ef2b5b2d3f249c1b571a2"
    "80280004e57a3bcf"
)
RESPONSE_V4 = bytes.fromhex(
    "0101003c2112a442b7e7a701bc34d686fa87dfae"
    "8022000b7465737420766563746f7220"
    "002000080001a147e112a643"
    "000800142b91f599fd9e90c38c7489f92af9ba53f06be7d7"
    "80280004c07d4c96"
)


def test_rfc5769_request():
    msg = parse_stun(REQUEST)
    assert (msg.method_name, msg.message_class, msg.classic) == ("Binding", "request", False)
    assert msg.transaction_id == bytes.fromhex("b7e7a701bc34d686fa87dfae")
    assert msg.attribute_names == [
        "SOFTWARE", "PRIORITY", "ICE-CONTROLLED", "USERNAME", "MESSAGE-INTEGRITY", "FINGERPRINT",
    ]  # fmt: skip
    assert msg.text["SOFTWARE"] == "STUN test client" and msg.text["USERNAME"] == "evtj:h6vY"


def test_rfc5769_response_xor_mapped_address():
    msg = parse_stun(RESPONSE_V4)
    assert msg.message_class == "success"
    assert msg.addresses["XOR-MAPPED-ADDRESS"] == [("192.0.2.1", 32853)]
    assert msg.text["SOFTWARE"] == "test vector"


@pytest.mark.parametrize("cut", range(len(REQUEST)))
def test_every_truncation_is_a_decode_error(cut):
    data = REQUEST[:cut]
    with pytest.raises(Truncated):
        parse_stun(data)
    assert not looks_like_stun(data)


def test_classic_rfc3489_has_no_cookie():
    classic = bytes.fromhex("00010000") + bytes(range(16))
    msg = parse_stun(classic)
    assert msg.classic and msg.attributes == []


def test_malformed_headers():
    with pytest.raises(Malformed):
        parse_stun(b"\xc0" + REQUEST[1:])
    with pytest.raises(Malformed):
        parse_stun(REQUEST[:2] + b"\x00\x57" + REQUEST[4:])


def test_channel_data_and_demux():
    assert parse_channel_data(b"\x40\x01\x00\x04abcd") == (0x4001, 4)
    with pytest.raises(Malformed):
        parse_channel_data(b"\x30\x01\x00\x00")
    with pytest.raises(Truncated):
        parse_channel_data(b"\x40\x01\x00\x08abcd")
    assert [demux_first_byte(b) for b in (0, 17, 22, 64, 128, 191, 255)] == [
        "STUN", "ZRTP", "DTLS", "TURN-ChannelData", "RTP/RTCP", "RTP/RTCP", "unknown",
    ]  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200), st.integers(0, 200), st.integers(0, 255))
def test_fuzz_only_decode_errors(noise, position, value):
    data = bytearray(REQUEST + noise)
    data[position % len(data)] = value
    with contextlib.suppress(DecodeError):
        parse_stun(bytes(data))
    with contextlib.suppress(DecodeError):
        parse_stun(noise)


def indication(inner: bytes, method: int = 0x0016) -> bytes:
    """A Send (0x0016) or Data (0x0017) indication whose DATA attribute is ``inner``
    (RFC 8656 §11), after an XOR-PEER-ADDRESS, padded as RFC 8489 §14 says."""
    peer = struct.pack("!HHBBH4s", 0x0012, 8, 0, 1, 0x1234, bytes(4))
    data = struct.pack("!HH", 0x0013, len(inner)) + inner + bytes(-len(inner) % 4)
    body = peer + data
    return struct.pack("!HHI12s", method, len(body), 0x2112A442, bytes(12)) + body


def test_media_relayed_in_indications_after_dtls_is_srtp() -> None:
    """stun_dtls_rtp_unidir's client side: a DTLS handshake, then RTP and an RTCP sender
    report of the same SSRC, all inside Send indications. The report does not confirm the
    RTP; the second RTP packet does, and after DTLS through the relay it is SRTP."""
    ssrc = bytes.fromhex("d23ddc13")
    hello = bytes.fromhex("16feff0000000000000000") + bytes(60)
    rtp = [bytes.fromhex("806d42ef") + bytes(4) + ssrc + bytes(30),
           bytes.fromhex("806d42f0") + bytes(4) + ssrc + bytes(30)]  # fmt: skip
    sr = bytes.fromhex("80c80006") + ssrc + bytes(20)
    c = FlowContext(1, UDP, "10.10.0.1", 65226, "10.1.0.3", 3478, 0, Knowledge(), AnomalyLog())
    d = StunDissector()
    for seq, inner in enumerate([hello, rtp[0], sr, sr, rtp[1]], start=1):
        d.probe(c, Packet(indication(inner), seq, seq, 0))
    media = [f for f in c.findings if f.category == "voip-media"]
    assert [(f.protocol, f.at_packet) for f in media] == [("SRTCP", 4), ("SRTP", 5)]
    assert media[0].confidence < media[1].confidence  # the RTP names the flow
    assert "after a DTLS handshake through the same relay" in media[1].evidence


def test_the_side_that_only_answers_is_the_server():
    """A STUN/TURN server (or an ICE-lite media server) answers and never asks; ICE
    agents checking each other both ask, and then neither end is a server's."""
    ctx = context(UDP)
    run(StunDissector(), ctx, packets(REQUEST, (1, RESPONSE_V4), REQUEST, (1, RESPONSE_V4)))
    assert ctx.stun_server_side == 1
    assert ctx.agent_endpoints() == ((ctx.src_ip, ctx.src_port),)

    ctx = context(UDP)
    run(StunDissector(), ctx, packets((1, REQUEST), RESPONSE_V4))
    assert ctx.stun_server_side == 0 and ctx.agent_endpoints() == ((ctx.dst_ip, ctx.dst_port),)

    ctx = context(UDP)
    run(StunDissector(), ctx, packets(REQUEST, (1, RESPONSE_V4), (1, REQUEST), RESPONSE_V4))
    assert ctx.stun_server_side == -1 and len(ctx.agent_endpoints()) == 2

    ctx = context(UDP)  # requests only (one direction captured): nothing known
    run(StunDissector(), ctx, packets(REQUEST, REQUEST))
    assert ctx.stun_server_side == -1
