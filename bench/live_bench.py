#!/usr/bin/env python3
"""Packets/s and kernel drops of `voipscope live` (docs/live.md, "Backend: measured").

Makes two network namespaces joined by a veth (deleted afterwards), runs
`voipscope live --stats` on one end and `tcpreplay --topspeed` on the other, and prints
the rate tcpreplay offered, the packets voipscope read and the kernel's drops. Needs
root, ip and tcpreplay (apt-get install tcpreplay). Traffic stays inside the namespaces.

    python bench/live_bench.py                          # 4 M synthetic RTP-like packets
    python bench/live_bench.py --pcap mix.pcap --loops 200 -- -c live.ring_bytes=268435456
"""

from __future__ import annotations

import argparse
import json
import re
import struct
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path


def synthetic_pcap(path: Path, packets: int) -> None:
    """RTP-like datagrams (172 bytes of UDP payload) in 1000 flows, Ethernet/IPv4."""
    with path.open("wb") as out:
        out.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        eth = bytes.fromhex("020000000002020000000001") + b"\x08\x00"
        for i in range(packets):
            flow = i % 1000
            rtp = struct.pack(">BBHII", 0x80, 0, i & 0xFFFF, i * 160, 0x1000 + flow)
            payload = rtp + b"\xd5" * 160
            udp = struct.pack(">HHHH", 10000 + flow, 20000, 8 + len(payload), 0) + payload
            src = bytes([10, 199, 1, flow % 250 + 1])
            ip = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0x4000, 64, 17, 0,
                             src, bytes([10, 199, 0, 2]))  # fmt: skip
            frame = eth + ip + udp
            out.write(struct.pack("<IIII", 1000 + i // 50000, (i % 50000) * 20, len(frame),
                                  len(frame)) + frame)  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pcap", type=Path, help="Ethernet pcap to replay (default: synthetic)")
    parser.add_argument("--loops", type=int, default=20, help="tcpreplay --loop (default 20)")
    parser.add_argument("--records", default="all")
    parser.add_argument("extra", nargs="*", help="more voipscope live arguments (after --)")
    args = parser.parse_args()
    tag = uuid.uuid4().hex[:6]
    a, b = f"lbA-{tag}", f"lbB-{tag}"
    with tempfile.TemporaryDirectory() as tmp:
        pcap = args.pcap
        if pcap is None:
            pcap = Path(tmp) / "rtp200k.pcap"
            synthetic_pcap(pcap, 200_000)
        for ns in (a, b):
            subprocess.run(["ip", "netns", "add", ns], check=True)
        try:
            subprocess.run(["ip", "link", "add", "bva", "netns", a, "type", "veth", "peer",
                            "name", "bvb", "netns", b], check=True)  # fmt: skip
            for ns, dev in ((a, "bva"), (b, "bvb")):
                subprocess.run(["ip", "-n", ns, "link", "set", dev, "up"], check=True)
            err = Path(tmp) / "live.err"
            live = subprocess.Popen(
                ["ip", "netns", "exec", b, sys.executable, "-m", "voipscope", "live", "-i",
                 "bvb", "--records", args.records, "--stats", "-o", "/dev/null", "-f", "jsonl",
                 *args.extra],
                stderr=err.open("w"),
            )  # fmt: skip
            for _ in range(600):
                if "listening on" in err.read_text():
                    break
                time.sleep(0.1)
            time.sleep(1.0)
            replay = subprocess.run(
                ["ip", "netns", "exec", a, "tcpreplay", "-q", "--topspeed", "-i", "bva",
                 "--loop", str(args.loops), str(pcap)],
                capture_output=True, text=True, check=False,
            )  # fmt: skip
            rated = re.search(r"Rated:.*?([\d.]+) pps", replay.stdout + replay.stderr)
            actual = re.search(r"Actual: (\d+) packets .* in ([\d.]+) seconds", replay.stdout)
            time.sleep(2.0)
            live.send_signal(2)
            live.wait(timeout=600)
            text = err.read_text()
            stats = json.loads(text[text.index("{\n") :])
            (source,) = stats["inputs"]
            print(f"offered: {actual.group(1) if actual else '?'} packets in "
                  f"{actual.group(2) if actual else '?'} s, "
                  f"{float(rated.group(1)) / 1e6 if rated else 0:.3f} M packets/s")  # fmt: skip
            print(f"voipscope live: {source['packets']} packets read, kernel received "
                  f"{source['kernel_received']}, dropped {source['kernel_dropped']}; "
                  f"{stats['flows']} flows")  # fmt: skip
        finally:
            for ns in (a, b):
                subprocess.run(["ip", "netns", "del", ns], check=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
