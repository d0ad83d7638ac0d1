"""SIP and SDP parsing on the real SIP captures, against what tshark reads in them."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.dissectdrive import context, packets, run
from tests.readback import payloads_by_frame
from voipscope.dissect.base import Probe
from voipscope.dissect.sdp import parse_sdp
from voipscope.dissect.sip import SipDissector, looks_like_sip, parse_sip
from voipscope.errors import DecodeError, Malformed, Truncated

GOLDENS = Path(__file__).parent / "goldens"
CAPTURES = ["sip.pcap", "FAX-Call-t38-CA-TDM-SIP-FB-1.pcap"]


@pytest.mark.parametrize("name", CAPTURES)
def test_every_sip_message_tshark_sees(name, shared_captures):
    payloads = payloads_by_frame(shared_captures / name, 17)
    rows = [line.split("|") for line in (GOLDENS / f"{name}.sip.txt").read_text().splitlines()]
    assert len(rows) > 50
    for frame, method, status, call_id, cseq_method, m_line, c_address in rows:
        data = payloads[int(frame)]
        assert looks_like_sip(data), frame
        msg = parse_sip(data)
        assert (msg.method or "", str(msg.status_code or "")) == (method, status), frame
        assert msg.call_id == call_id and msg.cseq is not None and msg.cseq[1] == cseq_method
        if m_line:
            sdp = parse_sdp(msg.body)
            first = sdp.media[0]
            assert (
                f"{first.media} {first.port} {first.protocol} {' '.join(first.formats)}" == m_line
            )
            assert (first.connection or sdp.connection) == c_address.split(",")[0]


INVITE = (
    b"INVITE sip:bob@biloxi.example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/TCP client.atlanta.example.com:5060;branch=z9hG4bK74bf9\r\n"
    b"f: Alice <sip:alice@atlanta.example.com>;tag=9fxced76sl\r\n"
    b"t: Bob <sip:bob@biloxi.example.com>\r\n"
    b"i: 3848276298220188511@atlanta.example.com\r\n"
    b"CSeq: 2 INVITE\r\n"
    b"Subject: a folded\r\n  header\r\n"
    b"Content-Type: application/sdp\r\n"
    b"l: 151\r\n\r\n"
    b"v=0\r\no=alice 2890844526 2890844526 IN IP4 client.atlanta.example.com\r\ns=-\r\n"
    b"c=IN IP4 192.0.2.101\r\nt=0 0\r\nm=audio 49172 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
)


def test_compact_headers_folding_and_body():
    msg = parse_sip(b"\r\n\r\n" + INVITE + b"OPTIONS sip:next SIP/2.0\r\n", stream=True)
    assert msg.leading_crlf == 2 and msg.method == "INVITE"
    assert msg.from_tag == "9fxced76sl" and msg.to_tag is None
    assert msg.call_id == "3848276298220188511@atlanta.example.com" and msg.cseq == (2, "INVITE")
    assert msg.header("subject") == "a folded header"
    assert msg.message_bytes == 4 + len(INVITE)
    sdp = parse_sdp(msg.body)
    assert sdp.media[0].rtpmap == {0: "PCMU/8000"} and sdp.media[0].connection == "192.0.2.101"


def test_stream_needs_the_whole_body():
    with pytest.raises(Truncated):
        parse_sip(INVITE[:-10], stream=True)
    with pytest.raises(Truncated):
        parse_sip(INVITE[:40])
    with pytest.raises(Malformed, match="Content-Length"):
        parse_sip(INVITE.replace(b"l: 151\r\n", b""), stream=True)


@pytest.mark.parametrize(
    "data",
    [
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        b"INVITE sip:x SIP/3.0\r\n\r\n",
        b"SIP/2.0 200 OK\r\nno colon\r\n\r\n",
    ],
)
def test_not_sip(data):
    with pytest.raises(Malformed):
        parse_sip(data)


def test_http_on_sip_port_is_not_sip():
    assert not looks_like_sip(b"GET /index.html HTTP/1.1\r\n")
    assert looks_like_sip(b"SIP/2.0 180 Ringing\r\n") and looks_like_sip(
        b"\r\nBYE sip:a SIP/2.0\r\n"
    )


@settings(max_examples=300, deadline=None)
@given(st.integers(0, len(INVITE)), st.binary(max_size=8), st.booleans())
def test_fuzz_only_decode_errors(cut, junk, stream):
    data = INVITE[:cut] + junk + INVITE[cut:]
    try:
        msg = parse_sip(data, stream=stream)
        parse_sdp(msg.body)
    except DecodeError:
        pass


def test_sdp_ssrc_attributes_rfc5576():
    from voipscope.dissect.sdp import MAX_SSRCS, parse_sdp

    body = (
        "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n"
        "m=audio 4000 RTP/AVP 0\r\na=ssrc:4660 cname:alice\r\na=ssrc:4660 msid:x y\r\n"
        "a=ssrc:99999999999 cname:bad\r\na=ssrc:x\r\n"
        + "".join(f"a=ssrc:{k} cname:c\r\n" for k in range(1, 40))
    ).encode()
    (m,) = parse_sdp(body).media
    assert m.ssrcs[0] == 4660 and len(m.ssrcs) == MAX_SSRCS  # deduped, capped, junk skipped


MANGLED_REGISTER = (
    b"REGISTER sip:example.org SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1:5060\r\n"
    b"Content-Length: twelve\r\n\r\n"
)
VALID_OPTIONS = (
    b"OPTIONS sip:example.org SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK1\r\n"
    b"From: <sip:a@example.org>;tag=1\r\nTo: <sip:example.org>\r\nCall-ID: c1@10.0.0.1\r\n"
    b"CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
)


def test_a_mangled_first_datagram_does_not_hide_the_valid_ones():
    """UDP: a datagram that starts like SIP but does not parse keeps the flow a candidate;
    when a message parses, the earlier one becomes a sip_malformed anomaly."""

    result = run(SipDissector(), context(), packets(MANGLED_REGISTER, VALID_OPTIONS))
    assert result.verdicts == [Probe.MAYBE, Probe.MATCH] and result.matched_at == 2
    assert result.ctx.anomalies.as_dict() == {"sip_malformed": 1}


def test_ssdp_that_starts_like_sip_is_never_sip_and_raises_nothing():

    ssdp = b"NOTIFY * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nNTS: ssdp:alive\r\n\r\n"
    result = run(SipDissector(), context(), packets(ssdp, ssdp, ssdp, ssdp))
    assert result.verdicts == [Probe.MAYBE, Probe.MAYBE, Probe.MAYBE]  # then out of budget
    assert not result.ctx.findings and result.ctx.anomalies.as_dict() == {}
