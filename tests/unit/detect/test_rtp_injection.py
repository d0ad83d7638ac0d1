"""rtp_injection: RTP from a stranger into a call's announced media address raises an
alert; the parties' own media — also from behind NAT — raises nothing. Through the whole
pipeline (identification, calls, detect) on a capture built packet by packet."""

from __future__ import annotations

from tests import pcapbuild as pb
from voipscope.pipeline import FlowPipeline

A, B, STRANGER = "10.0.0.1", "10.0.0.2", "198.51.100.66"


def sdp(ip: str, port: int) -> str:
    return (
        f"v=0\r\no=- 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\n"
        f"m=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
    )


def sip(first_line: str, cseq: str, body: str = "", to_tag: str = "") -> bytes:
    head = (
        f"{first_line}\r\nVia: SIP/2.0/UDP {A}:5060;branch=z9hG4bK1\r\n"
        f"From: <sip:alice@{A}>;tag=a1\r\nTo: <sip:bob@{B}>{to_tag}\r\n"
        f"Call-ID: inj1@{A}\r\nCSeq: {cseq}\r\nContact: <sip:alice@{A}>\r\n"
    )
    if body:
        head += f"Content-Type: application/sdp\r\nContent-Length: {len(body)}\r\n\r\n{body}"
    else:
        head += "Content-Length: 0\r\n\r\n"
    return head.encode()


def rtp(seq: int, ssrc: int) -> bytes:
    header = bytes([0x80, 0]) + seq.to_bytes(2, "big") + (seq * 160).to_bytes(4, "big")
    return header + ssrc.to_bytes(4, "big") + b"\xff" * 160


def stream(src: str, sport: int, dst: str, dport: int, ssrc: int, count: int, t0: float):
    return [
        pb.udp_packet(t0 + k * 0.02, src, sport, dst, dport, rtp(k, ssrc)) for k in range(count)
    ]


def call_with(extra: list[pb.Packet], a_sdp_ip: str = A) -> list[pb.Packet]:
    """Alice (A) calls Bob (B); her SDP names ``a_sdp_ip`` (her private address when she
    is behind NAT: A then stands for the NAT's public address). Media flows A <-> B."""
    packets = [
        pb.udp_packet(1.0, A, 5060, B, 5060,
                      sip(f"INVITE sip:bob@{B} SIP/2.0", "1 INVITE", sdp(a_sdp_ip, 4000))),
        pb.udp_packet(1.5, B, 5060, A, 5060,
                      sip("SIP/2.0 200 OK", "1 INVITE", sdp(B, 5000), ";tag=b1")),
        pb.udp_packet(1.6, A, 5060, B, 5060,
                      sip(f"ACK sip:bob@{B} SIP/2.0", "1 ACK", "", ";tag=b1")),
        *stream(A, 4000, B, 5000, 0xA, 100, 2.0),
        *stream(B, 5000, A, 4000, 0xB, 100, 2.001),
        *extra,
        pb.udp_packet(5.0, A, 5060, B, 5060,
                      sip(f"BYE sip:bob@{B} SIP/2.0", "2 BYE", "", ";tag=b1")),
        pb.udp_packet(5.1, B, 5060, A, 5060, sip("SIP/2.0 200 OK", "2 BYE", "", ";tag=b1")),
    ]  # fmt: skip
    return sorted(packets, key=lambda p: p.ts_ns)


def alerts(write_pcap, packets: list[pb.Packet]) -> list[dict]:  # type: ignore[no-untyped-def]
    return [a for batch in FlowPipeline().run_alerts(str(write_pcap(packets))) for a in batch]


def test_a_stranger_injecting_into_the_callers_port_is_named(write_pcap) -> None:  # type: ignore[no-untyped-def]
    (alert,) = alerts(write_pcap, call_with(stream(STRANGER, 7777, A, 4000, 0xBAD, 30, 3.0)))
    assert (alert["kind"], alert["src_ip"], alert["dst_ip"]) == ("rtp-injection", STRANGER, A)
    assert alert["data"]["ssrc"] == "0x00000BAD" and alert["data"]["packets"] == 30


def test_the_parties_media_raises_nothing(write_pcap) -> None:  # type: ignore[no-untyped-def]
    assert alerts(write_pcap, call_with([])) == []


def test_a_few_stray_packets_are_no_injection(write_pcap) -> None:  # type: ignore[no-untyped-def]
    assert alerts(write_pcap, call_with(stream(STRANGER, 7777, A, 4000, 0xBAD, 3, 3.0))) == []


def test_a_party_behind_nat_is_no_stranger(write_pcap) -> None:  # type: ignore[no-untyped-def]
    """Alice's SDP names her private address; her SIP and media come from the NAT's, and
    Bob answers to where her media came from (symmetric RTP)."""
    assert alerts(write_pcap, call_with([], a_sdp_ip="192.168.1.10")) == []
