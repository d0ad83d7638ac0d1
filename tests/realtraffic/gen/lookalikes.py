"""Non-VoIP UDP traffic that looks like VoIP to a naive behavioural rule: the negatives
of the behavioural model's generated data (run inside namespaces by generate.py).

    python -m tests.realtraffic.gen.lookalikes KIND server|client --addr IP:PORT
        --seconds S --seed N

KIND:
- ``game``: a client sends inputs every tick (30 or 60 Hz, 30-90 B), the server sends
  world snapshots at 20-30 Hz whose size follows the action (80-900 B) — periodic and
  two-way like a call, the hardest lookalike;
- ``dns``: a forwarder's one socket sending bursts of A/AAAA queries (3-20 names) with
  pauses, each answered;
- ``stream``: video-on-demand-like: 2 s segments sent as back-to-back 1200 B datagrams,
  acknowledged every 10 packets by the client.
"""

from __future__ import annotations

import argparse
import socket
import struct
import time

import numpy as np


def _addr(text: str) -> tuple[str, int]:
    host, port = text.rsplit(":", 1)
    return host, int(port)


def _dns_query(qid: int, name: str) -> bytes:
    """RFC 1035 §4.1: header (RD set), one question, type A, class IN."""
    labels = b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0"
    return struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0) + labels + struct.pack(">HH", 1, 1)


def serve(kind: str, addr: tuple[str, int], seconds: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(addr)
    sock.settimeout(0.005)
    end = time.monotonic() + seconds + 5
    peer = None
    next_snapshot = 0.0
    tick_s = 1 / float(rng.choice([20, 30]))
    action = 200.0
    while time.monotonic() < end:
        try:
            data, peer_now = sock.recvfrom(2048)
            peer = peer_now
            if kind == "dns":
                answer = data[:2] + b"\x81\x80" + data[4:6] + b"\x00\x01\x00\x00\x00\x00"
                answer += data[12:] + b"\xc0\x0c\x00\x01\x00\x01\x00\x00\x01\x2c\x00\x04"
                answer += bytes(rng.integers(1, 255, 4, dtype=np.uint8))
                sock.sendto(answer, peer)
            elif kind == "stream" and data.startswith(b"GET"):
                for _ in range(int(rng.integers(300, 900))):  # one segment
                    sock.sendto(bytes(rng.integers(0, 256, 1200, dtype=np.uint8)), peer)
                    time.sleep(0.0002)
        except TimeoutError:
            pass
        if kind == "game" and peer is not None and time.monotonic() >= next_snapshot:
            next_snapshot = time.monotonic() + tick_s
            action = float(np.clip(action + rng.normal(0, 40), 80, 900))
            sock.sendto(bytes(rng.integers(0, 256, int(action), dtype=np.uint8)), peer)


def client(kind: str, addr: tuple[str, int], seconds: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.settimeout(0.001)
    end = time.monotonic() + seconds
    if kind == "game":
        tick_s = 1 / float(rng.choice([30, 60]))
        while time.monotonic() < end:
            sock.sendto(
                bytes(rng.integers(0, 256, int(rng.integers(30, 90)), dtype=np.uint8)), addr
            )
            _drain(sock)
            time.sleep(tick_s)
    elif kind == "dns":
        qid = int(rng.integers(0, 65535))
        while time.monotonic() < end:
            for _ in range(int(rng.integers(3, 20))):
                qid = (qid + 1) & 0xFFFF
                name = f"host{int(rng.integers(0, 10_000))}.example{int(rng.integers(0, 50))}.test"
                sock.sendto(_dns_query(qid, name), addr)
                time.sleep(float(rng.uniform(0.0, 0.01)))
                _drain(sock)
            time.sleep(float(rng.uniform(0.2, 2.0)))
    elif kind == "stream":
        while time.monotonic() < end:
            sock.sendto(b"GET segment", addr)
            received = 0
            deadline = time.monotonic() + 2.0
            while time.monotonic() < deadline:
                received += _drain(sock)
                if received >= 10:
                    sock.sendto(b"ACK" + bytes(40), addr)
                    received = 0


def _drain(sock: socket.socket) -> int:
    count = 0
    while True:
        try:
            sock.recvfrom(4096)
            count += 1
        except (TimeoutError, BlockingIOError):
            return count


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("kind", choices=("game", "dns", "stream"))
    ap.add_argument("role", choices=("server", "client"))
    ap.add_argument("--addr", required=True)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    (serve if a.role == "server" else client)(a.kind, _addr(a.addr), a.seconds, a.seed)


if __name__ == "__main__":
    main()
