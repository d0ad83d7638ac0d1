"""Regenerate the golden flow tables from tshark (run by hand, not by the tests).

    python tests/integration/make_goldens.py [CAPTURE_NAME ...]

For each capture of ../shared/captures/ndpi named in GOLDEN_CAPTURES (or on the command
line), writes goldens/NAME.csv: one row per UDP/TCP 5-tuple with
- packets per direction from `tshark -q -z conv,udp -z conv,tcp` (tshark counts
  frames; a 5-tuple tshark splits into several TCP streams is summed), and
- IP-layer bytes per direction as the sum of `ip.len` / `ipv6.plen + 40` over the
  frames of the 5-tuple (tshark's conv counts frame bytes, voipscope IP bytes).
Rows are keyed by (proto, a_ip, a_port, b_ip, b_port) with a = the lower endpoint.
"""

from __future__ import annotations

import csv
import ipaddress
import re
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).parent
CAPTURES = HERE.parents[1].parent / "shared" / "captures" / "ndpi"
GOLDENS = HERE / "goldens"

# Chosen to cover every reader and link type of the shared set: pcap Ethernet, Linux
# cooked, raw IP, pcapng, VLAN, IPv6, TCP and UDP, SIP/RTP/STUN and many-flow captures.
GOLDEN_CAPTURES = [
    "sip.pcap",
    "rtp.pcapng",
    "h323.pcap",
    "mgcp.pcap",
    "iax.pcap",
    "KakaoTalk_chat.pcap",
    "codm.pcap",
    "teams.pcap",
    "discord.pcap",
    "stun_dtls_rtp.pcapng",
    "FAX-Call-t38-CA-TDM-SIP-FB-1.pcap",
    "whatsapp_login_call.pcap",
    "signal.pcap",
    "zoom.pcap",
    "quic.pcap",
    "sccp_hw_conf_register.pcapng",
    "wireguard.pcap",
    "dns.pcap",
]

Key = tuple[str, str, int, str, int]
_CONV = re.compile(
    r"^(\S+):(\d+)\s+<->\s+(\S+):(\d+)\s+(\d+)\s+\d+\s*\S+\s+(\d+)\s+\d+\s*\S+\s+(\d+)"
)


def canonical(proto: str, ip1: str, p1: int, ip2: str, p2: int) -> tuple[Key, bool]:
    """(key, swapped): a is the lower (address, port); swapped when ip1 is b."""
    e1 = (ipaddress.ip_address(ip1), p1)
    e2 = (ipaddress.ip_address(ip2), p2)
    k1 = (e1[0].version, int(e1[0]), p1)
    k2 = (e2[0].version, int(e2[0]), p2)
    if k1 <= k2:
        return (proto, str(e1[0]), p1, str(e2[0]), p2), False
    return (proto, str(e2[0]), p2, str(e1[0]), p1), True


def tshark_packets(path: Path) -> dict[Key, list[int]]:
    out = subprocess.run(
        ["tshark", "-r", str(path), "-q", "-z", "conv,udp", "-z", "conv,tcp"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    result: dict[Key, list[int]] = defaultdict(lambda: [0, 0])
    proto = ""
    for line in out.splitlines():
        if line.startswith("TCP Conversations"):
            proto = "tcp"
        elif line.startswith("UDP Conversations"):
            proto = "udp"
        m = _CONV.match(line)
        if not m:
            continue
        ip_a, port_a, ip_b, port_b = m.group(1), int(m.group(2)), m.group(3), int(m.group(4))
        b_to_a, a_to_b = int(m.group(5)), int(m.group(6))
        key, swapped = canonical(proto, ip_a, port_a, ip_b, port_b)
        fwd, rev = (b_to_a, a_to_b) if swapped else (a_to_b, b_to_a)
        result[key][0] += fwd
        result[key][1] += rev
    return result


def tshark_ip_bytes(path: Path) -> dict[Key, list[int]]:
    """Bytes per tuple and direction. A tunnelled packet (GTP-U) has two IP and two UDP
    headers: like tshark's conversations, both the tunnel and the flow inside count it."""
    fields = ["ip.src", "ip.dst", "ipv6.src", "ipv6.dst", "udp.srcport", "udp.dstport",
              "tcp.srcport", "tcp.dstport", "ip.len", "ipv6.plen", "frame.protocols"]  # fmt: skip
    cmd = ["tshark", "-r", str(path), "-Y", "udp or tcp", "-T", "fields", "-E", "separator=/t",
           "-E", "occurrence=a", "-E", "aggregator=,"]  # fmt: skip
    cmd += [a for f in fields for a in ("-e", f)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    result: dict[Key, list[int]] = defaultdict(lambda: [0, 0])
    for line in out.splitlines():
        v = [cell.split(",") if cell else [] for cell in line.split("\t")]
        v4 = bool(v[0])
        srcs, dsts = (v[0], v[1]) if v4 else (v[2], v[3])
        udp = bool(v[4])
        sports, dports = (v[4], v[5]) if udp else (v[6], v[7])
        lengths = [int(x) for x in v[8]] if v4 else [int(x) + 40 for x in v[9]]
        # One entry per IP header; the L4 ports of a level are the ones after it. Only a
        # tunnel makes a second conversation: an ICMP error quoting a header does not.
        tunnelled = ":gtp:" in line.rsplit("\t", 1)[-1] + ":"
        levels = min(len(srcs), len(lengths)) if tunnelled else 1
        ports = list(zip(sports, dports, strict=False))
        for k in range(levels):
            # Without ports at this level (only the innermost has them in tcp-in-udp),
            # the level does not form a UDP/TCP conversation.
            j = k - (levels - len(ports))
            if j < 0:
                continue
            key, swapped = canonical("udp" if udp else "tcp", srcs[k], int(ports[j][0]),
                                     dsts[k], int(ports[j][1]))  # fmt: skip
            result[key][1 if swapped else 0] += lengths[k]
    return result


def write_golden(name: str) -> Path:
    path = CAPTURES / name
    packets = tshark_packets(path)
    ip_bytes = tshark_ip_bytes(path)
    target = GOLDENS / f"{name}.csv"
    with target.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["proto", "a_ip", "a_port", "b_ip", "b_port", "a2b_packets", "b2a_packets",
                    "a2b_ip_bytes", "b2a_ip_bytes"])  # fmt: skip
        for key in sorted(packets, key=str):
            w.writerow([*key, *packets[key], *ip_bytes.get(key, [0, 0])])
    return target


if __name__ == "__main__":
    GOLDENS.mkdir(exist_ok=True)
    for name in sys.argv[1:] or GOLDEN_CAPTURES:
        print(write_golden(name))
