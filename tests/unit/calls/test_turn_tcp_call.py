"""A SIP call whose caller relays its media through a TURN allocation made over TCP
(RFC 8656 §12.5, RFC 6062's client-to-relay leg): the caller offers the relayed address
in its SDP; the callee sends its RTP there over UDP; the relay hands it on to the caller
inside ChannelData on the caller's TCP connection, padded to 4 bytes. The TCP flow never
touches an address the SDP names: it is the call's because its allocation was given the
announced address (classify.arbiter ``_relayed_call``), and its streams are cut from the
byte stream (quality.tcp_framing) and measured like the UDP leg's. The real-traffic test
(tests/realtraffic/test_baresip_turn.py) covers TURN over UDP: Debian's baresip ignores
``?transport=tcp``."""

from __future__ import annotations

import ipaddress
import struct

from tests import pcapbuild as pb
from tests.unit.quality.rtp_support import FRAME_MS, PCMU_TICKS, rtp
from tests.unit.quality.test_rtp_streams import channel_data
from tests.unit.quality.test_tcp_media import T0, segment
from voipscope.api import iter_calls, read_flows

CALLER_SIP, CALLEE_SIP = ("10.0.0.1", 5060), ("10.0.0.2", 5060)
CALLER_TCP, TURN_TCP = ("10.0.0.1", 40000), ("10.0.0.3", 3478)
RELAYED, CALLEE_RTP = ("10.0.0.3", 49152), ("10.0.0.2", 6000)
PACKETS = 40
CALLER_SSRC, CALLEE_SSRC = "0x0000000A", "0x0000000B"  # as call records write SSRCs
XOR_RELAYED_ADDRESS = 0x0016  # RFC 8656 §18.5
ALLOCATE_REQUEST, ALLOCATE_SUCCESS = 0x0003, 0x0103  # RFC 8656 §17, RFC 8489 §5
REQUESTED_TRANSPORT_UDP = (0x0019, bytes([17, 0, 0, 0]))  # RFC 8656 §18.7


def xor_address(ip: str, port: int) -> bytes:
    """RFC 8489 §14.2: family IPv4, port and address XORed with the magic cookie."""
    cookie = pb.STUN_MAGIC_COOKIE
    return struct.pack("!BBHI", 0, 1, port ^ (cookie >> 16), int(ipaddress.ip_address(ip)) ^ cookie)


def sip(ms: float, src: tuple[str, int], dst: tuple[str, int], text: str) -> pb.Packet:
    return pb.udp_packet(T0 + ms / 1000, src[0], src[1], dst[0], dst[1], text.encode())


def message(first_line: str, cseq: str, body: str = "") -> str:
    head = (
        f"{first_line}\r\nVia: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK-turn-{cseq.split()[0]}\r\n"
        "From: <sip:alice@10.0.0.1>;tag=a1\r\nTo: <sip:bob@10.0.0.2>"
        + (";tag=b2" if not first_line.startswith("INVITE") else "")
        + f"\r\nCall-ID: turn-tcp-call\r\nCSeq: {cseq}\r\nContact: <sip:alice@10.0.0.1>\r\n"
    )
    if body:
        head += "Content-Type: application/sdp\r\n"
    return head + f"Content-Length: {len(body)}\r\n\r\n{body}"


def sdp(ip: str, port: int) -> str:
    return (f"v=0\r\no=- 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\n"
            f"m=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n")  # fmt: skip


def capture() -> list[pb.Packet]:
    out = []
    # The allocation first: the relayed address is what the caller will offer.
    up = [pb.stun(ALLOCATE_REQUEST, 1, [REQUESTED_TRANSPORT_UDP])]
    down = [pb.stun(ALLOCATE_SUCCESS, 1, [(XOR_RELAYED_ADDRESS, xor_address(*RELAYED))])]
    invite = "INVITE sip:bob@10.0.0.2 SIP/2.0"
    out.append(sip(100, CALLER_SIP, CALLEE_SIP, message(invite, "1 INVITE", sdp(*RELAYED))))
    out.append(sip(200, CALLEE_SIP, CALLER_SIP,
                   message("SIP/2.0 200 OK", "1 INVITE", sdp(*CALLEE_RTP))))  # fmt: skip
    out.append(sip(210, CALLER_SIP, CALLEE_SIP, message("ACK sip:bob@10.0.0.2 SIP/2.0", "1 ACK")))
    for k in range(PACKETS):
        ms = 300 + k * FRAME_MS
        mine = rtp(k + 1, k * PCMU_TICKS, ssrc=int(CALLER_SSRC, 16))
        theirs = rtp(k + 1, k * PCMU_TICKS, ssrc=int(CALLEE_SSRC, 16))
        up.append(channel_data(mine, pad=True))  # caller -> relay, on the TCP connection
        out.append(pb.udp_packet(T0 + (ms + 5) / 1000, *RELAYED, *CALLEE_RTP, mine))
        out.append(pb.udp_packet(T0 + (ms + 7) / 1000, *CALLEE_RTP, *RELAYED, theirs))
        down.append(channel_data(theirs, pad=True))  # relay -> caller
    bye = "BYE sip:bob@10.0.0.2 SIP/2.0"
    out.append(sip(300 + PACKETS * FRAME_MS + 100, CALLER_SIP, CALLEE_SIP, message(bye, "2 BYE")))
    out.append(sip(300 + PACKETS * FRAME_MS + 110, CALLEE_SIP, CALLER_SIP,
                   message("SIP/2.0 200 OK", "2 BYE")))  # fmt: skip
    seq_up, seq_down = 1000, 9000
    for k, chunk in enumerate(up):
        ms = 0 if k == 0 else 300 + (k - 1) * FRAME_MS
        out.append(segment(ms, chunk, seq_up, CALLER_TCP, TURN_TCP))
        seq_up += len(chunk)
    for k, chunk in enumerate(down):
        ms = 10 if k == 0 else 300 + (k - 1) * FRAME_MS + 9
        out.append(segment(ms, chunk, seq_down, TURN_TCP, CALLER_TCP))
        seq_down += len(chunk)
    return sorted(out, key=lambda p: p.ts_ns)


def test_a_sip_call_relayed_over_turn_tcp_keeps_its_media(write_pcap) -> None:
    path = write_pcap(capture())
    (turn,) = [f for f in read_flows(path).to_pylist() if f["proto"] == "tcp"]
    assert (turn["category"], turn["protocol"], turn["call_id"]) == (
        "voip-media", "RTP", "turn-tcp-call")  # fmt: skip
    assert turn["evidence"][1].startswith(
        "relayed: 10.0.0.3:49152, the address this flow's TURN allocation was given"
    ), turn["evidence"]
    calls = [c for c in iter_calls(path) if c["kind"] == "call"]
    (call,) = calls
    assert (call["state"], call["caller_ip"], call["callee_ip"]) == ("answered", *(
        CALLER_SIP[0], CALLEE_SIP[0]))  # fmt: skip
    got = sorted(
        (s["src_ip"], s["src_port"], s["dst_ip"], s["dst_port"], s["ssrc"], s["packets"], s["lost"])
        for s in call["streams"]
    )
    assert got == sorted([
        (*CALLER_TCP, *TURN_TCP, CALLER_SSRC, PACKETS, 0),  # inside ChannelData over TCP
        (*TURN_TCP, *CALLER_TCP, CALLEE_SSRC, PACKETS, 0),
        (*RELAYED, *CALLEE_RTP, CALLER_SSRC, PACKETS, 0),  # the relay's UDP leg
        (*CALLEE_RTP, *RELAYED, CALLEE_SSRC, PACKETS, 0),
    ]), call["streams"]  # fmt: skip
    assert turn["flow_id"] in call["media_flows"] and len(call["media_flows"]) == 2
