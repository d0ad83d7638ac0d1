"""decode/kernel.py: one byte fixture per branch (link, IP, L4), statuses and columns."""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass

import numpy as np
import pytest

from tests import pcapbuild as pb
from tests.readback import batch_of
from voipscope.addresses import format_ip
from voipscope.decode import DecodedBatch, decode_batch
from voipscope.decode import status as S

ETH, RAW, SLL, SLL2, NULL, LOOP = 1, 101, 113, 276, 0, 108
PAYLOAD = b"INVITE sip:bob@example.com SIP/2.0\r\n"


@dataclass
class Row:
    """One decoded packet as plain values, offsets relative to the frame start."""

    status: int
    ip_ver: int
    proto: int
    src: str
    dst: str
    sport: int
    dport: int
    ip_bytes: int
    l3: int
    l4: int
    l4_len: int
    tcp_flags: int
    vlan: int
    frag_id: int
    frag_off: int
    frag_more: int
    payload: bytes


def rows(d: DecodedBatch) -> list[Row]:
    out = []
    for i in range(len(d)):
        base = int(d.packets.data_offset[i])
        ver = int(d.ip_ver[i])
        ok_addr = ver in (4, 6)
        out.append(
            Row(
                status=int(d.status[i]),
                ip_ver=ver,
                proto=int(d.proto[i]),
                src=format_ip(ver, int(d.src_hi[i]), int(d.src_lo[i])) if ok_addr else "",
                dst=format_ip(ver, int(d.dst_hi[i]), int(d.dst_lo[i])) if ok_addr else "",
                sport=int(d.sport[i]),
                dport=int(d.dport[i]),
                ip_bytes=int(d.ip_bytes[i]),
                l3=int(d.l3_off[i]) - base,
                l4=int(d.l4_off[i]) - base,
                l4_len=int(d.l4_len[i]),
                tcp_flags=int(d.tcp_flags[i]),
                vlan=int(d.vlan[i]),
                frag_id=int(d.frag_id[i]),
                frag_off=int(d.frag_off[i]),
                frag_more=int(d.frag_more[i]),
                payload=d.payload(i),
            )
        )
    return out


def check_bounds(d: DecodedBatch) -> None:
    """What every decoded row must keep: statuses in range, offsets inside the packet."""
    start = d.packets.data_offset
    end = start + d.packets.caplen
    assert (d.status < S.N_STATUS).all()
    ok = d.status == S.OK
    assert (d.l3_off >= start).all()
    assert (d.l3_off <= end).all()
    assert (d.l4_len >= 0).all()
    assert (d.l4_off[ok] >= d.l3_off[ok]).all()
    assert (d.l4_off[ok] + d.l4_len[ok] <= end[ok]).all()
    assert np.isin(d.ip_ver, [0, 4, 6]).all()


def decode1(link: int, frame: bytes) -> Row:
    d = decode_batch(batch_of([(link, frame)]))
    check_bounds(d)
    return rows(d)[0]


def tcp_header(sport: int, dport: int, flags: int, words: int, options: bytes = b"") -> bytes:
    return struct.pack("!HHIIBBHHH", sport, dport, 7, 9, words << 4, flags, 1024, 0, 0) + options


# ---- Ethernet, IPv4, L4 -------------------------------------------------------------


def test_ethernet_ipv4_udp():
    frame = pb.ethernet(pb.ipv4(pb.udp(PAYLOAD, 5060, 5080), "192.0.2.1", "198.51.100.7"))
    r = decode1(ETH, frame)
    assert r.status == S.OK
    assert (r.ip_ver, r.proto) == (4, 17)
    assert (r.src, r.dst) == ("192.0.2.1", "198.51.100.7")
    assert (r.sport, r.dport) == (5060, 5080)
    assert (r.l3, r.l4, r.l4_len) == (14, 14 + 20 + 8, len(PAYLOAD))
    assert r.ip_bytes == 20 + 8 + len(PAYLOAD)
    assert r.payload == PAYLOAD
    assert r.vlan == -1
    assert (r.tcp_flags, r.frag_off, r.frag_more) == (0, 0, 0)


def test_ipv4_is_kept_in_ipv4_mapped_form():
    d = decode_batch(batch_of([(ETH, pb.ethernet(pb.ipv4(pb.udp(b""), "255.1.2.3", "0.0.0.9")))]))
    # RFC 4291 §2.5.5.2: ::ffff:a.b.c.d, so one key serves both families.
    assert int(d.src_hi[0]) == 0 and int(d.dst_hi[0]) == 0
    assert int(d.src_lo[0]) == 0xFFFF_FF01_0203
    assert int(d.dst_lo[0]) == 0xFFFF_0000_0009
    mapped = ipaddress.IPv6Address(format_ip(6, 0, int(d.src_lo[0])))
    assert mapped.ipv4_mapped == ipaddress.IPv4Address("255.1.2.3")


@pytest.mark.parametrize(
    ("words", "options"), [(5, b""), (8, b"\x01" * 12), (15, b"\x01" * 40)], ids=str
)
def test_tcp_flags_and_data_offset(words, options):
    seg = tcp_header(40000, 5061, pb.TCP_SYN | pb.TCP_ACK | pb.TCP_PSH, words, options)
    frame = pb.ethernet(pb.ipv4(seg + PAYLOAD, proto=6))
    r = decode1(ETH, frame)
    assert r.status == S.OK
    assert r.proto == 6
    assert (r.sport, r.dport) == (40000, 5061)
    assert r.tcp_flags == 0x1A
    assert r.l4 == 14 + 20 + words * 4
    assert r.payload == PAYLOAD


def test_tcp_data_offset_below_five_words_is_taken_as_twenty_bytes():
    seg = tcp_header(1, 2, pb.TCP_ACK, 2)
    r = decode1(ETH, pb.ethernet(pb.ipv4(seg + PAYLOAD, proto=6)))
    assert r.status == S.OK
    assert r.payload == PAYLOAD


def test_tcp_data_offset_beyond_the_segment_leaves_no_payload():
    seg = tcp_header(1, 2, pb.TCP_ACK, 15)  # claims 60 bytes, has 20
    r = decode1(ETH, pb.ethernet(pb.ipv4(seg, proto=6)))
    assert r.status == S.OK
    assert r.l4_len == 0
    assert r.payload == b""


def test_sctp_ports():
    sctp = struct.pack("!HHII", 2905, 2906, 0xDEADBEEF, 0) + b"\x00\x03\x00\x08abcd"
    r = decode1(ETH, pb.ethernet(pb.ipv4(sctp, proto=132)))
    assert r.status == S.OK
    assert r.proto == 132
    assert (r.sport, r.dport) == (2905, 2906)
    # SCTP's "payload" is the whole SCTP packet: chunks are parsed further up.
    assert r.payload == sctp


def test_udplite_ports():
    r = decode1(ETH, pb.ethernet(pb.ipv4(pb.udp(PAYLOAD, 7, 8), proto=136)))
    assert (r.status, r.proto, r.sport, r.dport) == (S.OK, 136, 7, 8)
    assert r.payload == PAYLOAD


def test_icmp_has_no_ports():
    icmp = struct.pack("!BBHHH", 8, 0, 0, 1, 1) + b"ping"
    r = decode1(ETH, pb.ethernet(pb.ipv4(icmp, proto=1)))
    assert r.status == S.OK
    assert r.proto == 1
    assert (r.sport, r.dport) == (0, 0)
    assert r.payload == icmp


@pytest.mark.parametrize("ihl", [6, 10, 15])
def test_ipv4_options(ihl):
    r = decode1(ETH, pb.ethernet(pb.ipv4(pb.udp(PAYLOAD, 1, 2), ihl=ihl)))
    assert r.status == S.OK
    assert r.l4 == 14 + ihl * 4 + 8
    assert r.ip_bytes == ihl * 4 + 8 + len(PAYLOAD)
    assert r.payload == PAYLOAD


def test_ethernet_padding_is_not_payload():
    short = pb.ethernet(pb.ipv4(pb.udp(b"hi", 1, 2)))
    frame = short + b"\x00" * (60 - len(short))  # minimum Ethernet frame, FCS stripped
    assert len(frame) == 60
    r = decode1(ETH, frame)
    assert r.status == S.OK
    assert r.ip_bytes == 30
    assert r.l4_len == 2
    assert r.payload == b"hi"


def test_ipv4_total_length_beyond_the_capture_is_clamped_to_the_capture():
    frame = pb.ethernet(pb.ipv4(pb.udp(PAYLOAD, 1, 2)))
    r = decode1(ETH, frame[:50])  # snaplen cut inside the payload
    assert r.status == S.OK
    assert r.ip_bytes == 20 + 8 + len(PAYLOAD)
    assert r.payload == PAYLOAD[: 50 - 42]


# ---- VLAN, QinQ, MPLS, PPPoE, ARP ---------------------------------------------------


def test_vlan_8021q():
    frame = pb.ethernet(pb.ipv4(pb.udp(PAYLOAD, 1, 2)), vlans=[0x2000 | 123])  # PCP 1
    r = decode1(ETH, frame)
    assert r.status == S.OK
    assert r.vlan == 123
    assert r.l3 == 18
    assert r.payload == PAYLOAD


@pytest.mark.parametrize("outer_tpid", [0x88A8, 0x9100])
def test_qinq_records_the_outer_id(outer_tpid):
    inner = pb.ethernet(pb.ipv6(pb.udp(PAYLOAD, 3, 4)), 0x86DD, vlans=[100, 200], qinq=True)
    frame = inner[:12] + struct.pack("!H", outer_tpid) + inner[14:]
    r = decode1(ETH, frame)
    assert r.status == S.OK
    assert r.vlan == 100
    assert r.l3 == 22
    assert (r.ip_ver, r.sport, r.dport) == (6, 3, 4)


def test_eight_tags_decode_and_nine_are_too_many():
    ip = pb.ipv4(pb.udp(PAYLOAD))
    assert decode1(ETH, pb.ethernet(ip, vlans=range(1, 9))).status == S.OK
    r = decode1(ETH, pb.ethernet(ip, vlans=range(1, 10)))
    assert r.status == S.TOO_MANY_HEADERS


def mpls(labels: list[int], payload: bytes) -> bytes:
    out = b""
    for n, label in enumerate(labels):
        bottom = 1 if n == len(labels) - 1 else 0
        out += struct.pack("!I", (label << 12) | (bottom << 8) | 64)
    return out + payload


@pytest.mark.parametrize("ethertype", [0x8847, 0x8848])
def test_mpls_stack(ethertype):
    v4 = pb.ethernet(mpls([16, 17, 18], pb.ipv4(pb.udp(PAYLOAD, 1, 2))), ethertype)
    v6 = pb.ethernet(mpls([16], pb.ipv6(pb.udp(PAYLOAD, 3, 4))), ethertype)
    r4, r6 = decode1(ETH, v4), decode1(ETH, v6)
    assert (r4.status, r4.ip_ver, r4.l3, r4.sport) == (S.OK, 4, 14 + 12, 1)
    assert (r6.status, r6.ip_ver, r6.l3, r6.sport) == (S.OK, 6, 14 + 4, 3)
    assert r4.payload == r6.payload == PAYLOAD
    assert r4.vlan == -1


def test_mpls_limits():
    ip = pb.ipv4(pb.udp(PAYLOAD))
    assert decode1(ETH, pb.ethernet(mpls(list(range(8)), ip), 0x8847)).status == S.OK
    deep = pb.ethernet(mpls(list(range(9)), ip), 0x8847)
    assert decode1(ETH, deep).status == S.TOO_MANY_HEADERS
    # Bottom-of-stack never set and the frame ends: truncated.
    assert decode1(ETH, pb.ethernet(b"\x00\x01\x00\x40" * 2, 0x8847)).status == S.TRUNCATED_LINK
    assert decode1(ETH, pb.ethernet(mpls([5], b""), 0x8847)).status == S.TRUNCATED_LINK


def test_mpls_pseudowire_payload_is_not_ip():
    # RFC 4385 control word (first nibble 0) then an Ethernet frame: not IP.
    pw = mpls([77], b"\x00\x00\x00\x01" + pb.ethernet(pb.ipv4(pb.udp(b""))))
    assert decode1(ETH, pb.ethernet(pw, 0x8847)).status == S.NON_IP


def pppoe(ppp_proto: int, payload: bytes) -> bytes:
    return struct.pack("!BBHHH", 0x11, 0, 0x1234, len(payload) + 2, ppp_proto) + payload


def test_pppoe_session():
    v4 = decode1(ETH, pb.ethernet(pppoe(0x0021, pb.ipv4(pb.udp(PAYLOAD, 1, 2))), 0x8864))
    v6 = decode1(ETH, pb.ethernet(pppoe(0x0057, pb.ipv6(pb.udp(PAYLOAD, 3, 4))), 0x8864))
    lcp = decode1(ETH, pb.ethernet(pppoe(0xC021, b"\x01\x01\x00\x04"), 0x8864))
    assert (v4.status, v4.ip_ver, v4.l3) == (S.OK, 4, 22)
    assert (v6.status, v6.ip_ver, v6.l3) == (S.OK, 6, 22)
    assert v4.payload == v6.payload == PAYLOAD
    assert lcp.status == S.NON_IP
    assert decode1(ETH, pb.ethernet(pppoe(0x0021, b"")[:7], 0x8864)).status == S.TRUNCATED_LINK


@pytest.mark.parametrize("ethertype", [0x0806, 0x88CC, 0x8863])  # ARP, LLDP, PPPoE discovery
def test_non_ip_ethertypes(ethertype):
    r = decode1(ETH, pb.ethernet(b"\x00\x01\x08\x00\x06\x04\x00\x01" + b"\x00" * 20, ethertype))
    assert r.status == S.NON_IP
    assert r.ip_ver == 0
    assert r.proto == 0


# ---- other link types ---------------------------------------------------------------


@pytest.mark.parametrize(("link", "wrap", "l3"), [(SLL, pb.sll, 16), (SLL2, pb.sll2, 20)])
def test_linux_cooked(link, wrap, l3):
    r4 = decode1(link, wrap(pb.ipv4(pb.udp(PAYLOAD, 1, 2))))
    r6 = decode1(link, wrap(pb.ipv6(pb.udp(PAYLOAD, 3, 4)), 0x86DD))
    arp = decode1(link, wrap(b"\x00" * 28, 0x0806))
    vlan = decode1(link, wrap(struct.pack("!HH", 42, 0x0800) + pb.ipv4(pb.udp(PAYLOAD)), 0x8100))
    assert (r4.status, r4.ip_ver, r4.l3, r4.sport) == (S.OK, 4, l3, 1)
    assert (r6.status, r6.ip_ver, r6.l3, r6.sport) == (S.OK, 6, l3, 3)
    assert r4.payload == r6.payload == vlan.payload == PAYLOAD
    assert arp.status == S.NON_IP
    assert (vlan.status, vlan.vlan) == (S.OK, 42)
    assert decode1(link, wrap(b"")[: l3 - 1]).status == S.TRUNCATED_LINK


@pytest.mark.parametrize("link", [RAW, 12, 14])
def test_raw_ip_sniffs_the_version(link):
    r4 = decode1(link, pb.ipv4(pb.udp(PAYLOAD, 1, 2)))
    r6 = decode1(link, pb.ipv6(pb.udp(PAYLOAD, 3, 4)))
    assert (r4.status, r4.ip_ver, r4.l3) == (S.OK, 4, 0)
    assert (r6.status, r6.ip_ver, r6.l3) == (S.OK, 6, 0)
    assert r4.payload == r6.payload == PAYLOAD
    assert decode1(link, b"").status == S.TRUNCATED_LINK
    # A version nibble that is neither 4 nor 6 (0 included) is a bad version.
    assert decode1(link, b"\x05" + b"\x00" * 39).status == S.BAD_IP_VERSION
    assert decode1(link, b"\x55" + b"\x00" * 39).status == S.BAD_IP_VERSION


def test_raw_ipv4_and_ipv6_link_types():
    assert decode1(228, pb.ipv4(pb.udp(PAYLOAD))).status == S.OK
    assert decode1(229, pb.ipv6(pb.udp(PAYLOAD))).status == S.OK
    # The link type fixes the version: the other one is a bad version.
    assert decode1(228, pb.ipv6(pb.udp(PAYLOAD))).status == S.BAD_IP_VERSION
    assert decode1(229, pb.ipv4(pb.udp(PAYLOAD)) + b"\x00" * 20).status == S.BAD_IP_VERSION
    assert decode1(228, b"").status == S.TRUNCATED_IP
    assert decode1(229, b"").status == S.TRUNCATED_IP


@pytest.mark.parametrize("big_endian", [False, True], ids=["le", "be"])
@pytest.mark.parametrize(("family", "version"), [(2, 4), (24, 6), (28, 6), (30, 6)])
def test_bsd_null(big_endian, family, version):
    inner = pb.ipv4(pb.udp(PAYLOAD)) if version == 4 else pb.ipv6(pb.udp(PAYLOAD))
    r = decode1(NULL, pb.bsd_null(inner, family, big_endian))
    assert (r.status, r.ip_ver, r.l3) == (S.OK, version, 4)
    assert r.payload == PAYLOAD


@pytest.mark.parametrize(("family", "version"), [(2, 4), (24, 6), (28, 6), (30, 6)])
def test_openbsd_loop_is_network_order(family, version):
    inner = pb.ipv4(pb.udp(PAYLOAD)) if version == 4 else pb.ipv6(pb.udp(PAYLOAD))
    r = decode1(LOOP, pb.bsd_null(inner, family, big_endian=True))
    assert (r.status, r.ip_ver, r.l3) == (S.OK, version, 4)


def test_null_other_family_and_truncation():
    assert decode1(NULL, pb.bsd_null(b"\x00" * 30, 17)).status == S.NON_IP  # AF_NS-ish
    assert decode1(NULL, b"\x02\x00\x00").status == S.TRUNCATED_LINK
    assert decode1(LOOP, b"\x00\x00").status == S.TRUNCATED_LINK


@pytest.mark.parametrize("link", [105, 127, 147, 9999])
def test_unsupported_link_type(link):
    r = decode1(link, pb.ethernet(pb.ipv4(pb.udp(PAYLOAD))))
    assert r.status == S.UNSUPPORTED_LINK
    assert r.ip_ver == 0


def test_mixed_link_types_in_one_batch():
    frames = [
        (ETH, pb.ethernet(pb.ipv4(pb.udp(b"a", 1, 2)))),
        (RAW, pb.ipv6(pb.udp(b"b", 3, 4))),
        (SLL2, pb.sll2(pb.ipv4(pb.udp(b"c", 5, 6)))),
        (105, b"\x00" * 30),
        (NULL, pb.bsd_null(pb.ipv4(pb.udp(b"d", 7, 8)), 2)),
    ]
    d = decode_batch(batch_of(frames))
    check_bounds(d)
    got = rows(d)
    assert [r.status for r in got] == [S.OK, S.OK, S.OK, S.UNSUPPORTED_LINK, S.OK]
    assert [r.sport for r in got] == [1, 3, 5, 0, 7]
    assert [r.payload for r in got] == [b"a", b"b", b"c", b"", b"d"]


# ---- IPv6 ---------------------------------------------------------------------------


def test_ipv6_addresses_and_ip_bytes():
    src, dst = "ff02::1:ff00:1", "fe80::8000:0:0:1"  # both halves with the sign bit set
    frame = pb.ethernet(pb.ipv6(pb.udp(PAYLOAD, 1, 2), src, dst), 0x86DD)
    d = decode_batch(batch_of([(ETH, frame)]))
    r = rows(d)[0]
    assert (r.src, r.dst) == (src, dst)
    assert int(d.src_hi[0]) < 0  # int64 bit patterns of the halves
    assert r.ip_bytes == 40 + 8 + len(PAYLOAD)
    assert r.payload == PAYLOAD


def test_ipv6_extension_header_chain():
    atomic = pb.ipv6_fragment_body(0, False, 0x99)  # RFC 6946 atomic fragment
    exts = [
        (0, b"\x01\x04\x00\x00\x00\x00"),  # hop-by-hop, PadN
        (60, b"\x01\x0c" + b"\x00" * 12),  # destination options, 16 bytes
        (43, b"\x00\x00\x00\x00\x00\x00"),  # routing type 0, segments left 0
        (51, b"\x00\x00" + b"\x00" * 4 + b"\x00" * 4 + b"\x11" * 12),  # AH, ICV 12 bytes
        (44, atomic),
    ]
    packet = pb.ipv6(pb.udp(PAYLOAD, 5060, 5062), extensions=exts)
    chain = len(packet) - 40 - 8 - len(PAYLOAD)
    assert chain == 8 + 16 + 8 + 24 + 8
    r = decode1(ETH, pb.ethernet(packet, 0x86DD))
    assert r.status == S.OK
    assert (r.proto, r.sport, r.dport) == (17, 5060, 5062)
    assert r.l4 == 14 + 40 + chain + 8
    assert r.ip_bytes == len(packet)
    assert r.payload == PAYLOAD
    assert r.frag_more == 0 and r.frag_off == 0


def test_ipv6_too_many_extension_headers():
    ok = pb.ipv6(pb.udp(PAYLOAD), extensions=[(60, b"")] * 16)
    deep = pb.ipv6(pb.udp(PAYLOAD), extensions=[(60, b"")] * 17)
    assert decode1(RAW, ok).status == S.OK
    assert decode1(RAW, deep).status == S.TOO_MANY_HEADERS


def test_ipv6_extension_header_longer_than_the_capture():
    packet = bytearray(pb.ipv6(b"\x80\x00\x00\x00", next_header=58, extensions=[(60, b"")]))
    packet[41] = 200  # destination options claims 1608 bytes; ICMPv6 follows
    r = decode1(RAW, bytes(packet))
    assert r.status == S.TRUNCATED_IP


def test_ipv6_fragment_header():
    frag = pb.ipv6_fragment_body(1448, True, 0xCAFEBABE)
    r = decode1(RAW, pb.ipv6(b"x" * 24, extensions=[(0, b""), (44, frag)]))
    assert r.status == S.FRAGMENT
    assert (r.frag_id, r.frag_off, r.frag_more) == (0xCAFEBABE, 1448, 1)
    assert r.proto == 17
    assert r.l4 == 40 + 8 + 8
    assert r.l4_len == 24


def test_ipv4_fragment_fields():
    first = decode1(RAW, pb.ipv4(b"y" * 32, ident=777, more_fragments=True))
    last = decode1(RAW, pb.ipv4(b"z" * 10, ident=777, frag_offset=32))
    assert (first.status, first.frag_id, first.frag_off, first.frag_more) == (
        S.FRAGMENT,
        777,
        0,
        1,
    )
    assert (last.status, last.frag_off, last.frag_more, last.l4_len) == (S.FRAGMENT, 32, 0, 10)
    assert (first.sport, first.dport) == (0, 0)  # ports wait for reassembly


# ---- truncated and malformed --------------------------------------------------------


UDP_NEED, TCP_NEED = 8, 14  # L4 bytes the kernel reads: UDP header; TCP up to the flags
UDP, TCP = pb.udp(PAYLOAD), pb.tcp(PAYLOAD)

SWEEP = {
    "eth-v4-udp": (ETH, pb.ethernet(pb.ipv4(pb.udp(PAYLOAD))), 14, 20, UDP_NEED),
    "eth-v4opt-tcp": (ETH, pb.ethernet(pb.ipv4(pb.tcp(PAYLOAD), proto=6, ihl=7)), 14, 28, TCP_NEED),
    "vlan-v6-udp": (ETH, pb.ethernet(pb.ipv6(pb.udp(PAYLOAD)), 0x86DD, [5]), 18, 40, UDP_NEED),
    "sll-v4-udp": (SLL, pb.sll(pb.ipv4(pb.udp(PAYLOAD))), 16, 20, UDP_NEED),
    "sll2-v6-tcp": (SLL2, pb.sll2(pb.ipv6(TCP, next_header=6), 0x86DD), 20, 40, TCP_NEED),
    "null-v4-udp": (NULL, pb.bsd_null(pb.ipv4(pb.udp(PAYLOAD)), 2), 4, 20, UDP_NEED),
    "raw-v6-ext-udp": (RAW, pb.ipv6(UDP, extensions=[(0, b""), (60, b"")]), 0, 56, UDP_NEED),
    "pppoe-v4-udp": (ETH, pb.ethernet(pppoe(0x21, pb.ipv4(UDP)), 0x8864), 22, 20, UDP_NEED),
}  # fmt: skip


@pytest.mark.parametrize("name", SWEEP)
def test_prefix_sweep_gives_the_status_of_the_cut_layer(name):
    """Every prefix of a good frame, as a snaplen would cut it."""
    link, frame, link_len, ip_len, l4_need = SWEEP[name]
    l4_header = 20 if l4_need == TCP_NEED else 8
    d = decode_batch(batch_of([(link, frame[:cut]) for cut in range(len(frame) + 1)]))
    check_bounds(d)
    for cut, r in enumerate(rows(d)):
        if cut < link_len or (link == RAW and cut == 0):
            expected = S.TRUNCATED_LINK
        elif cut < link_len + ip_len:
            expected = S.TRUNCATED_IP
        elif cut < link_len + ip_len + l4_need:
            expected = S.TRUNCATED_L4
        else:
            expected = S.OK
        assert r.status == expected, cut
        if expected == S.OK:
            assert r.payload == PAYLOAD[: max(cut - link_len - ip_len - l4_header, 0)], cut


def test_malformed_ipv4():
    good = pb.ipv4(pb.udp(PAYLOAD))
    bad_version = bytes([0x55]) + good[1:]
    ihl4 = bytes([0x44]) + good[1:]
    short_total = good[:2] + struct.pack("!H", 19) + good[4:]
    assert decode1(ETH, pb.ethernet(bad_version)).status == S.BAD_IP_VERSION
    assert decode1(ETH, pb.ethernet(ihl4)).status == S.BAD_IP_HEADER_LEN
    assert decode1(ETH, pb.ethernet(short_total)).status == S.BAD_IP_TOTAL_LEN
    assert decode1(ETH, pb.ethernet(good, 0x86DD) + b"\x00" * 20).status == S.BAD_IP_VERSION
    # IHL says 15 words but only the basic header was captured.
    assert decode1(ETH, pb.ethernet(bytes([0x4F]) + good[1:20])).status == S.TRUNCATED_IP


def test_every_status_has_a_name_or_is_not_an_anomaly():
    not_anomalies = {S.OK, S.NON_IP, S.FRAGMENT, S.FRAGMENT_HELD}
    assert set(S.ANOMALIES) | not_anomalies == set(range(S.N_STATUS))


def test_empty_batch():
    d = decode_batch(batch_of([]))
    assert len(d) == 0
