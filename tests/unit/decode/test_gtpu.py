"""GTP-U (3GPP TS 29.281): user packets are accounted to the flow inside the tunnel;
everything else about the tunnel (echo, errors, damaged inner packets) stays with the
tunnel's own flow."""

from __future__ import annotations

import struct
from typing import Any

import pytest

from tests import pcapbuild as pb
from voipscope.api import read_flows

OUTER = ("10.116.8.57", "10.238.250.51")
INNER_SIP = b"OPTIONS sip:x@10.0.0.9 SIP/2.0\r\n\r\n"


def gtpu(inner: bytes, msg_type: int = 0xFF, extensions: list[bytes] | None = None) -> bytes:
    """GTPv1-U header (§5.1); with ``extensions``, the optional fields and the chain."""
    flags = 0x30  # version 1, PT=1
    body = inner
    if extensions is not None:
        flags |= 0x04  # E: the optional 4 octets follow, then the extension chain
        chain = b""
        for k, ext in enumerate(extensions):
            nxt = 0x85 if k + 1 < len(extensions) else 0
            assert (len(ext) + 2) % 4 == 0
            chain += bytes([(len(ext) + 2) // 4]) + ext + bytes([nxt])
        body = struct.pack("!HBB", 0, 0, 0x85 if extensions else 0) + chain + inner
    return struct.pack("!BBHI", flags, msg_type, len(body), 0x1234) + body


def tunnelled(ts: float, payload: bytes) -> pb.Packet:
    frame = pb.ethernet(pb.ipv4(pb.udp(payload, 2152, 2152), *OUTER))
    return pb.Packet(round(ts * 1e9), frame)


def inner_udp(src: str = "10.191.227.13", dst: str = "157.240.16.128") -> bytes:
    return pb.ipv4(pb.udp(INNER_SIP, 54162, 5060), src, dst)


def flows(write_pcap, packets: list[pb.Packet], **config: Any) -> list[dict[str, Any]]:  # type: ignore[no-untyped-def]
    return read_flows(write_pcap(packets), **config).to_pylist()


def test_user_packets_belong_to_the_inner_flow(write_pcap) -> None:  # type: ignore[no-untyped-def]
    inner = inner_udp()
    rows = flows(write_pcap, [tunnelled(1.0, gtpu(inner)), tunnelled(1.1, gtpu(inner))])
    (flow,) = rows
    assert (flow["src_ip"], flow["src_port"], flow["dst_ip"], flow["dst_port"]) == (
        "10.191.227.13", 54162, "157.240.16.128", 5060,
    )  # fmt: skip
    assert flow["src2dst_packets"] == 2 and flow["src2dst_bytes"] == 2 * len(inner)
    assert flow["protocol"] == "SIP"  # the inner payload is dissected


@pytest.mark.parametrize(
    "extensions",
    [[b"\x00\x01"], [b"\x00\x01", b"\x10\x20\x30\x40\x50\x60"]],
    ids=["one extension", "two chained"],
)
def test_extension_headers_are_skipped(write_pcap, extensions) -> None:  # type: ignore[no-untyped-def]
    (flow,) = flows(write_pcap, [tunnelled(1.0, gtpu(inner_udp(), extensions=extensions))])
    assert flow["dst_port"] == 5060


def test_inner_ipv6(write_pcap) -> None:  # type: ignore[no-untyped-def]
    inner = pb.ipv6(pb.udp(INNER_SIP, 40000, 5060), "2001:db8::1", "2001:db8::2")
    (flow,) = flows(write_pcap, [tunnelled(1.0, gtpu(inner))])
    assert (flow["src_ip"], flow["ip_version"]) == ("2001:db8::1", 6)


@pytest.mark.parametrize(
    "payload",
    [
        gtpu(b"", msg_type=1),  # echo request: the tunnel's own business
        gtpu(inner_udp()[:10]),  # a cut inner IP header
        gtpu(b"\x99" * 30),  # not IP inside
        gtpu(inner_udp(), extensions=[b"\x00\x01"])[:14],  # the extension chain is cut
        b"\x50\xff\x00\x00" + b"\x00" * 20,  # GTP version 2 (GTP-C) on the port
    ],
    ids=["echo", "cut inner", "not IP", "cut extension", "GTPv2"],
)
def test_the_rest_stays_with_the_tunnel(write_pcap, payload: bytes) -> None:  # type: ignore[no-untyped-def]
    (flow,) = flows(write_pcap, [tunnelled(1.0, payload)])
    assert (flow["src_port"], flow["dst_port"]) == (2152, 2152)


def test_decapsulation_can_be_turned_off(write_pcap) -> None:  # type: ignore[no-untyped-def]
    packets = [tunnelled(1.0, gtpu(inner_udp()))]
    (flow,) = flows(write_pcap, packets, decapsulate_gtp=False)
    assert (flow["src_ip"], flow["src_port"]) == (OUTER[0], 2152)
