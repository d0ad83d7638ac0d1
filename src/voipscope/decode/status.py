"""Per-packet decode status codes and the anomaly each one becomes."""

from __future__ import annotations

OK = 0
NON_IP = 1  # ARP, LLDP, STP, ...: normal, counted but not an anomaly
TRUNCATED_LINK = 2
TRUNCATED_IP = 3
TRUNCATED_L4 = 4
BAD_IP_VERSION = 5
BAD_IP_HEADER_LEN = 6
BAD_IP_TOTAL_LEN = 7
UNSUPPORTED_LINK = 8
FRAGMENT = 9  # an IP fragment: handed to the reassembler
TOO_MANY_HEADERS = 10  # VLAN tags, MPLS labels or IPv6 extension headers beyond the cap
FRAGMENT_HELD = 11  # a fragment the reassembler consumed (counted via its datagram)
N_STATUS = 12

# status -> (anomaly name, detail). OK, NON_IP and the fragment states are not anomalies.
ANOMALIES = {
    TRUNCATED_LINK: ("link_header_truncated", "captured bytes end inside the link-layer header"),
    TRUNCATED_IP: ("ip_header_truncated", "captured bytes end inside the IP header"),
    TRUNCATED_L4: ("l4_header_truncated", "captured bytes end inside the UDP/TCP header"),
    BAD_IP_VERSION: ("ip_bad_version", "IP version nibble is neither 4 nor 6"),
    BAD_IP_HEADER_LEN: ("ipv4_bad_header_length", "IPv4 IHL below 5 words"),
    BAD_IP_TOTAL_LEN: ("ipv4_bad_total_length", "IPv4 total length shorter than its header"),
    UNSUPPORTED_LINK: (
        "unsupported_link_type",
        "packet on an interface whose link type is not decoded",
    ),
    TOO_MANY_HEADERS: ("too_many_headers", "more VLAN/MPLS/IPv6 extension headers than decoded"),
}

# Not a status (the packet decodes): a frame with two 802.1Q (0x8100) tags, the classic
# VLAN-hopping trick — the first switch strips the native-VLAN tag and forwards the frame
# into the inner VLAN. QinQ proper puts an 802.1ad (0x88a8) service tag outside.
DOUBLE_TAGGED = (
    "vlan_double_tagged",
    "802.1Q frame inside 802.1Q (no 802.1ad service tag): a VLAN-hopping attempt, or a "
    "misconfigured trunk",
)
