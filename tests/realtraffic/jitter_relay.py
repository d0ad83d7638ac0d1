"""A UDP relay that delays every datagram by ``delay ± jitter`` (uniform) and drops a
share of them: netem's ``delay D J loss L`` in user space, for kernels built without
sch_netem. With ``--burst-loss P,R`` the drops come in runs instead, from netem's
``loss gemodel P R`` (the simple Gilbert model: a good state that passes every datagram
and a bad one that drops every one, P the chance to go bad, R to go good again): loss
P / (P + R) in runs of 1 / R on average, G.107 burst ratio 1 / (P + R).

The test redirects the caller's RTP into it with nftables and it sends the datagrams on
to their real destination, so the receiver's capture sees a path with
jitter and loss, not a sender that paces badly.

    python -m tests.realtraffic.jitter_relay --listen PORT --bind IP:PORT --to IP:PORT
        --delay-ms D --jitter-ms J (--loss-pct L | --burst-loss P,R) --seed S
        --max-seconds T --max-packets N

Bounded: it exits after ``--max-seconds`` or ``--max-packets`` datagrams received, and
holds at most ``MAX_HELD`` datagrams at once (more are dropped and counted). On exit it
prints one line of counts (``runs``: runs of consecutive drops).
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


def _chances(text: str) -> tuple[float, float]:
    p, r = (float(x) for x in text.split(","))
    if not (0 < p <= 1 and 0 < r <= 1):
        raise argparse.ArgumentTypeError("P,R: two chances in (0, 1]")
    return p, r


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--listen", type=int, required=True, help="UDP port to receive on")
    ap.add_argument("--bind", type=_address, required=True, help="IP:PORT to send from")
    ap.add_argument("--to", type=_address, required=True, help="IP:PORT to send to")
    ap.add_argument("--delay-ms", type=float, default=40.0)
    ap.add_argument("--jitter-ms", type=float, default=10.0)
    ap.add_argument("--loss-pct", type=float, default=0.0)
    ap.add_argument("--burst-loss", type=_chances, default=None, help="P,R (Gilbert model)")
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
    received = sent = dropped = overflow = runs = 0
    bad = dropping = False  # the Gilbert model's state; whether the last datagram dropped
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
        if args.burst_loss is not None:
            go_bad, go_good = args.burst_loss
            bad = rng.random() >= go_good if bad else rng.random() < go_bad
            drop = bad
        else:
            drop = rng.random() * 100.0 < args.loss_pct
        runs += drop and not dropping
        dropping = drop
        if drop:
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
    print(
        f"received {received} sent {sent} dropped {dropped} runs {runs} overflow {overflow}",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
