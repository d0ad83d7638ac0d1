"""Shared pieces of the app-signature dissector tests (Discord, Zoom, Mumble, TeamSpeak,
Skype): driving one dissector over a flow to its end, and the traffic none of them may
match (SIP, RTP, STUN, DNS, QUIC, WireGuard)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.dissectdrive import CapturedFlow, Run, capture_flows, context, packets, run
from voipscope.dissect.base import (
    UDP,
    Dissector,
    FlowContext,
    Packet,
)

SIP_INVITE = (
    b"INVITE sip:bob@biloxi.example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds\r\n"
    b"Max-Forwards: 70\r\nTo: Bob <sip:bob@biloxi.example.com>\r\n"
    b"From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n"
    b"Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\nCSeq: 314159 INVITE\r\n"
    b"Content-Length: 0\r\n\r\n"
)
SIP_MESSAGE = SIP_INVITE.replace(b"INVITE", b"MESSAGE")
SIP_RESPONSE = b"SIP/2.0 200 OK\r\nCSeq: 314159 INVITE\r\nContent-Length: 0\r\n\r\n"
# RFC 5769 §2.1 sample request.
STUN_REQUEST = bytes.fromhex(
    "000100582112a442b7e7a701bc34d686fa87dfae802200105354554e207465737420636c69656e74"
    "002400046e0001ff80290008932ff9b151263b36000600096576746a3a68367659202020"
    "000800149aeaa70cbfd8cb56781ef2b5b2d3f249c1b571a280280004e57a3bcf"
)
DNS_QUERY = bytes.fromhex("12340100000100000000000003777777076578616d706c6503636f6d0000010001")

INLINE_NEGATIVES = {
    "sip-invite": [SIP_INVITE, (1, SIP_RESPONSE), SIP_INVITE.replace(b"314159", b"314160")],
    "sip-message": [SIP_MESSAGE, SIP_MESSAGE.replace(b"alice", b"carol"), (1, SIP_RESPONSE)],
    "stun": [STUN_REQUEST, STUN_REQUEST[:8] + bytes(12) + STUN_REQUEST[20:]],
    "dns": [DNS_QUERY, (1, DNS_QUERY[:2] + b"\x81\x80" + DNS_QUERY[4:])],
}

# Captures whose UDP flows none of the app dissectors may match, and the flows to skip
# (rtp.pcapng also holds a Discord call on port 50003).
NEGATIVE_CAPTURES = {
    "sip.pcap": (),
    "rtp.pcapng": (50003,),
    "dns.pcap": (),
    "quic.pcap": (),
    "wireguard.pcap": (),
    "mullvad_wireguard.pcap": (),
    "stun.pcap": (8801,),
    "dnscrypt_skype_false_positive.pcapng": (),
}


def finish(dissector: Dissector, ctx: FlowContext, flow: list[Packet]) -> Run:
    """``run`` (the stage's own offering), then ``on_expire`` as the stage ends a flow."""
    result = run(dissector, ctx, flow)
    if dissector.name in ctx.state:
        dissector.on_expire(ctx)
    return result


def drive(
    dissector: Dissector,
    *payloads: bytes | tuple[int, bytes],
    src: tuple[str, int] = ("10.0.0.1", 40000),
    dst: tuple[str, int] = ("10.0.0.2", 9999),
) -> Run:
    return finish(dissector, context(UDP, src, dst), packets(*payloads))


def drive_captured(dissector: Dissector, flow: CapturedFlow) -> Run:
    return finish(dissector, flow.context(), flow.packets)


def udp_flows(path: Path) -> list[CapturedFlow]:
    if not path.is_file():
        pytest.skip(f"{path.name} not found")
    return capture_flows(path, (UDP,))


def assert_nothing(result: Run, what: str) -> None:
    assert not result.matched, (what, result.ctx.findings)
    assert not result.ctx.findings, (what, result.ctx.findings)


def check_negatives(dissector: Dissector, shared: Path) -> None:
    """No MATCH and no finding on any negative flow, inline or captured."""
    for name, payloads in INLINE_NEGATIVES.items():
        for port in (5060, 40000):
            result = drive(dissector, *payloads, src=("10.0.0.1", port), dst=("10.0.0.2", 5060))
            assert_nothing(result, name)
    for capture, skip_ports in NEGATIVE_CAPTURES.items():
        for flow in udp_flows(shared / capture):
            if flow.src[1] in skip_ports or flow.dst[1] in skip_ports:
                continue
            assert_nothing(drive_captured(dissector, flow), f"{capture} {flow.src} {flow.dst}")


def prefixes(data: bytes) -> list[bytes]:
    return [data[:cut] for cut in range(len(data))]
