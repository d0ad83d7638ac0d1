"""Zoom SFU and media encapsulations: each branch, each truncation, the shared captures.

tshark has no Zoom dissector (Princeton's zoom.lua plugin is not installed), so the
fixtures from zoom.pcap/zoom2.pcap are checked against the offsets of zoom.lua/zoom.cc;
the RTP/RTCP inside them is read by voipscope's own RTP parser (tested against tshark).
"""

from __future__ import annotations

import contextlib
import struct

import pytest

from tests.unit.dissect.appcases import check_negatives, drive, drive_captured, prefixes, udp_flows
from voipscope.dissect.base import MEDIA, SIGNALING, Probe
from voipscope.dissect.zoom import (
    ZoomDissector,
    parse_zoom_media,
    parse_zoom_p2p_hello,
    parse_zoom_sfu,
)
from voipscope.errors import DecodeError, Malformed, Truncated, Unsupported

H = bytes.fromhex
# zoom2.pcap, client 192.168.1.178:60653/58117/57953 <-> 144.195.73.154:8801
HELLO = H(  # frame 21: SFU type 1
    "010003c84ac4528718cda2b8477a1b899f33830000000000000002006f613f006f613f00000040e6d766f5"
    "94f24c8c9302460b02e7de2892e09de53c6e5f03a336a430c96bfc90d80259b9fbc471b13716d1d1836079"
    "caa23b0fdcc0f60b64bd3e017c3cf86d760000000000400040000075300001000300022000"
)
HELLO_REPLY = H(  # frame 23: SFU type 2
    "020003c84ac4528718cda2b8477a1b899f3383004f8378006f613f0000000000000000004000400003e00300"
)
PING = H("03000000015cfb002a004f837800")  # frame 24: SFU type 3
AUDIO = H(  # frame 111: SFU type 5, media type 15, RTP at 8 + 19
    "050002004f8379040f0100fb90141104ff00005cfb035e0001006a90700b160011508001000402bede0001"
    "50e4006800360c16000000000000000000000000164bc8ee526ef353770da90eb3ba7ef2ae7129251d2ca3"
    "1e8a2ca5890670415e73fdae94dfc2306c10df09ca110dbc1ba43529cc3f4f4c507887af309eb7aef87371"
    "6541df45"
)
RTCP = H(  # frame 122: SFU type 5, media type 34, RTCP SR + SDES at 8 + 16
    "050009004f837904220100fb9014100000000000000000ff80c8000601000402e59828541206f976001"
    "15f80000002370000596581ca00020100040201000000"
)
CONTROL = H("050005004f837a000a060000000000000000000000000000000000")  # frame 129: type 10
SCREEN_CONTROL = H(  # frame 30: type 13 without RTP (byte 7 is not 0x1E)
    "050000004f8378040d010da7a289330548fdb556c5d10b78e908010008010300000000020000000372"
    "69640300000000000000000002756101000001"
)
# zoom.pcap: an older client with a 1-byte SFU header.
SHORT_RTCP = H(  # frame 689: type 5, media type 34 at offset 1
    "05220100fb90091000000000000000000080c8000601000402e13779d7e7ec12da000009100000000500"
    "0000b581ca00020100040201000000"
)
SHORT_CONTROL = H("050a06000000000000000000000000")  # frame 693
# zoom.pcap frames 701/703 (GTP-tunnelled flow 10.140.117.35:45634 <-> :8801): 3 and its echo.
PING_GTP = H(
    "03000000120ffe98d200272ec9010540dc8325119dd2eba2637c7328f1e9f13b45c43793cc84878b469e82"
    "5c267a8b935b8a446171dc2b73a77554495c171d51f991d08255e25bc9108e980cacf3239100"
)
PONG_GTP = H(
    "04000000120ffe98d200272ec9010540c42061ab279d41ce917434872b69d9c003d693607310c7493b199a"
    "de91fb02822f61c6aabbe9655c07f4375f19b5640b51c414bde59c3270152303f07464852f00"
)


def rtp(pt=98, seq=100, ssrc=0x01020304, payload=b"\x55" * 40):
    return struct.pack("!BBHII", 0x80, pt, seq, 1000, ssrc) + payload


# No video, P2P screen share or P2P opening packet in the shared captures: built from the
# layouts in zoom.cc / zoom.lua / nDPI zoom.c.
VIDEO_FRAMED = bytes([16]) + bytes(19) + b"\x02" + b"\x00\x07\x03" + rtp()  # RTP at 24
VIDEO_PLAIN = bytes([16]) + bytes(19) + rtp()  # byte 20 (the RTP's first) is 0x80: RTP at 20
P2P_SCREEN = bytes([30]) + bytes(19) + rtp(seq=7)
ADDRESS, UUID = b"192.168.1.2", b"0123456789abcdef"
P2P_HELLO = (
    b"\x1f\x02\x01"
    + bytes(21)
    + struct.pack("!I", len(ADDRESS))
    + ADDRESS
    + struct.pack("!I", len(UUID))
    + UUID
    + bytes(4)
)


def test_hello_and_reply_share_the_session_id():
    hello, reply = parse_zoom_sfu(HELLO), parse_zoom_sfu(HELLO_REPLY)
    assert (hello.sfu_type, hello.version, reply.sfu_type) == (1, 3, 2)
    assert hello.session_id == reply.session_id == H("c84ac4528718cda2b8477a1b899f3383")
    assert reply.connection_id == H("004f8378")


def test_ping_carries_the_connection_id():
    ping = parse_zoom_sfu(PING)
    assert (ping.sfu_type, ping.sequence, ping.connection_id) == (3, 1, H("004f8378"))


def test_audio_inside_the_8_byte_sfu_header():
    sfu = parse_zoom_sfu(AUDIO)
    assert (sfu.sequence, sfu.connection_id, sfu.direction, sfu.media_offset) == (
        2,
        H("004f8379"),
        0x04,
        8,
    )
    media = parse_zoom_media(AUDIO[8:])
    assert (media.media_type, media.kind, media.payload_offset) == (15, "audio", 19)
    assert media.rtp is not None
    assert (media.rtp.payload_type, media.rtp.sequence, media.rtp.ssrc) == (112, 0x0B16, 0x01000402)
    assert media.rtp.extension_profile == 0xBEDE


@pytest.mark.parametrize(("data", "offset"), [(RTCP, 8), (SHORT_RTCP, 1)])
def test_rtcp_in_both_sfu_forms(data, offset):
    sfu = parse_zoom_sfu(data)
    assert sfu.media_offset == offset
    media = parse_zoom_media(data[offset:])
    assert (media.media_type, media.kind, media.payload_offset) == (34, None, 16)
    assert [p.packet_type for p in media.rtcp] == [200, 202]
    assert media.rtcp[0].ssrc == 0x01000402


@pytest.mark.parametrize(
    ("data", "offset", "media_type"),
    [(CONTROL, 8, 10), (SHORT_CONTROL, 1, 10), (SCREEN_CONTROL, 8, 13)],
)
def test_control_messages_carry_no_rtp(data, offset, media_type):
    sfu = parse_zoom_sfu(data)
    assert sfu.media_offset == offset
    media = parse_zoom_media(data[offset:])
    assert (media.media_type, media.rtp, media.rtcp) == (media_type, None, ())


@pytest.mark.parametrize(
    ("data", "offset", "kind"),
    [(VIDEO_FRAMED, 24, "video"), (VIDEO_PLAIN, 20, "video"), (P2P_SCREEN, 20, "video")],
)
def test_video_and_screen_share_offsets(data, offset, kind):
    media = parse_zoom_media(data)
    assert (media.payload_offset, media.kind) == (offset, kind)
    assert media.rtp is not None and media.rtp.ssrc == 0x01020304


def test_server_screen_share_with_rtp():
    data = bytes([13]) + bytes(6) + b"\x1e" + bytes(19) + rtp()
    media = parse_zoom_media(data)
    assert (media.payload_offset, media.kind, media.rtp.payload_type) == (27, "video", 98)


def test_p2p_hello():
    assert parse_zoom_p2p_hello(P2P_HELLO) == ("192.168.1.2", UUID)


@pytest.mark.parametrize("data", prefixes(HELLO[:19]) + prefixes(HELLO_REPLY[:23]))
def test_sfu_prefixes(data):
    with pytest.raises(Truncated):
        parse_zoom_sfu(data)


@pytest.mark.parametrize("data", prefixes(AUDIO) + prefixes(RTCP) + prefixes(SHORT_RTCP))
def test_type5_prefixes_only_decode_errors(data):
    with contextlib.suppress(DecodeError):
        sfu = parse_zoom_sfu(data)
        parse_zoom_media(data[sfu.media_offset :])


@pytest.mark.parametrize("data", prefixes(PING[:13]))
def test_ping_prefixes(data):
    with pytest.raises(Truncated):
        parse_zoom_sfu(data)


@pytest.mark.parametrize(
    "data", prefixes(AUDIO[8:]) + prefixes(RTCP[8:]) + prefixes(VIDEO_FRAMED) + prefixes(P2P_SCREEN)
)
def test_media_prefixes_only_decode_errors(data):
    # A prefix may still parse (RTP carries no length); only DecodeErrors may escape.
    with contextlib.suppress(DecodeError):
        parse_zoom_media(data)


@pytest.mark.parametrize("cut", range(28))
def test_audio_cut_before_rtp_header_end_is_truncated(cut):
    with pytest.raises(Truncated):
        parse_zoom_media(AUDIO[8 : 8 + 19 + cut % 12])


@pytest.mark.parametrize("data", prefixes(P2P_HELLO))
def test_p2p_hello_prefixes(data):
    with pytest.raises(DecodeError):
        parse_zoom_p2p_hello(data)


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (b"\x09" + PING[1:], Malformed),  # SFU type 9
        (b"\x01\x01" + HELLO[2:], Malformed),  # type 1, byte 1 not 0
        (b"\x05\x63" + bytes(20), Unsupported),  # media type 99 in either form
        (AUDIO[:8] + b"\x63" + AUDIO[9:], Unsupported),
        (P2P_HELLO[:-1] + b"\x01", Malformed),  # does not end in zeros
        (P2P_HELLO[:24] + struct.pack("!I", 999) + P2P_HELLO[28:], Malformed),
    ],
)
def test_errors(data, error):
    with pytest.raises(error):
        if data[0] == 0x1F:
            parse_zoom_p2p_hello(data)
        else:
            sfu = parse_zoom_sfu(data)
            parse_zoom_media(data[sfu.media_offset :])


def test_audio_rtp_that_is_not_rtp_is_malformed():
    with pytest.raises(Malformed):
        parse_zoom_media(AUDIO[8 : 8 + 19] + b"\x40" + AUDIO[28:])


ZOOM = (("192.168.1.178", 58117), ("144.195.73.154", 8801))


def test_hello_reply_matches_then_audio_is_reported():
    result = drive(
        ZoomDissector(), HELLO, (1, HELLO_REPLY), (1, PING), (1, AUDIO), src=ZOOM[0], dst=ZOOM[1]
    )
    assert result.verdicts == [Probe.MAYBE, Probe.MATCH]
    hello, reply, audio = result.ctx.findings
    assert hello.confidence == 0.6 and "8801-8810" in hello.evidence
    assert reply.confidence == 0.95 and "session id" in reply.evidence
    assert (audio.media, audio.app, audio.protocol) == ("audio", "Zoom", "Zoom")
    # Join/keepalive is the app's control traffic; media frames make the flow media.
    assert (hello.category, reply.category, audio.category) == (SIGNALING, SIGNALING, MEDIA)


def test_bandwidth_probes_are_media_without_a_kind():
    probe = AUDIO[:8] + b"\x15\x01" + bytes(13) + b"\x01" * 1000  # type 21, filled with 0x01
    flow = [HELLO, (1, HELLO_REPLY), *[(1, probe)] * 6]
    result = drive(ZoomDissector(), *flow, src=ZOOM[0], dst=ZOOM[1])
    media = [f for f in result.ctx.findings if f.category == MEDIA]
    assert len(media) == 1 and media[0].media is None and "bandwidth probes" in media[0].evidence
    assert media[0].at_packet == 7  # the fifth probe
    # The 88-byte type-21 keepalives of the GTP-tunnelled flow are not probes.
    short = AUDIO[:8] + b"\x15\x01" + bytes(78)
    result = drive(
        ZoomDissector(), HELLO, (1, HELLO_REPLY), *[(1, short)] * 6, src=ZOOM[0], dst=ZOOM[1]
    )
    assert all(f.category == SIGNALING for f in result.ctx.findings)


def test_audio_on_zoom_port_matches_at_once():
    result = drive(ZoomDissector(), (1, AUDIO), src=ZOOM[0], dst=ZOOM[1])
    assert result.matched_at == 1
    assert result.finding.media == "audio" and result.finding.confidence == 0.9


def test_audio_off_zoom_ports_needs_a_second_packet_of_the_stream():
    second = AUDIO[: 8 + 19 + 2] + b"\x0b\x17" + AUDIO[8 + 19 + 4 :]
    result = drive(ZoomDissector(), (1, AUDIO), (1, second))
    assert result.verdicts == [Probe.MAYBE, Probe.MATCH]
    assert [f.confidence for f in result.ctx.findings] == [0.6, 0.85]


def test_connection_id_ties_control_messages_to_the_reply():
    result = drive(ZoomDissector(), HELLO_REPLY[:3] + bytes(16) + HELLO_REPLY[19:], (1, PING))
    assert result.matched_at == 2 and "connection id" in result.finding.evidence


def test_ping_echo_on_zoom_port():
    result = drive(
        ZoomDissector(),
        PING_GTP,
        (1, PONG_GTP),
        src=("10.140.117.35", 45634),
        dst=("193.122.35.237", 8801),
    )
    assert result.matched_at == 2 and "echoes" in result.finding.evidence


def test_short_form_rtcp_matches_on_port():
    result = drive(ZoomDissector(), SHORT_RTCP, src=ZOOM[0], dst=ZOOM[1])
    assert result.matched and "1-byte header" in result.finding.evidence


def test_p2p_flows():
    assert drive(ZoomDissector(), P2P_HELLO).matched
    second = P2P_SCREEN[:22] + b"\x00\x08" + P2P_SCREEN[24:]
    result = drive(ZoomDissector(), P2P_SCREEN, second)
    assert result.verdicts == [Probe.MAYBE, Probe.MATCH]
    assert result.finding.media == "video"


def test_port_alone_is_weak():
    short = b"\x03" + bytes(5)  # a Zoom first byte, too short for an SFU type 3
    result = drive(ZoomDissector(), short, short, src=ZOOM[0], dst=ZOOM[1])
    assert not result.matched
    assert result.finding.confidence <= 0.3 and "port" in result.finding.evidence
    assert result.finding.app is None  # ports never name the app
    # Other first bytes never reach ``probe`` (the stage's gate): no port evidence either.
    stun = bytes.fromhex("000100002112a442") + bytes(12)
    assert 0x00 not in ZoomDissector.udp_first_bytes
    assert not drive(ZoomDissector(), stun, src=ZOOM[0], dst=ZOOM[1]).ctx.findings


def test_broken_rtp_after_match_is_an_anomaly_unknown_type_is_not():
    broken = AUDIO[: 8 + 19] + b"\x40" + AUDIO[8 + 20 :]
    unknown = AUDIO[:8] + b"\x63" + AUDIO[9:]
    result = drive(
        ZoomDissector(),
        HELLO,
        (1, HELLO_REPLY),
        (1, broken),
        (1, unknown),
        src=ZOOM[0],
        dst=ZOOM[1],
    )
    assert result.matched
    assert dict(result.ctx.anomalies.counts) == {"zoom_malformed": 1}


# zoom.pcap: 3 flows, plus the one inside its GTP-U tunnel (decoded since 0.3).
@pytest.mark.parametrize(("capture", "matched"), [("zoom.pcap", 4), ("zoom2.pcap", 3)])
def test_zoom_captures(shared_captures, capture, matched):
    runs = [drive_captured(ZoomDissector(), f) for f in udp_flows(shared_captures / capture)]
    assert sum(r.matched for r in runs) == matched
    assert not any(r.ctx.anomalies.counts for r in runs)
    if capture == "zoom2.pcap":
        media = {f.media for r in runs for f in r.ctx.findings}
        assert "audio" in media


def test_stun_zoom_is_port_evidence_only(shared_captures):
    for flow in udp_flows(shared_captures / "stun_zoom.pcapng"):
        result = drive_captured(ZoomDissector(), flow)
        assert not result.matched
        assert all(f.confidence <= 0.3 for f in result.ctx.findings)


def test_negatives(shared_captures):
    check_negatives(ZoomDissector(), shared_captures)
