#!/usr/bin/env python3
"""At which packet is RTP found: of the flow, and of the media on it.

    python bench/detection_delay.py [--captures DIR]

``detected_at_packet`` counts every packet of a flow from its first (DESIGN §3). A media
flow of WebRTC, WhatsApp or Discord starts with STUN checks, a DTLS handshake or an IP
discovery exchange on the same 5-tuple before its first RTP packet, and no classifier
can call media before media is sent. This prints, for every RTP/RTCP/SRTP verdict on the
shared captures, both counts: the flow packet at which it was found, and how many
RTP and RTCP packets (RFC 7983 §7: first byte 128-191; RTCP by its packet type,
RFC 5761 §4) the flow had carried by then, so
what the detector costs and what the protocol's setup costs can be told apart.
RTP carried inside TURN Data/Send indications (STUN messages) is listed apart.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from voipscope.config import Config  # noqa: E402
from voipscope.flows.hooks import NoHooks  # noqa: E402
from voipscope.pipeline import FlowPipeline  # noqa: E402

DEFAULT_CAPTURES = REPO.parent / "shared" / "captures" / "ndpi"
MEDIA = ("RTP", "RTCP", "SRTP")
RTP_FIRST_BYTES = range(128, 192)  # RFC 7983 §7: RTP and RTCP


# RFC 5761 §4: packet types 192-223 are RTCP's (SR..APP 200-204, RTPFB/PSFB 205/206, XR
# 207, ...), which is why RTP payload types 64-95 must not be used beside RTCP.
RTCP_TYPES = range(192, 224)


class FirstBytes(NoHooks):
    """The first two payload bytes of every packet of every flow, by packet number."""

    def __init__(self) -> None:
        self.by_flow: dict[int, dict[int, bytes]] = defaultdict(dict)

    def on_update(self, d, a) -> None:  # type: ignore[no-untyped-def]
        for i in np.flatnonzero(a.slot >= 0).tolist():
            head = d.payload(i)[:2] if int(d.l4_len[i]) > 0 else b""
            self.by_flow[int(a.flow_id[i])][int(a.seq[i])] = head


def kind(head: bytes) -> str:
    """ "rtp", "rtcp" or "" by RFC 7983 §7 and RFC 5761 §4 (the packet type byte)."""
    if len(head) < 2 or head[0] not in RTP_FIRST_BYTES:
        return ""
    return "rtcp" if head[1] in RTCP_TYPES else "rtp"


def delays(path: Path) -> list[dict]:
    hook = FirstBytes()
    pipeline = FlowPipeline(Config(), hooks=[hook])
    rows = []
    for batch in pipeline.run([str(path)]):
        for r in batch.to_pylist():
            if r["category"] != "voip-media" or r["protocol"] not in MEDIA:
                continue
            at = r["detected_at_packet"]
            kinds = [kind(h) for seq, h in sorted(hook.by_flow[r["flow_id"]].items()) if seq <= at]
            media = sum(1 for k in kinds if k)
            rtp, rtcp = kinds.count("rtp"), kinds.count("rtcp")
            inside_turn = any("inside TURN" in e for e in r["evidence"] or [])
            rows.append({
                "capture": path.name, "protocol": r["protocol"], "app": r["app"],
                "flow": f"{r['src_ip']}:{r['src_port']} -> {r['dst_ip']}:{r['dst_port']}",
                "detected_at_packet": at, "media_packets_by_then": media,
                "rtp_packets_by_then": rtp, "rtcp_packets_by_then": rtcp,
                "inside_turn": inside_turn,
            })  # fmt: skip
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--captures", type=Path, default=DEFAULT_CAPTURES)
    args = parser.parse_args(argv)
    captures = sorted(p for p in args.captures.iterdir() if p.suffix in (".pcap", ".pcapng"))
    rows = [row for path in captures for row in delays(path)]
    print("median packet at which the verdict came, counting the flow's packets, its RTP and")
    print("RTCP packets, its RTP packets (RTCP verdicts: its RTCP packets):")
    print(f"{'protocol':9} {'flows':>5} {'flow':>6} {'RTP+RTCP':>9} {'RTP':>5} "
          f"{'at its 1st RTP (RTCP) packet':>29}")  # fmt: skip
    for protocol in MEDIA:
        mine = [r for r in rows if r["protocol"] == protocol and not r["inside_turn"]]
        if not mine:
            continue
        own = "rtcp_packets_by_then" if protocol == "RTCP" else "rtp_packets_by_then"
        flow_at = statistics.median(r["detected_at_packet"] for r in mine)
        media_at = statistics.median(r["media_packets_by_then"] for r in mine)
        own_at = statistics.median(r[own] for r in mine)
        first = sum(1 for r in mine if r[own] == 1)
        print(f"{protocol:9} {len(mine):5} {flow_at:6g} {media_at:9g} {own_at:5g} "
              f"{first:>22} of {len(mine):<3}")  # fmt: skip
    late = [r for r in rows if not r["inside_turn"] and r["rtcp_packets_by_then" if
            r["protocol"] == "RTCP" else "rtp_packets_by_then"] != 1]  # fmt: skip
    for r in late:
        print(f"  not at its first: {r['capture']} {r['protocol']} {r['flow']}: RTP "
              f"{r['rtp_packets_by_then']}, RTCP {r['rtcp_packets_by_then']}, flow packet "
              f"{r['detected_at_packet']}")  # fmt: skip
    turn = [r for r in rows if r["inside_turn"]]
    print(
        f"\ninside TURN Data/Send indications (not counted above): {len(turn)} flows, "
        f"found at flow packets {sorted(r['detected_at_packet'] for r in turn)}"
    )
    print("\nflows found after their flow's 3rd packet, with the packets it had carried by then:")
    for r in sorted(rows, key=lambda r: -r["detected_at_packet"]):
        if r["detected_at_packet"] > 3 and not r["inside_turn"]:
            setup = r["detected_at_packet"] - r["media_packets_by_then"]
            rtcp = r["rtcp_packets_by_then"]
            print(f"  {r['capture']:28} {r['protocol']:5} {r['app'] or '-':9} "
                  f"packet {r['detected_at_packet']:3}: RTP {r['rtp_packets_by_then']:2}, "
                  f"RTCP {rtcp:2}, other {setup:2}  {r['flow']}")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
