"""Numbers in SIP and SDP text: only ASCII digits reach ``int``. ``str.isdigit`` is true
for "²" (U+00B2, UTF-8 C2 B2), which ``int`` refuses; before text_fields a REGISTER with
``Expires: ²`` stopped the whole calls run with a ValueError."""

from __future__ import annotations

import pytest

from tests import pcapbuild as pb
from voipscope.api import iter_calls
from voipscope.dissect.sdp import parse_sdp
from voipscope.errors import Malformed
from voipscope.pipeline import FlowPipeline
from voipscope.text_fields import is_decimal

A, B = "10.0.0.1", "10.0.0.2"


@pytest.mark.parametrize(
    ("text", "expected"),
    [("3600", True), ("0", True), ("", False), ("²", False), ("٣", False), ("1²", False),
     ("-1", False), (" 1", False), ("9" * 19, True), ("9" * 20, False)],
)  # fmt: skip
def test_is_decimal(text: str, expected: bool) -> None:
    assert is_decimal(text) is expected


def register(expires: str, cseq: str = "1", content_length: str = "0") -> bytes:
    return (
        f"REGISTER sip:{B} SIP/2.0\r\nVia: SIP/2.0/UDP {A}:5060;branch=z9hG4bK{cseq}\r\n"
        f"From: <sip:alice@{B}>;tag=a1\r\nTo: <sip:alice@{B}>\r\nCall-ID: reg1@{A}\r\n"
        f"CSeq: {cseq} REGISTER\r\nContact: <sip:alice@{A}>\r\nExpires: {expires}\r\n"
        f"Content-Length: {content_length}\r\n\r\n"
    ).encode()


def ok(cseq: str = "1") -> bytes:
    return (
        f"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP {A}:5060;branch=z9hG4bK{cseq}\r\n"
        f"From: <sip:alice@{B}>;tag=a1\r\nTo: <sip:alice@{B}>;tag=r1\r\nCall-ID: reg1@{A}\r\n"
        f"CSeq: {cseq} REGISTER\r\nContact: <sip:alice@{A}>;expires=60\r\nContent-Length: 0\r\n\r\n"
    ).encode()


def test_a_superscript_expires_is_no_number(write_pcap) -> None:  # type: ignore[no-untyped-def]
    path = write_pcap([pb.udp_packet(1.0, A, 5060, B, 5060, register("²")),
                       pb.udp_packet(1.1, B, 5060, A, 5060, ok())])  # fmt: skip
    (registration,) = [c for c in iter_calls(str(path)) if c["kind"] == "registration"]
    assert registration["result"] == "registered"


def test_a_superscript_content_length_is_malformed_not_a_bug(write_pcap) -> None:  # type: ignore[no-untyped-def]
    path = write_pcap([pb.udp_packet(1.0, A, 5060, B, 5060, register("60", content_length="²")),
                       pb.udp_packet(1.1, B, 5060, A, 5060, ok())])  # fmt: skip
    pipeline = FlowPipeline()
    (flow,) = [r for b in pipeline.run_one(str(path)) for r in b.to_pylist()]
    counts = pipeline.stats.anomalies.as_dict()
    # While probing, a message that does not parse is "not SIP yet" (no anomaly); before
    # text_fields, int("²") raised ValueError here: a dissector_internal_error.
    assert "dissector_internal_error" not in counts
    assert flow["src2dst_packets"] == flow["dst2src_packets"] == 1


def test_superscripts_in_sdp_numbers_are_malformed_not_a_bug() -> None:
    body = "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\nc=IN IP4 10.0.0.1\r\nm=audio ² RTP/AVP 0\r\n"
    with pytest.raises(Malformed, match="not a port"):
        parse_sdp(body.encode())
    ok_port = body.replace("m=audio ² RTP/AVP 0", "m=audio 4000 RTP/AVP ² 0")
    (media,) = parse_sdp(ok_port.encode()).media
    assert media.port == 4000  # the format "²" is skipped, no ValueError


def test_a_5000_digit_cseq_is_no_number(write_pcap) -> None:  # type: ignore[no-untyped-def]
    """int() refuses more than 4300 digits (sys.int_max_str_digits): a CSeq that long
    stopped the calls run before; now the message has no CSeq."""
    huge = "9" * 5000
    message = register("60").replace(b"CSeq: 1 REGISTER", f"CSeq: {huge} REGISTER".encode())
    path = write_pcap([pb.udp_packet(1.0, A, 5060, B, 5060, message),
                       pb.udp_packet(1.1, B, 5060, A, 5060, ok())])  # fmt: skip
    list(iter_calls(str(path)))  # no ValueError
