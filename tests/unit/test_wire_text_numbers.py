"""Numbers written as text on the wire that hypothesis found (tests/fuzz/
test_fuzz_adversarial_text.py) or a review of every ``int(``/``float(`` on wire text
found, after text_fields.is_decimal: each raised ValueError in a dissector (a
``dissector_internal_error``) or stopped the calls run."""

from __future__ import annotations

import struct

import pytest

from tests import pcapbuild as pb
from voipscope.api import iter_calls
from voipscope.calls.sdp_media import announced_media
from voipscope.calls.sip_headers import contact_expires, history_info
from voipscope.dissect.mgcp import parse_mgcp, parse_mgcp_all
from voipscope.dissect.sdp import parse_sdp
from voipscope.dissect.sip import parse_sip
from voipscope.errors import Malformed
from voipscope.pipeline import FlowPipeline
from voipscope.quality import codec_impairments
from voipscope.quality.emodel import mos

A, B = "10.0.0.1", "10.0.0.2"


def anomalies(write_pcap, packets: list[pb.Packet]) -> dict[str, int]:  # type: ignore[no-untyped-def]
    pipeline = FlowPipeline()
    for _ in pipeline.run_all(str(write_pcap(packets))):
        pass
    return pipeline.stats.anomalies.as_dict()


# -- MGCP: "200 ² " raised ValueError in parse_mgcp (found by hypothesis) -------------------


@pytest.mark.parametrize("line", [b"200 \xc2\xb2 OK", b"200 \xd9\xa3 OK", b"200 " + b"9" * 5000])
def test_an_mgcp_transaction_id_of_unicode_digits_is_malformed(line: bytes) -> None:
    with pytest.raises(Malformed, match="transaction id"):
        parse_mgcp(line + b"\r\n")


def test_an_mgcp_command_with_a_superscript_transaction_id_is_malformed() -> None:
    with pytest.raises(Malformed, match="transaction id"):
        parse_mgcp(b"CRCX \xc2\xb2 aaln/1@gw MGCP 1.0\r\nC: 1\r\n")


def test_a_superscript_mgcp_response_code_is_no_response() -> None:
    with pytest.raises(Malformed, match="not an MGCP command or response"):
        parse_mgcp("²⁰⁰ 1 OK\r\n".encode())


def test_valid_mgcp_numbers_still_parse() -> None:
    (msg,) = parse_mgcp_all(b"250 123456789 OK\r\n")
    assert (msg.response_code, msg.transaction_id) == (250, 123456789)
    msg = parse_mgcp(b"DLCX 7 aaln/1@gw MGCP 1.0\r\nC: a1\r\n")
    assert (msg.verb, msg.transaction_id, msg.call_id) == ("DLCX", 7, "a1")


def test_an_mgcp_superscript_transaction_id_is_no_internal_error(write_pcap) -> None:  # type: ignore[no-untyped-def]
    crcx = b"CRCX 1 aaln/1@gw MGCP 1.0\r\nC: 1\r\nM: recvonly\r\n"
    packets = [pb.udp_packet(1.0, A, 2427, B, 2727, crcx),
               pb.udp_packet(1.1, B, 2727, A, 2427, b"200 \xc2\xb2 OK\r\n")]  # fmt: skip
    counts = anomalies(write_pcap, packets)
    assert "dissector_internal_error" not in counts
    assert counts.get("mgcp_malformed") == 1


# -- SIP Content-Length "\x1f1": tested after str.strip(), parsed without (hypothesis) ------


def test_a_content_length_with_a_unit_separator_is_read_as_tested() -> None:
    data = b"OPTIONS sip:b@h SIP/2.0\r\nCall-ID: x\r\nContent-Length: \x1f4\r\n\r\nabcdEXTRA"
    assert parse_sip(data).body == b"abcd"  # was ValueError: int('\x1f4')


def test_a_content_length_with_a_unit_separator_is_no_internal_error(write_pcap) -> None:  # type: ignore[no-untyped-def]
    msg = (
        f"OPTIONS sip:{B} SIP/2.0\r\nVia: SIP/2.0/UDP {A}:5060;branch=z9hG4bK1\r\n"
        f"From: <sip:a@{A}>;tag=1\r\nTo: <sip:b@{B}>\r\nCall-ID: o1\r\nCSeq: 1 OPTIONS\r\n"
        "Content-Length: \x1f0\r\n\r\n"
    ).encode()
    counts = anomalies(write_pcap, [pb.udp_packet(1.0, A, 5060, B, 5060, msg)] * 3)
    assert "dissector_internal_error" not in counts


# -- codecs: a 5000-digit SDP format reached int() in the E-model (review) --------------------


def test_a_5000_digit_codec_is_unknown_not_a_crash() -> None:
    found = codec_impairments.lookup("5" * 5000)
    assert found.row is None and found.reason is not None
    assert mos("5" * 5000, 0.0).mos is None  # was ValueError: Exceeds the limit (4300 digits)
    assert codec_impairments.lookup(" 0 ").row is not None  # PCMU by number, as before
    assert codec_impairments.lookup("96").reason == (
        "codec unknown: dynamic payload type 96 without rtpmap"
    )


def sip(first: str, cseq: str, body: str = "", to_tag: str = "") -> bytes:
    head = (
        f"{first}\r\nVia: SIP/2.0/UDP {A}:5060;branch=z9hG4bK{cseq[0]}\r\n"
        f"From: <sip:alice@{A}>;tag=a1\r\nTo: <sip:bob@{B}>{to_tag}\r\nCall-ID: k1@{A}\r\n"
        f"CSeq: {cseq}\r\nContact: <sip:alice@{A}>\r\n"
    )
    if body:
        head += f"Content-Type: application/sdp\r\nContent-Length: {len(body)}\r\n"
        return f"{head}\r\n{body}".encode()
    return f"{head}Content-Length: 0\r\n\r\n".encode()


def sdp(ip: str, formats: str) -> str:
    return (
        f"v=0\r\no=- 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\n"
        f"m=audio 4000 RTP/AVP {formats}\r\n"
    )


def test_a_call_whose_sdp_has_a_5000_digit_format_keeps_its_codec(write_pcap) -> None:  # type: ignore[no-untyped-def]
    """m=audio 4000 RTP/AVP <5000 digits> 0: the formats and the payload types no longer
    line up, so the 5000 digits were taken as the codec of payload type 0 and reached
    int() in the E-model: the calls run stopped with a ValueError."""
    huge = "5" * 5000
    rtp = [
        pb.udp_packet(2.0 + k * 0.02, src, 4000, dst, 4000,
                      struct.pack("!BBHII", 0x80, 0, k, k * 160, ssrc) + b"\xff" * 160)
        for k in range(50) for src, dst, ssrc in ((A, B, 0xA), (B, A, 0xB))
    ]  # fmt: skip
    packets = [
        pb.udp_packet(1.0, A, 5060, B, 5060,
                      sip(f"INVITE sip:bob@{B} SIP/2.0", "1 INVITE", sdp(A, f"{huge} 0"))),
        pb.udp_packet(1.5, B, 5060, A, 5060,
                      sip("SIP/2.0 200 OK", "1 INVITE", sdp(B, f"{huge} 0"), ";tag=b1")),
        pb.udp_packet(1.6, A, 5060, B, 5060,
                      sip(f"ACK sip:bob@{B} SIP/2.0", "1 ACK", "", ";tag=b1")),
        *rtp,
        pb.udp_packet(4.0, A, 5060, B, 5060,
                      sip(f"BYE sip:bob@{B} SIP/2.0", "2 BYE", "", ";tag=b1")),
    ]  # fmt: skip
    (call,) = [c for c in iter_calls(str(write_pcap(sorted(packets, key=lambda p: p.ts_ns))))
               if c["kind"] == "call"]  # fmt: skip
    assert call["state"] == "answered"
    assert len(call["streams"]) == 2
    assert {s["codec"] for s in call["streams"]} == {"PCMU"}  # from the RTP payload type
    assert all(s["mos"] is not None for s in call["streams"])


# -- SIP and SDP numbers: ASCII digits and 16-bit ports only (review) ----------------------


def test_contact_expires_takes_ascii_digits_only() -> None:
    assert contact_expires(["<sip:a@h>;expires=3600"]) == 3600
    assert contact_expires(["<sip:a@h>;expires=٣٦٠٠"]) is None  # Arabic-Indic digits
    assert contact_expires(["<sip:a@h>;expires=３６００, <sip:b@h>;expires=60"]) == 60


def test_history_info_cause_takes_ascii_digits_only() -> None:
    assert history_info(["<sip:b@h?Reason=SIP%3Bcause%3D302>;index=1"]) == [("sip:b@h", "302")]
    assert history_info(["<sip:b@h?Reason=SIP%3Bcause%3D٣٠٢>;index=1"]) == [("sip:b@h", None)]


def test_sdp_rtcp_and_candidate_ports_are_16_bit() -> None:
    body = (
        b"v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\nc=IN IP4 10.0.0.1\r\nm=audio 4000 RTP/AVP 0\r\n"
        b"a=rtcp:99999999999\r\n"
        b"a=candidate:1 1 UDP 2130706431 10.0.0.1 70000 typ host\r\n"
        b"a=candidate:2 1 UDP 2130706431 10.0.0.1 4002 typ host\r\n"
    )
    (media,) = parse_sdp(body).media
    assert media.rtcp_port is None
    assert media.candidates == [("udp", "10.0.0.1", 4002, "host")]
    ok = body.replace(b"a=rtcp:99999999999", b"a=rtcp:65535")
    assert parse_sdp(ok).media[0].rtcp_port == 65535


def test_announced_media_keeps_formats_and_payload_types_apart() -> None:
    body = sdp("10.0.0.1", "t38 0 8").encode()
    (m,) = announced_media(body)
    assert m.payload_types == (0, 8)
    assert m.codecs == ("t38", "PCMU/8000", "PCMA/8000")
