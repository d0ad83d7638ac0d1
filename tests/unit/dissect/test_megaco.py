"""dissect/megaco.py against the Megaco flow of the shared FAX capture (text encoding)."""

from __future__ import annotations

import contextlib

import pytest

from voipscope.anomalies import AnomalyLog
from voipscope.dissect.base import UDP, FlowContext, Packet, Probe
from voipscope.dissect.knowledge import Knowledge
from voipscope.dissect.megaco import MegacoDissector, parse_megaco
from voipscope.errors import DecodeError, Malformed

SHORT = b"!/1 <iMSS>\nT=555282713{C=-{AV=DS/1/5{AT{M}}}}"
WITH_SDP = (
    b"MEGACO/1 [10.23.1.42]:2944\r\nReply = 7 { Context = 5 { Add = RTP/1 { Media { "
    b"Local { v=0\r\nc=IN IP4 10.23.1.52\r\nm=audio 16756 RTP/AVP 8\r\n } } } } }"
)


def test_header_short_and_long_forms() -> None:
    assert (parse_megaco(SHORT).version, parse_megaco(SHORT).mid) == (1, "<iMSS>")
    msg = parse_megaco(WITH_SDP)
    assert msg.mid == "[10.23.1.42]:2944" and len(msg.sdp_blocks) == 1


@pytest.mark.parametrize("data", [b"INVITE sip:a SIP/2.0\r\n", b"!/9 x", b"MEGACO/", b"  "])
def test_not_megaco(data: bytes) -> None:
    with pytest.raises(DecodeError):
        parse_megaco(data)


def test_prefixes_raise_only_decode_errors() -> None:
    for cut in range(len(WITH_SDP)):
        with contextlib.suppress(DecodeError):
            parse_megaco(WITH_SDP[:cut])


def test_dissector_announces_sdp_media() -> None:
    knowledge = Knowledge()
    ctx = FlowContext(1, UDP, "10.35.40.22", 2944, "10.23.1.42", 2944, 0, knowledge, AnomalyLog())
    assert MegacoDissector().probe(ctx, Packet(WITH_SDP, 5, 1, 0)) == Probe.MATCH
    assert ctx.findings[0].protocol == "MEGACO"
    assert knowledge.expected("10.23.1.52", 16756, 5).protocol == "RTP"  # type: ignore[union-attr]
    with pytest.raises(Malformed):
        MegacoDissector().probe(ctx, Packet(b"!/7 bad", 6, 2, 0))
