#!/usr/bin/env python3
"""Build the large benchmark capture by replicating the real nDPI test captures.

Every copy k of the corpus gets its own IP addresses (so its flows are new flows, not
repeats of copy 0) and its own time offset; ~`--overlap` copies are live at any moment so
flow tables hold many concurrent flows, as on a busy link. IPv4 addresses keep their /16
(their /8 if the copies would not fit), IPv6 addresses keep their upper 64 bits; see
plan_v4 and _stamp_v6. Nothing but addresses, link headers of non-Ethernet captures and
timestamps changes: IP/UDP/TCP checksums are left stale on purpose (flow tools do not
verify them), header length fields stay intact, and addresses written inside payloads
(SIP/SDP bodies, STUN attributes) keep their original values.

The default overlap is 32, not a handful: the corpus is sparse in time (one copy spans
~73 minutes but holds only ~1,200 flows), so 8 overlapping copies leave only ~300 flows
in a 120-s-idle-timeout flow table, 32 leave ~1,200.

How the interleaving stays cheap and streaming: the corpus is laid out once as a
"unit" of length D (each capture at a staggered offset). Copy k starts at k*S with
S = D/overlap + 1, so output window j = [j*S, (j+1)*S) holds, for each phase p in
0..overlap-1, the packets of copy j-p whose unit time falls in [p*S, (p+1)*S). Sorting the
unit once by (time mod S) therefore gives the merged order of *every* window; writing a
window is one numpy copy of that template plus vectorised address and timestamp stamping.
Memory stays at a few times the corpus size whatever the output size.
"""

from __future__ import annotations

import argparse
import math
import struct
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pcapio import (
    PCAP_RECORD_HEADER,
    CaptureFormatError,
    pcap_global_header,
    read_packets,
    to_ethernet,
)

DEFAULT_CAPTURES = Path(__file__).resolve().parents[2] / "shared" / "captures" / "ndpi"
DEFAULT_OUT = Path("/tmp/voipscope-bench/mix.pcap")
DEFAULT_TARGET_BYTES = 1_100_000_000
DEFAULT_TARGET_PACKETS = 4_000_000
BASE_EPOCH_US = 1_704_067_200 * 1_000_000  # 2024-01-01T00:00:00Z: a fixed, readable start
GOLDEN = 0.6180339887498949  # low-discrepancy sequence to spread capture start offsets

VLAN_TPIDS = frozenset({0x8100, 0x88A8, 0x9100})
ETHERTYPE_IPV4 = 0x0800
ETHERTYPE_IPV6 = 0x86DD
ETHERTYPE_PPPOE_SESSION = 0x8864
MPLS_TYPES = frozenset({0x8847, 0x8848})
PPP_TO_VERSION = {0x0021: 4, 0x0057: 6}
IPPROTO_ICMP, IPPROTO_IPIP, IPPROTO_UDP, IPPROTO_IPV6, IPPROTO_ICMPV6 = 1, 4, 17, 41, 58
ICMP4_ERRORS = frozenset({3, 4, 5, 11, 12})  # these quote the offending IP header
ICMP6_ERRORS = frozenset({1, 2, 3, 4})
GTPU_PORT = 2152
GTP_TPDU = 0xFF
MAX_IP_DEPTH = 4  # outer + a few nested headers; deeper nesting does not occur in the corpus


@dataclass(slots=True)
class Capture:
    """One source capture converted to Ethernet frames with de-gapped relative times."""

    name: str
    frames: list[bytes]
    orig_lens: list[int]
    rel_us: np.ndarray  # int64, starts at 0, non-decreasing


@dataclass(slots=True)
class AddressBook:
    """Distinct source addresses, numbered so per-copy rewrites are provably injective."""

    v4_index: dict[int, int] = field(default_factory=dict)
    v4_values: list[int] = field(default_factory=list)
    v6_index: dict[bytes, int] = field(default_factory=dict)

    def v4_id(self, addr: int) -> int:
        if addr not in self.v4_index:
            self.v4_index[addr] = len(self.v4_values)
            self.v4_values.append(addr)
        return self.v4_index[addr]

    def v6_id(self, addr: bytes) -> int:
        return self.v6_index.setdefault(addr, len(self.v6_index))


@dataclass(frozen=True, slots=True)
class V4Plan:
    """Per IPv4 address id: kept prefix, size of its prefix group, rank inside the group.

    Copy k maps an address to prefix | (k * group_size + rank): two different (copy,
    address) pairs can never collide because the low part stays below 2**host_bits.
    """

    prefix_bits: int
    hi: np.ndarray
    group: np.ndarray
    rank: np.ndarray


def plan_v4(values: np.ndarray, copies: int) -> V4Plan:
    """Keep each address's /16 when the copies fit, else only its /8.

    Keeping the prefix keeps meaning that tools act on: private and multicast ranges
    stay private/multicast, and most of nDPI's IP-list matches (often /16-level owner
    blocks such as 157.240/16) still hit, so classification work stays realistic.
    """
    for bits in (16, 8):
        key = values >> (32 - bits)
        _uniq, inv, counts = np.unique(key, return_inverse=True, return_counts=True)
        group = counts[inv].astype(np.int64)
        if copies * int(group.max(initial=0)) <= 1 << (32 - bits):
            order = np.argsort(inv, kind="stable")
            starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
            rank = np.empty(len(values), dtype=np.int64)
            rank[order] = np.arange(len(values)) - starts[inv[order]]
            return V4Plan(bits, key << (32 - bits), group, rank)
    raise SystemExit(f"{copies} copies do not fit in the IPv4 space of one /8 prefix group")


@dataclass(slots=True)
class Template:
    """One copy of the corpus in window order, as raw pcap records plus stamping plans."""

    buf: np.ndarray  # uint8: all records (16-byte header + frame) back to back
    hdr_off: np.ndarray  # int64 offset of each record header in buf
    rec_len: np.ndarray  # int64 bytes per record, header included
    phase: np.ndarray  # int64 which copy offset (0..overlap-1) the packet belongs to
    resid_us: np.ndarray  # int64 time within the window
    stride_us: int
    v4_rows: np.ndarray
    v4_pos: np.ndarray  # byte offset of the IPv4 source address in buf
    v4_src: np.ndarray  # address ids
    v4_dst: np.ndarray
    v6_rows: np.ndarray
    v6_pos: np.ndarray  # byte offset of the IPv6 source address in buf
    v6_src: np.ndarray
    v6_dst: np.ndarray
    v4_values: np.ndarray  # original IPv4 address per id, for plan_v4

    @property
    def packets(self) -> int:
        return len(self.hdr_off)


def relative_times(ts_us: list[int], max_gap_us: int) -> np.ndarray:
    """File-order times starting at 0 with every gap clipped into [0, max_gap].

    Several corpus files are concatenations of captures taken years apart (and a few have
    packets out of order); clipping keeps real pacing inside a session while making the
    replicated timeline dense and monotonic. File order is kept as the tools see it.
    """
    ts = np.asarray(ts_us, dtype=np.int64)
    if len(ts) == 0:
        return ts
    gaps = np.clip(np.diff(ts), 0, max_gap_us)
    return np.concatenate(([0], np.cumsum(gaps))).astype(np.int64)


def load_capture(path: Path, max_gap_us: int) -> tuple[Capture | None, str]:
    """Read and convert one capture; returns (capture or None, note for the log)."""
    try:
        raw = list(read_packets(path))
    except (CaptureFormatError, struct.error) as exc:
        return None, f"skipped: {exc}"
    frames: list[bytes] = []
    orig_lens: list[int] = []
    ts: list[int] = []
    dropped: dict[int, int] = {}
    for packet in raw:
        converted = to_ethernet(packet)
        if converted is None:
            dropped[packet.linktype] = dropped.get(packet.linktype, 0) + 1
            continue
        frames.append(converted[0])
        orig_lens.append(converted[1])
        ts.append(packet.ts_us)
    note = "" if not dropped else f"dropped unconvertible frames by linktype: {dropped}"
    if not frames:
        return None, f"skipped: no convertible packets ({note})"
    return Capture(path.name, frames, orig_lens, relative_times(ts, max_gap_us)), note


def locate_ips(frame: bytes) -> list[tuple[int, int]]:
    """(IP version, header offset) of every IP header to rewrite, outermost first.

    Inner headers count too: GTP-U payloads (nfstream decodes GTP by default, so unrewritten
    inner addresses would merge the copies' tunnelled flows), IP-in-IP, and the quoted
    header of ICMP errors (kept consistent with the rewritten flow it refers to).
    """
    found: list[tuple[int, int]] = []
    current = locate_outer_ip(frame)
    while current is not None and len(found) < MAX_IP_DEPTH:
        found.append(current)
        try:
            current = _inner_ip(frame, *current)
        except IndexError:  # snap-truncated payload: keep what was found
            current = None
    return found


def _inner_ip(frame: bytes, version: int, off: int) -> tuple[int, int] | None:
    if version == 4:
        if int.from_bytes(frame[off + 6 : off + 8], "big") & 0x1FFF:
            return None  # non-first fragment: no transport header here
        proto, l4 = frame[off + 9], off + (frame[off] & 0x0F) * 4
    else:
        proto, l4 = frame[off + 6], off + 40  # extension headers are not walked
    if proto in (IPPROTO_IPIP, IPPROTO_IPV6):
        return _checked(frame, 4 if proto == IPPROTO_IPIP else 6, l4)
    if proto == IPPROTO_UDP and l4 + 8 <= len(frame):
        ports = (
            int.from_bytes(frame[l4 : l4 + 2], "big"),
            int.from_bytes(frame[l4 + 2 : l4 + 4], "big"),
        )
        return _after_gtpu(frame, l4 + 8) if GTPU_PORT in ports else None
    is_error = (proto == IPPROTO_ICMP and frame[l4] in ICMP4_ERRORS) or (
        proto == IPPROTO_ICMPV6 and frame[l4] in ICMP6_ERRORS
    )
    return _checked(frame, frame[l4 + 8] >> 4, l4 + 8) if is_error else None


def _after_gtpu(frame: bytes, pos: int) -> tuple[int, int] | None:
    flags = frame[pos]
    if flags >> 5 != 1 or frame[pos + 1] != GTP_TPDU:
        return None  # GTPv1-U data packets only; signalling carries no inner IP
    inner = pos + 8
    if flags & 0x07:  # sequence / N-PDU / extension present: 4 more header bytes
        next_ext = frame[pos + 11] if flags & 0x04 else 0
        inner += 4
        while next_ext:
            ext_len = frame[inner] * 4
            if ext_len == 0:
                return None
            next_ext = frame[inner + ext_len - 1]
            inner += ext_len
    return _checked(frame, frame[inner] >> 4, inner)


def locate_outer_ip(frame: bytes) -> tuple[int, int] | None:
    """(IP version, offset of the IP header) inside an Ethernet frame, or None.

    Walks VLAN/QinQ tags, PPPoE session and MPLS label stacks because the corpus has
    QinQ+PPPoE traffic.
    """
    pos = 12
    while pos + 2 <= len(frame):
        ethertype = int.from_bytes(frame[pos : pos + 2], "big")
        if ethertype in VLAN_TPIDS:
            pos += 4
            continue
        if ethertype == ETHERTYPE_IPV4:
            return _checked(frame, 4, pos + 2)
        if ethertype == ETHERTYPE_IPV6:
            return _checked(frame, 6, pos + 2)
        if ethertype == ETHERTYPE_PPPOE_SESSION:
            proto = int.from_bytes(frame[pos + 8 : pos + 10], "big")
            version = PPP_TO_VERSION.get(proto)
            return None if version is None else _checked(frame, version, pos + 10)
        if ethertype in MPLS_TYPES:
            return _after_mpls(frame, pos + 2)
        return None
    return None


def _after_mpls(frame: bytes, pos: int) -> tuple[int, int] | None:
    while pos + 4 <= len(frame):
        bottom = frame[pos + 2] & 0x01
        pos += 4
        if bottom:
            return _checked(frame, frame[pos] >> 4, pos) if pos < len(frame) else None
    return None


def _checked(frame: bytes, version: int, off: int) -> tuple[int, int] | None:
    """Accept the header only if the version nibble agrees and both addresses were captured."""
    if version not in (4, 6):
        return None
    need = 20 if version == 4 else 40
    if off + need > len(frame) or frame[off] >> 4 != version:
        return None
    return version, off


def stagger_offsets(durations: list[int]) -> tuple[list[int], int]:
    """Start offset of every capture inside the unit, and the unit length D (µs).

    Short captures are spread over the whole unit instead of all starting at 0 so the
    packet rate of the mix is roughly even rather than one burst per copy.
    """
    unit = max(durations, default=0) + 1
    offsets = [int((unit - 1 - d) * ((i * GOLDEN) % 1.0)) for i, d in enumerate(durations)]
    return offsets, unit


def build_template(captures: list[Capture], overlap: int) -> Template:
    offsets, unit_us = stagger_offsets([int(c.rel_us[-1]) for c in captures])
    stride_us = unit_us // overlap + 1
    frames = [f for c in captures for f in c.frames]
    orig_lens = [n for c in captures for n in c.orig_lens]
    t = np.concatenate([c.rel_us + off for c, off in zip(captures, offsets, strict=True)])
    phase, resid = np.divmod(t, stride_us)
    # lexsort keys: last is primary. Ties keep corpus order, hence each capture's file order.
    order = np.lexsort((np.arange(len(t)), phase, resid))
    book = AddressBook()
    chunks: list[bytes] = []
    rec_len = np.empty(len(order), dtype=np.int64)
    v4: list[tuple[int, int, int, int]] = []
    v6: list[tuple[int, int, int, int]] = []
    pos = 0
    for row, idx in enumerate(order.tolist()):
        frame = frames[idx]
        chunks.append(PCAP_RECORD_HEADER.pack(0, 0, len(frame), orig_lens[idx]))
        chunks.append(frame)
        rec_len[row] = PCAP_RECORD_HEADER.size + len(frame)
        _plan_rewrite(frame, row, pos + PCAP_RECORD_HEADER.size, book, v4, v6)
        pos += int(rec_len[row])
    hdr_off = np.concatenate(([0], np.cumsum(rec_len)[:-1])).astype(np.int64)
    v4a = np.asarray(v4, dtype=np.int64).reshape(-1, 4)
    v6a = np.asarray(v6, dtype=np.int64).reshape(-1, 4)
    return Template(
        buf=np.frombuffer(b"".join(chunks), dtype=np.uint8),
        hdr_off=hdr_off,
        rec_len=rec_len,
        phase=phase[order],
        resid_us=resid[order],
        stride_us=int(stride_us),
        v4_rows=v4a[:, 0],
        v4_pos=v4a[:, 1],
        v4_src=v4a[:, 2],
        v4_dst=v4a[:, 3],
        v6_rows=v6a[:, 0],
        v6_pos=v6a[:, 1],
        v6_src=v6a[:, 2],
        v6_dst=v6a[:, 3],
        v4_values=np.asarray(book.v4_values, dtype=np.int64),
    )


def _plan_rewrite(
    frame: bytes,
    row: int,
    frame_pos: int,
    book: AddressBook,
    v4: list[tuple[int, int, int, int]],
    v6: list[tuple[int, int, int, int]],
) -> None:
    """Record where this frame's IP addresses sit in the template and which ids they have."""
    # Frames without IP (ARP, STP, LLC...) stay identical in every copy; flow tools skip them.
    for version, off in locate_ips(frame):
        if version == 4:
            src = book.v4_id(int.from_bytes(frame[off + 12 : off + 16], "big"))
            dst = book.v4_id(int.from_bytes(frame[off + 16 : off + 20], "big"))
            v4.append((row, frame_pos + off + 12, src, dst))
        else:
            src = book.v6_id(frame[off + 8 : off + 24])
            dst = book.v6_id(frame[off + 24 : off + 40])
            v6.append((row, frame_pos + off + 8, src, dst))


def _scatter(buf: np.ndarray, pos: np.ndarray, values: np.ndarray) -> None:
    """Write each row of `values` (n x w bytes) at buf[pos[i] : pos[i] + w]."""
    if len(pos):
        buf[pos[:, None] + np.arange(values.shape[1])] = values


def _as_bytes(values: np.ndarray, dtype: str) -> np.ndarray:
    return np.ascontiguousarray(values.astype(dtype)).view(np.uint8).reshape(len(values), -1)


def render_window(tpl: Template, plan: V4Plan, window: int, copies: int) -> tuple[np.ndarray, int]:
    """Bytes and packet count of output window `window`: its copies' packets, stamped."""
    copy = window - tpl.phase
    live = (copy >= 0) & (copy < copies)
    # Compute for all rows with a clamped copy index (keeps arithmetic in range), then
    # drop the rows whose copy does not exist yet / any more.
    k = np.clip(copy, 0, copies - 1)
    buf = tpl.buf.copy()
    ts = BASE_EPOCH_US + window * tpl.stride_us + tpl.resid_us
    sec, usec = np.divmod(ts, 1_000_000)
    stamps = _as_bytes(np.stack([sec, usec], axis=1).ravel(), "<u4").reshape(-1, 8)
    _scatter(buf, tpl.hdr_off, stamps)
    _stamp_v4(buf, tpl, plan, k)
    _stamp_v6(buf, tpl, k)
    count = int(np.count_nonzero(live))
    if count == tpl.packets:
        return buf, count
    return buf[np.repeat(live, tpl.rec_len)], count


def _stamp_v4(buf: np.ndarray, tpl: Template, plan: V4Plan, k: np.ndarray) -> None:
    kc = k[tpl.v4_rows]
    for ids, shift in ((tpl.v4_src, 0), (tpl.v4_dst, 4)):
        addr = plan.hi[ids] | (kc * plan.group[ids] + plan.rank[ids])
        _scatter(buf, tpl.v4_pos + shift, _as_bytes(addr, ">u4"))


def _stamp_v6(buf: np.ndarray, tpl: Template, k: np.ndarray) -> None:
    # Keep the upper 64 bits (prefix, so link-local/multicast/global stay what they were)
    # and set the interface-id half to (copy + 1, address id): injective by construction.
    kc = k[tpl.v6_rows] + 1
    for ids, shift in ((tpl.v6_src, 8), (tpl.v6_dst, 24)):
        iid = np.stack([kc, ids], axis=1).ravel()
        _scatter(buf, tpl.v6_pos + shift, _as_bytes(iid, ">u4").reshape(-1, 8))


def copies_needed(tpl: Template, target_bytes: int, target_packets: int) -> int:
    unit_bytes = len(tpl.buf)
    by_bytes = math.ceil(max(target_bytes - 24, 1) / unit_bytes)
    by_packets = math.ceil(max(target_packets, 1) / tpl.packets)
    return max(by_bytes, by_packets, 1)


# The second benchmark: the captures whose packets are mostly calls (SIP/H.323/MGCP/IAX2/
# SCCP signalling with RTP, T.38, and the media of over-the-top apps). The default mix is
# the whole corpus, where most flows are short and not VoIP; this one measures the tool on
# the traffic it exists for (long media flows), and is reported beside it, never instead.
VOIP_HEAVY = (
    "FAX-Call-t38-CA-TDM-SIP-FB-1.pcap", "sip.pcap", "rtp.pcapng", "h323.pcap", "iax.pcap",
    "mgcp.pcap", "sccp_hw_conf_register.pcapng", "rtcp_multiple_pkts_in_the_same_datagram.pcap",
    "skype-conference-call.pcap", "skype_udp.pcap", "stun_dtls_rtp.pcapng", "signal.pcap",
    "whatsapp_voice_and_message.pcap", "whatsapp_login_call.pcap", "teams.pcap",
    "google_meet.pcapng", "discord.pcap", "telegram.pcap", "mumble.pcapng", "teamspeak3.pcap",
    "zoom2.pcap", "snapchat_call.pcapng", "imo.pcap",
)  # fmt: skip


def load_corpus(
    directory: Path, max_gap_us: int, only: tuple[str, ...] | None = None
) -> list[Capture]:
    captures: list[Capture] = []
    files = sorted(p for p in directory.iterdir() if p.is_file() and not p.name.endswith(".out"))
    if only is not None:
        missing = set(only) - {p.name for p in files}
        if missing:
            raise SystemExit(f"not in {directory}: {', '.join(sorted(missing))}")
        files = [p for p in files if p.name in only]
    for path in files:
        capture, note = load_capture(path, max_gap_us)
        if note:
            print(f"  {path.name}: {note}", file=sys.stderr)
        if capture is not None:
            captures.append(capture)
    if not captures:
        raise SystemExit(f"no usable captures in {directory}")
    return captures


def write_mix(tpl: Template, plan: V4Plan, copies: int, overlap: int, out: Path) -> tuple[int, int]:
    out.parent.mkdir(parents=True, exist_ok=True)
    packets = 0
    tmp = out.with_name(out.name + ".partial")  # never leave a half file under the real name
    with tmp.open("wb", buffering=8 << 20) as fh:
        fh.write(pcap_global_header())
        for window in range(copies + overlap - 1):
            chunk, count = render_window(tpl, plan, window, copies)
            fh.write(memoryview(chunk))
            packets += count
    tmp.replace(out)
    return packets, out.stat().st_size


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--captures", type=Path, default=DEFAULT_CAPTURES, help="source directory")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output classic pcap")
    ap.add_argument("--target-bytes", type=int, default=DEFAULT_TARGET_BYTES)
    ap.add_argument("--target-packets", type=int, default=DEFAULT_TARGET_PACKETS)
    ap.add_argument("--overlap", type=int, default=32, help="copies live at the same time")
    ap.add_argument(
        "--max-gap", type=float, default=30.0, help="clip gaps inside a capture (seconds)"
    )
    ap.add_argument(
        "--voip-heavy",
        action="store_true",
        help="only the call captures (VOIP_HEAVY), e.g. --out /tmp/voipscope-bench/voip.pcap",
    )
    args = ap.parse_args(argv)
    if args.overlap < 1 or args.max_gap < 0:
        ap.error("--overlap must be >= 1 and --max-gap >= 0")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    only = VOIP_HEAVY if args.voip_heavy else None
    captures = load_corpus(args.captures, int(args.max_gap * 1_000_000), only)
    tpl = build_template(captures, args.overlap)
    copies = copies_needed(tpl, args.target_bytes, args.target_packets)
    plan = plan_v4(tpl.v4_values, copies)
    span_s = (copies + args.overlap - 1) * tpl.stride_us / 1e6
    print(
        f"corpus: {len(captures)} captures, {tpl.packets} packets, {len(tpl.buf)} record bytes; "
        f"{copies} copies, {args.overlap} overlapping, window {tpl.stride_us / 1e6:.1f} s, "
        f"span {span_s / 3600:.1f} h; IPv4 rewrite keeps each /{plan.prefix_bits}"
    )
    packets, size = write_mix(tpl, plan, copies, args.overlap, args.out)
    elapsed = time.perf_counter() - started
    print(f"wrote {args.out}: {packets} packets, {size} bytes in {elapsed:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
