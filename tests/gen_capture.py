"""Generate large synthetic pcap files fast (numpy), for memory and speed tests.

The traffic is shaped like a VoIP-heavy network: many concurrent UDP flows (RTP-sized
packets, 20 ms apart) that start, live for a while and end, so the flow table sees
steady churn. Flows rotate, so live flows stay bounded while the file grows.
"""

from __future__ import annotations

import struct
import sys
from pathlib import Path

import numpy as np

FRAME_BYTES = 14 + 20 + 8 + 172  # Ethernet + IPv4 + UDP + a G.711 20 ms payload w/ RTP
RECORD_BYTES = 16 + FRAME_BYTES


def _chunk_template(n: int) -> np.ndarray:
    rec = np.zeros((n, RECORD_BYTES), np.uint8)
    frame = bytearray(FRAME_BYTES)
    frame[12:14] = b"\x08\x00"
    ip = struct.pack("!BBHHHBBH", 0x45, 0, FRAME_BYTES - 14, 0, 0, 64, 17, 0)
    frame[14:26] = ip
    frame[36:38] = struct.pack("!H", 8 + 172)
    frame[42] = 0x80  # RTP v2
    rec[:, 16:] = np.frombuffer(bytes(frame), np.uint8)
    rec[:, 8:12] = np.frombuffer(struct.pack("<I", FRAME_BYTES), np.uint8)
    rec[:, 12:16] = rec[:, 8:12]
    return rec


def write_capture(
    path: Path, target_bytes: int, concurrent_flows: int = 2000, flow_packets: int = 500
) -> int:
    """Write a pcap of at least ``target_bytes``; returns the packet count."""
    chunk = 100_000
    template = _chunk_template(chunk)
    written = 0
    packet = 0
    with path.open("wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        while written < target_bytes:
            idx = np.arange(packet, packet + chunk, dtype=np.int64)
            # Packet k belongs to flow generation k // (concurrent * flow_packets) and
            # slot k % concurrent: each flow gets flow_packets packets, 20 ms apart.
            slot = idx % concurrent_flows
            generation = idx // (concurrent_flows * flow_packets)
            flow = generation * concurrent_flows + slot
            ts_us = (idx // concurrent_flows) * 20_000 + slot  # 20 ms per round
            rec = template.copy()
            rec[:, 0:4] = (
                (1_700_000_000 + ts_us // 1_000_000).astype("<u4").view(np.uint8).reshape(-1, 4)
            )
            rec[:, 4:8] = (ts_us % 1_000_000).astype("<u4").view(np.uint8).reshape(-1, 4)
            src = (0x0A000000 + (flow % 0xFFFFFF)).astype(">u4").view(np.uint8).reshape(-1, 4)
            dst = (0xC0A80000 + (flow % 0xFFFF)).astype(">u4").view(np.uint8).reshape(-1, 4)
            rec[:, 16 + 26 : 16 + 30] = src
            rec[:, 16 + 30 : 16 + 34] = dst
            ports = (10000 + 2 * (flow % 20000)).astype(">u2").view(np.uint8).reshape(-1, 2)
            rec[:, 16 + 34 : 16 + 36] = ports
            rec[:, 16 + 36 : 16 + 38] = ports
            f.write(rec.tobytes())
            written += rec.size
            packet += chunk
    return packet


if __name__ == "__main__":
    n = write_capture(Path(sys.argv[1]), int(float(sys.argv[2])))
    print(f"{n} packets")
