"""Link-layer header types (tcpdump.org/linktypes.html) that voipscope decodes."""

from __future__ import annotations

LINKTYPE_NULL = 0  # BSD loopback: 4-byte address family in the writer's byte order
LINKTYPE_ETHERNET = 1
LINKTYPE_RAW_BSD_12 = 12  # DLT_RAW on some BSDs; raw IPv4/IPv6
LINKTYPE_RAW_BSD_14 = 14  # DLT_RAW on OpenBSD
LINKTYPE_RAW = 101
LINKTYPE_LOOP = 108  # OpenBSD loopback: address family in network byte order
LINKTYPE_LINUX_SLL = 113
LINKTYPE_IPV4 = 228
LINKTYPE_IPV6 = 229
LINKTYPE_LINUX_SLL2 = 276

NAMES = {
    LINKTYPE_NULL: "BSD null/loopback",
    LINKTYPE_ETHERNET: "Ethernet",
    LINKTYPE_RAW_BSD_12: "raw IP (DLT 12)",
    LINKTYPE_RAW_BSD_14: "raw IP (DLT 14)",
    LINKTYPE_RAW: "raw IP",
    LINKTYPE_LOOP: "OpenBSD loopback",
    LINKTYPE_LINUX_SLL: "Linux cooked v1",
    LINKTYPE_IPV4: "raw IPv4",
    LINKTYPE_IPV6: "raw IPv6",
    LINKTYPE_LINUX_SLL2: "Linux cooked v2",
}
SUPPORTED_LINKTYPES = frozenset(NAMES)

# A few we do not decode, so the error can name what the file is.
_OTHER_NAMES = {
    105: "IEEE 802.11",
    127: "IEEE 802.11 radiotap",
    147: "user-defined (147)",
    192: "PPI",
    9: "PPP",
    50: "PPP in HDLC",
    220: "USB Linux mmapped",
    249: "NetAnalyzer",
    195: "IEEE 802.15.4",
}


def linktype_name(linktype: int) -> str:
    return NAMES.get(linktype) or _OTHER_NAMES.get(linktype) or "unknown to voipscope"
