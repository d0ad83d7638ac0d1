"""The decode kernel: link, IP and L4 headers of a PacketBatch into numpy columns.

One numba loop, no Python object per packet. Addresses are kept as two int64 halves of an
IPv6 address; IPv4 uses the IPv4-mapped form ::ffff:a.b.c.d (RFC 4291 §2.5.5.2) so one
flow key serves both families.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from voipscope.decode import status as S
from voipscope.source import linktypes as L
from voipscope.wire import u16be, u32be, u32le, u64be_signed

# EtherTypes (IEEE 802)
ETH_IPV4 = 0x0800
ETH_IPV6 = 0x86DD
ETH_VLAN = 0x8100  # IEEE 802.1Q
ETH_QINQ = 0x88A8  # IEEE 802.1ad service tag
ETH_QINQ_OLD = 0x9100  # pre-standard QinQ
ETH_MPLS = 0x8847
ETH_MPLS_MC = 0x8848
ETH_PPPOE_SESSION = 0x8864  # RFC 2516
PPP_IPV4 = 0x0021
PPP_IPV6 = 0x0057
MAX_LINK_TAGS = 8  # VLAN tags / MPLS labels decoded before giving up
DOUBLE_DOT1Q = 1 << 16  # in vlan_inner: both outer tags were 802.1Q (0x8100)

# IP protocol numbers (IANA)
IPPROTO_TCP = 6
IPPROTO_UDP = 17
IPPROTO_SCTP = 132
IPPROTO_UDPLITE = 136
# IPv6 extension headers skipped on the way to L4 (RFC 8200 §4)
IPV6_HOPOPTS = 0
IPV6_ROUTING = 43
IPV6_FRAGMENT = 44
IPV6_AH = 51  # RFC 4302: length in 4-octet units minus 2
IPV6_DSTOPTS = 60
IPV6_MOBILITY = 135
IPV6_HIP = 139
IPV6_SHIM6 = 140
MAX_IPV6_EXT_HEADERS = 16

# GTP-U (3GPP TS 29.281): mobile user-plane tunnels, UDP port 2152 (§4.4.2.3)
GTPU_PORT = 2152
GTPU_HEADER_BYTES = 8  # §5.1: flags, type, length, TEID
GTPU_T_PDU = 255  # §6.1: G-PDU, a user packet follows
MAX_GTPU_EXTENSIONS = 8

# BSD address families seen in LINKTYPE_NULL/LOOP headers (tcpdump.org/linktypes.html)
AF_INET = 2
AF_INET6_BSD = (24, 28, 30)

V4_MAPPED_PREFIX = np.int64(0xFFFF00000000)


# Inlined: a call that passes arrays costs reference-count traffic per packet.
@njit(cache=True, nogil=True, inline="always")
def _ether_payload(buf, q, end, ethertype, vlan_out, inner_out, i):
    """Skip VLAN tags, MPLS labels and PPPoE; return (l3 offset, IP version or 0, status).

    ``vlan_out`` gets the outermost VLAN id; ``inner_out`` the second one, with
    DOUBLE_DOT1Q set when both tags are plain 802.1Q (0x8100): QinQ proper uses an 802.1ad
    service tag outside (0x88a8), two customer tags in a row are the VLAN-hopping trick."""
    tags = 0
    outer_tpid = 0
    while True:
        if ethertype == ETH_VLAN or ethertype == ETH_QINQ or ethertype == ETH_QINQ_OLD:
            if end - q < 4:
                return q, 0, S.TRUNCATED_LINK
            if tags == 0:
                vlan_out[i] = u16be(buf, q) & 0x0FFF
                outer_tpid = ethertype
            elif tags == 1:
                inner = u16be(buf, q) & 0x0FFF
                if outer_tpid == ETH_VLAN and ethertype == ETH_VLAN:
                    inner |= DOUBLE_DOT1Q
                inner_out[i] = inner
            ethertype = u16be(buf, q + 2)
            q += 4
        elif ethertype == ETH_MPLS or ethertype == ETH_MPLS_MC:
            bottom = False
            while not bottom:
                if end - q < 4:
                    return q, 0, S.TRUNCATED_LINK
                bottom = (buf[q + 2] & 1) == 1
                q += 4
                tags += 1
                if tags > MAX_LINK_TAGS:
                    return q, 0, S.TOO_MANY_HEADERS
            if end - q < 1:
                return q, 0, S.TRUNCATED_LINK
            # RFC 3032 has no payload type: sniff the IP version nibble. Anything else
            # (a pseudowire control word, RFC 4385, starts with 0) is not IP.
            version = np.int64(buf[q]) >> 4
            if version == 4 or version == 6:
                return q, version, S.OK
            return q, 0, S.NON_IP
        elif ethertype == ETH_PPPOE_SESSION:
            if end - q < 8:
                return q, 0, S.TRUNCATED_LINK
            ppp = u16be(buf, q + 6)
            q += 8
            if ppp == PPP_IPV4:
                return q, 4, S.OK
            if ppp == PPP_IPV6:
                return q, 6, S.OK
            return q, 0, S.NON_IP
        elif ethertype == ETH_IPV4:
            return q, 4, S.OK
        elif ethertype == ETH_IPV6:
            return q, 6, S.OK
        else:
            return q, 0, S.NON_IP
        tags += 1
        if tags > MAX_LINK_TAGS:
            return q, 0, S.TOO_MANY_HEADERS


# Inlined: a call that passes arrays costs reference-count traffic per packet.
@njit(cache=True, nogil=True, inline="always")
def _link(buf, p, end, linktype, vlan_out, inner_out, i):
    """Find the IP header behind the link layer: (offset, version or 0, status)."""
    if linktype == L.LINKTYPE_ETHERNET:
        if end - p < 14:
            return p, 0, S.TRUNCATED_LINK
        return _ether_payload(buf, p + 14, end, u16be(buf, p + 12), vlan_out, inner_out, i)
    if linktype == L.LINKTYPE_LINUX_SLL:
        if end - p < 16:
            return p, 0, S.TRUNCATED_LINK
        return _ether_payload(buf, p + 16, end, u16be(buf, p + 14), vlan_out, inner_out, i)
    if linktype == L.LINKTYPE_LINUX_SLL2:
        if end - p < 20:
            return p, 0, S.TRUNCATED_LINK
        return _ether_payload(buf, p + 20, end, u16be(buf, p), vlan_out, inner_out, i)
    if (
        linktype == L.LINKTYPE_RAW
        or linktype == L.LINKTYPE_RAW_BSD_12
        or linktype == L.LINKTYPE_RAW_BSD_14
    ):
        if end - p < 1:
            return p, 0, S.TRUNCATED_LINK
        return p, np.int64(buf[p]) >> 4, S.OK
    if linktype == L.LINKTYPE_IPV4:
        return p, 4, S.OK
    if linktype == L.LINKTYPE_IPV6:
        return p, 6, S.OK
    if linktype == L.LINKTYPE_NULL or linktype == L.LINKTYPE_LOOP:
        if end - p < 4:
            return p, 0, S.TRUNCATED_LINK
        # NULL stores the family in the writer's byte order, which the file does not
        # record; a family is < 256, so whichever order gives a small number is right.
        family = u32le(buf, p)
        if family > 0xFFFF or linktype == L.LINKTYPE_LOOP:
            family = u32be(buf, p)
        if family == AF_INET:
            return p + 4, 4, S.OK
        for af6 in AF_INET6_BSD:
            if family == af6:
                return p + 4, 6, S.OK
        return p + 4, 0, S.NON_IP
    return p, 0, S.UNSUPPORTED_LINK


@njit(cache=True, nogil=True)
def decode_packets(
    buf, data_offset, caplen, linktype,
    status, ip_ver, proto, src_hi, src_lo, dst_hi, dst_lo, sport, dport,
    ip_bytes, l3_off, l4_off, l4_len, tcp_flags, vlan, frag_id, frag_off, frag_more,
    decap_gtp, vlan_inner,
):  # fmt: skip
    n = data_offset.shape[0]
    for i in range(n):
        p = data_offset[i]
        end = p + caplen[i]
        vlan[i] = -1
        vlan_inner[i] = -1
        ip_ver[i] = 0
        proto[i] = 0
        sport[i] = 0
        dport[i] = 0
        ip_bytes[i] = 0
        l4_len[i] = 0
        tcp_flags[i] = 0
        frag_more[i] = 0
        frag_off[i] = 0
        q, version, st = _link(buf, p, end, linktype[i], vlan, vlan_inner, i)
        l3_off[i] = q
        l4_off[i] = q
        if st != S.OK:
            status[i] = st
            continue
        st = _ip(
            buf, q, end, version, i, ip_ver, proto, src_hi, src_lo, dst_hi, dst_lo,
            sport, dport, ip_bytes, l4_off, l4_len, tcp_flags, frag_id, frag_off, frag_more,
        )  # fmt: skip
        if (
            st == S.OK
            and decap_gtp
            and proto[i] == IPPROTO_UDP
            and (sport[i] == GTPU_PORT or dport[i] == GTPU_PORT)
        ):
            st = _gtpu(
                buf, i, ip_ver, proto, src_hi, src_lo, dst_hi, dst_lo, sport, dport,
                ip_bytes, l3_off, l4_off, l4_len, tcp_flags, frag_id, frag_off, frag_more,
            )  # fmt: skip
        status[i] = st


@njit(cache=True, nogil=True, inline="always")
def _ip(
    buf, q, end, version, i,
    ip_ver, proto, src_hi, src_lo, dst_hi, dst_lo, sport, dport,
    ip_bytes, l4_off, l4_len, tcp_flags, frag_id, frag_off, frag_more,
):  # fmt: skip
    """The IP header at ``q`` and what follows it, into row ``i``; returns the status."""
    if version == 4:
        if end - q < 20:
            return S.TRUNCATED_IP
        if buf[q] >> 4 != 4:
            return S.BAD_IP_VERSION
        ihl = (np.int64(buf[q]) & 0x0F) * 4
        total = u16be(buf, q + 2)
        if ihl < 20:
            return S.BAD_IP_HEADER_LEN
        if total < ihl:
            return S.BAD_IP_TOTAL_LEN
        if end - q < ihl:
            return S.TRUNCATED_IP
        ip_ver[i] = 4
        proto[i] = buf[q + 9]
        src_hi[i] = 0
        src_lo[i] = V4_MAPPED_PREFIX | u32be(buf, q + 12)
        dst_hi[i] = 0
        dst_lo[i] = V4_MAPPED_PREFIX | u32be(buf, q + 16)
        ip_bytes[i] = total
        flags_frag = u16be(buf, q + 6)
        more = (flags_frag >> 13) & 1
        offset8 = flags_frag & 0x1FFF
        l4 = q + ihl
        # Ethernet pads short frames: the IP total length says where the data ends.
        l4_end = min(end, q + total)
        if more or offset8:
            frag_id[i] = u16be(buf, q + 4)
            frag_off[i] = offset8 * 8
            frag_more[i] = more
            l4_off[i] = l4
            l4_len[i] = max(l4_end - l4, 0)
            return S.FRAGMENT
        nh = proto[i]
    elif version == 6:
        if end - q < 40:
            return S.TRUNCATED_IP
        if buf[q] >> 4 != 6:
            return S.BAD_IP_VERSION
        ip_ver[i] = 6
        plen = u16be(buf, q + 4)
        src_hi[i] = u64be_signed(buf, q + 8)
        src_lo[i] = u64be_signed(buf, q + 16)
        dst_hi[i] = u64be_signed(buf, q + 24)
        dst_lo[i] = u64be_signed(buf, q + 32)
        ip_bytes[i] = plen + 40
        l4_end = min(end, q + 40 + plen)
        nh = np.int64(buf[q + 6])
        l4 = q + 40
        fragment = False
        hops = 0
        st = S.OK
        while True:
            if (
                nh == IPV6_HOPOPTS or nh == IPV6_ROUTING or nh == IPV6_DSTOPTS
                or nh == IPV6_MOBILITY or nh == IPV6_HIP or nh == IPV6_SHIM6
            ):  # fmt: skip
                if end - l4 < 2:
                    st = S.TRUNCATED_IP
                    break
                step = (np.int64(buf[l4 + 1]) + 1) * 8
            elif nh == IPV6_AH:
                if end - l4 < 2:
                    st = S.TRUNCATED_IP
                    break
                step = (np.int64(buf[l4 + 1]) + 2) * 4
            elif nh == IPV6_FRAGMENT:
                if end - l4 < 8:
                    st = S.TRUNCATED_IP
                    break
                off_flags = u16be(buf, l4 + 2)
                if (off_flags & 0xFFF9) != 0:  # offset != 0 or M set: a real fragment
                    frag_off[i] = off_flags & 0xFFF8
                    frag_more[i] = off_flags & 1
                    frag_id[i] = u32be(buf, l4 + 4)
                    fragment = True
                step = 8
            else:
                break
            nh = np.int64(buf[l4])
            l4 += step
            hops += 1
            if hops > MAX_IPV6_EXT_HEADERS:
                st = S.TOO_MANY_HEADERS
                break
            if fragment:
                break
        if st == S.OK and l4 > end:
            # The last extension header claims more bytes than were captured.
            st = S.TRUNCATED_IP
        if st != S.OK:
            return st
        proto[i] = nh
        if fragment:
            l4_off[i] = l4
            l4_len[i] = max(l4_end - l4, 0)
            return S.FRAGMENT
    else:
        # Raw-IP link types sniff the version nibble; one that is not 4 or 6 (0
        # included) is a bad version, not a truncation.
        return S.BAD_IP_VERSION
    return decode_l4(buf, i, nh, l4, l4_end, sport, dport, tcp_flags, l4_off, l4_len)


@njit(cache=True, nogil=True, inline="always")
def _gtpu_inner(buf, p, end):
    """Offset of the IP packet inside a GTP-U T-PDU at ``p`` (3GPP TS 29.281 §5), or -1.

    Only version-1 GTP (PT=1) G-PDUs (message type 255) carry user packets; echo and
    error indications stay with the tunnel's own flow."""
    if end - p < GTPU_HEADER_BYTES:
        return -1
    flags = np.int64(buf[p])
    if flags >> 5 != 1 or not flags & 0x10 or buf[p + 1] != GTPU_T_PDU:
        return -1
    q = p + GTPU_HEADER_BYTES
    if flags & 0x07:  # E, S or PN: sequence number, N-PDU number, next extension type
        if end - q < 4:
            return -1
        next_type = np.int64(buf[q + 3])
        q += 4
        hops = 0
        while next_type != 0:  # §5.2: extension headers in 4-octet units, chained
            if end - q < 4 or hops >= MAX_GTPU_EXTENSIONS:
                return -1
            size = np.int64(buf[q]) * 4
            if size == 0 or end - q < size:
                return -1
            next_type = np.int64(buf[q + size - 1])
            q += size
            hops += 1
    if q >= end:
        return -1
    return q


@njit(cache=True, nogil=True, inline="always")
def _gtpu(
    buf, i, ip_ver, proto, src_hi, src_lo, dst_hi, dst_lo, sport, dport,
    ip_bytes, l3_off, l4_off, l4_len, tcp_flags, frag_id, frag_off, frag_more,
):  # fmt: skip
    """Row ``i`` is UDP to or from the GTP-U port: account the packet to the flow it
    carries (mobile-core captures: the calls are inside). Returns the status; when the
    payload is not a T-PDU with an IP packet that decodes, the outer fields stay."""
    outer_end = l4_off[i] + l4_len[i]
    inner = _gtpu_inner(buf, l4_off[i], outer_end)
    if inner < 0:
        return S.OK
    version = np.int64(buf[inner]) >> 4
    if version != 4 and version != 6:
        return S.OK
    saved = (ip_ver[i], proto[i], src_hi[i], src_lo[i], dst_hi[i], dst_lo[i], sport[i],
             dport[i], ip_bytes[i], l3_off[i], l4_off[i], l4_len[i], tcp_flags[i])  # fmt: skip
    st = _ip(
        buf, inner, outer_end, version, i, ip_ver, proto, src_hi, src_lo, dst_hi, dst_lo,
        sport, dport, ip_bytes, l4_off, l4_len, tcp_flags, frag_id, frag_off, frag_more,
    )  # fmt: skip
    if st == S.OK or st == S.FRAGMENT:
        l3_off[i] = inner
        return st
    (ip_ver[i], proto[i], src_hi[i], src_lo[i], dst_hi[i], dst_lo[i], sport[i], dport[i],
     ip_bytes[i], l3_off[i], l4_off[i], l4_len[i], tcp_flags[i]) = saved  # fmt: skip
    frag_id[i] = 0
    frag_off[i] = 0
    frag_more[i] = 0
    return S.OK


# Inlined: a call that passes arrays costs reference-count traffic per packet.
@njit(cache=True, nogil=True, inline="always")
def decode_l4(buf, i, nh, l4, l4_end, sport, dport, tcp_flags, l4_off, l4_len):
    """Ports and payload bounds of UDP, TCP, SCTP; other protocols have no ports."""
    if nh == IPPROTO_UDP or nh == IPPROTO_UDPLITE:
        if l4_end - l4 < 8:
            return S.TRUNCATED_L4
        sport[i] = u16be(buf, l4)
        dport[i] = u16be(buf, l4 + 2)
        l4_off[i] = l4 + 8
        l4_len[i] = l4_end - l4 - 8
    elif nh == IPPROTO_TCP:
        if l4_end - l4 < 14:
            return S.TRUNCATED_L4
        sport[i] = u16be(buf, l4)
        dport[i] = u16be(buf, l4 + 2)
        tcp_flags[i] = buf[l4 + 13]
        header = (np.int64(buf[l4 + 12]) >> 4) * 4
        payload = l4 + max(header, 20)
        l4_off[i] = min(payload, l4_end)
        l4_len[i] = max(l4_end - payload, 0)
    elif nh == IPPROTO_SCTP:
        if l4_end - l4 < 4:
            return S.TRUNCATED_L4
        sport[i] = u16be(buf, l4)
        dport[i] = u16be(buf, l4 + 2)
        l4_off[i] = l4
        l4_len[i] = max(l4_end - l4, 0)
    else:
        l4_off[i] = l4
        l4_len[i] = max(l4_end - l4, 0)
    return S.OK
