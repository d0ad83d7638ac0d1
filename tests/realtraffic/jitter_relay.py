"""A UDP relay that delays every datagram by ``delay ± jitter`` (uniform) and drops a
share of them: netem's ``delay D J loss L`` in user space, for kernels built without
sch_netem. The test redirects the caller's RTP into it with nftables and it sends the
datagrams on to their real destination, so the receiver's capture sees a path with
jitter and loss, not a sender that paces badly.

    python -m tests.realtraffic.jitter_relay --listen PORT --bind IP:PORT --to IP:PORT
        --delay-ms D --jitter-ms J --loss-pct L --seed S --max-seconds T --max-packets N

Bounded: it exits after ``--max-seconds`` or ``--max-packets`` datagrams received, and
holds at most ``MAX_HELD`` datagrams at once (more are dropped and counted). On exit it
prints one line of counts.
"""

from __future__ import annotations

import argparse
import heapq
import random
import select
import signal
import socket
import sys
import time

MAX_HELD = 4096  # datagrams in flight: 40 ms at 50 packets/s is 2; this is generous


def _address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host, int(port)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--listen", type=int, required=True, help="UDP port to receive on")
    ap.add_argument("--bind", type=_address, required=True, help="IP:PORT to send from")
    ap.add_argument("--to", type=_address, required=True, help="IP:PORT to send to")
    ap.add_argument("--delay-ms", type=float, default=40.0)
    ap.add_argument("--jitter-ms", type=float, default=10.0)
    ap.add_argument("--loss-pct", type=float, default=0.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--max-seconds", type=float, default=120.0)
    ap.add_argument("--max-packets", type=int, default=20_000)
    args = ap.parse_args(argv)

    rng = random.Random(args.seed)
    inbound = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    inbound.bind(("0.0.0.0", args.listen))
    outbound = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    outbound.bind(args.bind)
    stop = False

    def _stop(*_: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    print("ready", flush=True)

    held: list[tuple[float, int, bytes]] = []  # (due, arrival number, datagram)
    received = sent = dropped = overflow = 0
    deadline = time.monotonic() + args.max_seconds
    while not stop and time.monotonic() < deadline:
        now = time.monotonic()
        while held and held[0][0] <= now:
            outbound.sendto(heapq.heappop(held)[2], args.to)
            sent += 1
        timeout = max(0.0, min(held[0][0] - now if held else 0.05, deadline - now))
        readable, _, _ = select.select([inbound], [], [], timeout)
        if not readable:
            continue
        data = inbound.recv(65535)
        arrived = time.monotonic()
        received += 1
        if received >= args.max_packets:
            stop = True
        if rng.random() * 100.0 < args.loss_pct:
            dropped += 1
            continue
        if len(held) >= MAX_HELD:
            overflow += 1
            continue
        delay_s = (args.delay_ms + rng.uniform(-args.jitter_ms, args.jitter_ms)) / 1000.0
        heapq.heappush(held, (arrived + delay_s, received, data))
    for _, _, data in sorted(held):  # what is still in flight goes out, late
        outbound.sendto(data, args.to)
        sent += 1
    print(f"received {received} sent {sent} dropped {dropped} overflow {overflow}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
