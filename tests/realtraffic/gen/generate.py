"""Generate labelled captures for the behavioural model: real WebRTC calls (aiortc,
Opus + VP8 over DTLS-SRTP; direct, with loss, through a coturn relay) and non-VoIP
lookalikes (iperf3 constant-rate UDP, DNS bursts, game-like ticks, segment streaming,
QUIC: HTTP/3 downloads and page loads, 20 ms DATAGRAM or stream ticks with aioquic).

    sudo python -m tests.realtraffic.gen.generate [--out DIR] [--seconds S] [--only NAME...]

Everything runs in two network namespaces this script creates (addresses of its own,
10.98.0.0/24, inside them only) and deletes afterwards; dumpcap captures on the caller's
veth. Each scenario writes ``NAME.pcap`` and ``NAME.pcap.csv`` (labels in the format of
tests/expected/labels, decided by the scenario, not by voipscope) to DIR (default
/tmp/voipscope-behaviour/gen). Loss is nftables ``numgen random`` at the caller's egress
(this machine's kernel has no netem). Bounded: every process has a deadline.
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import ipaddress
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tests.realtraffic.media import have, netns_pair, run

REPO = Path(__file__).resolve().parents[3]
DEFAULT_OUT = Path("/tmp/voipscope-behaviour/gen")
PREFIX = "10.98.0"
TURN_PORT = 3478
MEDIA_MIN_PACKETS = 100  # a call's UDP flow with this many packets carries its media


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    kind: str  # call | iperf | game | dns | stream | quic (extra[0]: quic_peer's KIND)
    calls: int = 1  # concurrent calls
    video: bool = False
    loss_pct: float = 0.0
    relay: bool = False
    turn_transport: str = "udp"  # the caller's connection to the relay: udp | tcp
    seed: int = 1
    codec: str = "opus"
    video_codec: str = "VP8"
    one_way: bool = False  # the callee only receives
    extra: tuple[str, ...] = field(default_factory=tuple)


SCENARIOS = (
    Scenario("aiortc-audio-a", "call", calls=3, seed=1),
    Scenario("aiortc-audio-b", "call", calls=3, seed=11),
    Scenario("aiortc-audio-loss5", "call", calls=3, loss_pct=5.0, seed=21),
    Scenario("aiortc-audio-loss15", "call", calls=2, loss_pct=15.0, seed=31),
    Scenario("aiortc-video", "call", calls=2, video=True, seed=41),
    Scenario("aiortc-audio-turn", "call", calls=2, relay=True, seed=51),
    Scenario("aiortc-video-turn", "call", calls=1, video=True, relay=True, seed=61),
    # G.711 (constant 160-byte frames), one-way calls, H.264, relayed with loss: the
    # shapes a model fitted on Opus alone would not have seen.
    Scenario("aiortc-pcmu", "call", calls=2, codec="PCMU", seed=111),
    Scenario("aiortc-pcma-oneway", "call", calls=2, codec="PCMA", one_way=True, seed=121),
    Scenario("aiortc-opus-oneway-loss5", "call", calls=2, one_way=True, loss_pct=5.0, seed=131),
    Scenario(
        "aiortc-g722-turn-loss10",
        "call",
        calls=2,
        codec="G722",
        relay=True,
        loss_pct=10.0,
        seed=141,
    ),
    Scenario("aiortc-h264", "call", calls=1, video=True, video_codec="H264", seed=151),
    # iperf3 at voice rates: 50 pps of 160 B (64 kb/s) is G.711's packet rate and size.
    Scenario("iperf3-voice-rate", "iperf", extra=("-b", "64k", "-l", "160")),
    Scenario("iperf3-50pps-120B", "iperf", extra=("-b", "48k", "-l", "120")),
    Scenario("iperf3-33pps-200B-bidir", "iperf", extra=("-b", "53k", "-l", "200", "--bidir")),
    Scenario("iperf3-voice-rate-bidir", "iperf", extra=("-b", "80k", "-l", "200", "--bidir")),
    Scenario("iperf3-bulk", "iperf", extra=("-b", "4M", "-l", "1200")),
    Scenario("game-a", "game", calls=3, seed=71),
    Scenario("game-b", "game", calls=3, seed=81),
    Scenario("dns-bursts", "dns", calls=3, seed=91),
    Scenario("stream-segments", "stream", calls=2, seed=101),
    # QUIC (aioquic, self-signed certificate): encrypted UDP whose Initial the QUIC
    # dissector names; the ticks are the hard case for the behaviour model alone, a
    # steady 20 ms clock both ways with small packets, like a game or a MoQ data track.
    Scenario("quic-h3-bulk", "quic", seed=161, extra=("bulk",)),
    Scenario("quic-h3-requests", "quic", seed=171, extra=("requests",)),
    Scenario("quic-datagrams-20ms", "quic", calls=2, seed=181, extra=("datagrams",)),
    Scenario("quic-stream-ticks-20ms", "quic", seed=191, extra=("stream-ticks",)),
)
QUIC_PORT = 4433


def _in(ns: str, *cmd: str) -> list[str]:
    return ["ip", "netns", "exec", ns, *cmd]


def _python(ns: str, module: str, *args: str) -> list[str]:
    return _in(ns, sys.executable, "-m", module, *args)


@contextmanager
def capture(ns: str, dev: str, path: Path, seconds: float) -> Iterator[None]:
    dumpcap = subprocess.Popen(
        _in(ns, "dumpcap", "-q", "-P", "-i", dev, "-a", f"duration:{seconds + 30:.0f}",
            "-w", str(path)),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    time.sleep(1.0)
    try:
        yield
    finally:
        time.sleep(0.5)
        dumpcap.terminate()
        dumpcap.wait(timeout=10)


@contextmanager
def nft_loss(ns: str, dev: str, loss_pct: float) -> Iterator[None]:
    if loss_pct <= 0:
        yield
        return
    # The device's egress hook: after the sender's socket (an OUTPUT-hook drop would give
    # the sender EPERM), before the wire; UDP only, so the SDP exchange is untouched.
    table = ("netdev", "vsloss")
    run(*_in(ns, "nft", "add", "table", *table))
    run(*_in(ns, "nft", "add", "chain", *table, "out",
             f'{{ type filter hook egress device "{dev}" priority 0; }}'))  # fmt: skip
    run(*_in(ns, "nft", "add", "rule", *table, "out", "ip", "protocol", "udp",
             "numgen", "random", "mod", "1000", "lt", str(int(loss_pct * 10)), "drop"))  # fmt: skip
    try:
        yield
    finally:
        subprocess.run(_in(ns, "nft", "delete", "table", *table), check=False)


@contextmanager
def turn_server(ns: str, ip: str, workdir: Path) -> Iterator[None]:
    proc = subprocess.Popen(
        _in(ns, "turnserver", "-n", f"--listening-ip={ip}", f"--relay-ip={ip}",
            f"--listening-port={TURN_PORT}", "--min-port=49152", "--max-port=49999",
            "--lt-cred-mech", "--user=voipscope:behaviour", "--realm=voipscope.test",
            "--no-tls", "--no-dtls", "--no-cli", "--allow-loopback-peers",
            f"--log-file={workdir / 'turnserver.log'}", "--simple-log"),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    time.sleep(1.0)
    try:
        yield
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def run_scenario(s: Scenario, ns_a: str, ns_b: str, ip_a: str, ip_b: str, seconds: float) -> None:
    procs: list[subprocess.Popen[bytes]] = []
    deadline = seconds + 40
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "cwd": REPO}
    for k in range(s.calls if s.kind != "iperf" else 1):
        port = 9000 + k
        seed = str(s.seed + k)
        if s.kind == "call":
            extra = ["--codec", s.codec, "--video-codec", s.video_codec]
            extra += ["--video"] if s.video else []
            if s.relay:
                extra += ["--turn", f"{ip_b}:{TURN_PORT}", "--relay"]
            caller_extra = ["--turn-transport", s.turn_transport] if s.relay else []
            common = ["--signal", f"{ip_b}:{port}", "--seconds", str(seconds), "--seed", seed]
            mod = "tests.realtraffic.gen.aiortc_peer"
            silent = ["--silent"] if s.one_way else []
            procs.append(
                subprocess.Popen(_python(ns_b, mod, "callee", *common, *extra, *silent), **quiet)
            )
            time.sleep(0.5)
            procs.append(subprocess.Popen(
                _python(ns_a, mod, "caller", *common, *extra, *caller_extra), **quiet
            ))  # fmt: skip
        elif s.kind == "iperf":
            procs.append(subprocess.Popen(_in(ns_b, "iperf3", "-s", "-1", "-B", ip_b), **quiet))
            time.sleep(0.5)
            procs.append(subprocess.Popen(
                _in(ns_a, "iperf3", "-u", "-c", ip_b, "-t", str(int(seconds)), *s.extra), **quiet
            ))  # fmt: skip
        elif s.kind == "quic":
            mod = "tests.realtraffic.gen.quic_peer"
            addr = ["--addr", f"{ip_b}:{QUIC_PORT + k}", "--seconds", str(seconds), "--seed", seed]
            procs.append(subprocess.Popen(_python(ns_b, mod, s.extra[0], "server", *addr), **quiet))
            time.sleep(1.0)  # aioquic's import and the certificate take a moment
            procs.append(subprocess.Popen(_python(ns_a, mod, s.extra[0], "client", *addr), **quiet))
        else:
            mod = "tests.realtraffic.gen.lookalikes"
            addr = ["--addr", f"{ip_b}:{port}", "--seconds", str(seconds), "--seed", seed]
            procs.append(subprocess.Popen(_python(ns_b, mod, s.kind, "server", *addr), **quiet))
            time.sleep(0.3)
            procs.append(subprocess.Popen(_python(ns_a, mod, s.kind, "client", *addr), **quiet))
    for p in procs:
        try:
            p.wait(timeout=deadline)
        except subprocess.TimeoutExpired:
            p.kill()


def write_labels(s: Scenario, pcap: Path) -> int:
    """Label every UDP/TCP flow of the capture by what the scenario put there."""
    from voipscope.api import read_flows

    rows = []
    for r in read_flows([str(pcap)]).to_pylist():
        if r["proto"] not in ("udp", "tcp"):
            continue
        proto = 6 if r["proto"] == "tcp" else 17
        a, b = (r["src_ip"], r["src_port"]), (r["dst_ip"], r["dst_port"])
        if (ipaddress.ip_address(b[0]), b[1]) < (ipaddress.ip_address(a[0]), a[1]):
            a, b = b, a
        packets = r["src2dst_packets"] + r["dst2src_packets"]
        if s.kind == "call":
            if proto == 6:
                continue  # our own SDP exchange: not a VoIP protocol, left unlabelled
            if packets >= MEDIA_MIN_PACKETS:
                label = ("voip-media", "TURN" if s.relay else "SRTP", "aiortc",
                         "video" if s.video else "audio", f"generated: {s.name}")  # fmt: skip
            else:
                label = ("voip-signaling", "STUN", "aiortc", "", f"generated: {s.name}")
        else:
            protocol = "QUIC" if s.kind == "quic" else s.kind
            label = ("other", protocol, "", "", f"generated lookalike: {s.name}")
        rows.append((proto, a[0], a[1], b[0], b[1], *label))
    with Path(str(pcap) + ".csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["proto", "a_ip", "a_port", "b_ip", "b_port", "category", "protocol", "app",
                    "media", "note"])  # fmt: skip
        w.writerows(sorted(set(rows)))
    return len(rows)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--seconds", type=float, default=15.0)
    ap.add_argument("--only", nargs="*", help="scenario names")
    args = ap.parse_args()
    chosen = [s for s in SCENARIOS if not args.only or s.name in args.only]
    missing = missing_tools(chosen)
    if missing:
        print(f"needs {', '.join(missing)} for these scenarios", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    for s in chosen:
        with netns_pair(PREFIX) as (ns_a, ns_b, ip_a, ip_b, dev_a):
            pcap = args.out / f"{s.name}.pcap"
            turn = turn_server(ns_b, ip_b, args.out) if s.relay else _nothing()
            with turn, nft_loss(ns_a, dev_a, s.loss_pct), capture(ns_a, dev_a, pcap, args.seconds):
                run_scenario(s, ns_a, ns_b, ip_a, ip_b, args.seconds)
            subprocess.run(["chmod", "644", str(pcap)], check=False)
            print(f"{s.name}: {write_labels(s, pcap)} labelled flows -> {pcap}", flush=True)
    return 0


def missing_tools(chosen: list[Scenario]) -> list[str]:
    """What the chosen scenarios need and this machine lacks (so that --only quic-...
    runs without coturn, iperf3 or aiortc)."""
    need = ["ip", "dumpcap", "nft"]
    need += ["iperf3"] if any(s.kind == "iperf" for s in chosen) else []
    need += ["turnserver"] if any(s.relay for s in chosen) else []
    missing = [f"{t}{' (apt coturn)' if t == 'turnserver' else ''}" for t in need if not have(t)]
    for kind, module in (("call", "aiortc"), ("quic", "aioquic")):
        if any(s.kind == kind for s in chosen) and importlib.util.find_spec(module) is None:
            missing.append(f"{module} (pip install {module})")
    return missing


@contextmanager
def _nothing() -> Iterator[None]:
    yield


if __name__ == "__main__":
    raise SystemExit(main())
