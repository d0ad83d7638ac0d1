"""Media for real-traffic tests: spoken G.711 calls with a known speech/silence schedule,
written as the RTP pcap sipp's ``uac_pcap`` scenario plays (``pcap/g711a.pcap`` in its
working directory), and network namespaces to run them in.

The speech is espeak-ng's (a real synthesiser, not a tone), placed at known times; the
truth of who talks when is read back from the audio itself (first and last sample above
-45 dBov inside each placed utterance), so nothing in the test assumes the detector.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import uuid
import wave
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from tests import pcapbuild as pb
from tests.unit.activity.g711 import encode

RATE_HZ = 8000
FRAME = 160  # 20 ms at 8 kHz (RFC 3551 §4.5.14)
PT_PCMA = 8
VOICE_DBOV = -45.0


def espeak(text: str, workdir: Path) -> np.ndarray:
    """espeak-ng's rendering of ``text`` at 8 kHz, float samples in 16-bit scale."""
    wav = workdir / f"say-{uuid.uuid4().hex[:6]}.wav"
    subprocess.run(["espeak-ng", "-s", "150", "-w", str(wav), text], check=True)
    with wave.open(str(wav)) as w:
        rate = w.getframerate()
        audio = np.frombuffer(w.readframes(w.getnframes()), "<i2").astype(np.float64)
    # Resample to 8 kHz by linear interpolation (espeak-ng renders at 22.05 kHz).
    t = np.arange(int(len(audio) * RATE_HZ / rate)) / RATE_HZ
    return np.interp(t, np.arange(len(audio)) / rate, audio)


def spoken_call(
    phrases: list[tuple[float, str]], duration_s: float, workdir: Path
) -> tuple[np.ndarray, list[tuple[float, float]]]:
    """Audio with each phrase starting at its time (s); the truth as (start, end) s."""
    audio = np.random.default_rng(1).normal(0, 8, int(duration_s * RATE_HZ))  # line noise
    truth = []
    floor = 32768.0 * 10 ** (VOICE_DBOV / 20)
    for at, text in phrases:
        speech = espeak(text, workdir)
        start = int(at * RATE_HZ)
        audio[start : start + len(speech)] += speech[: len(audio) - start]
        loud = np.flatnonzero(np.abs(speech) > floor)
        truth.append((at + loud[0] / RATE_HZ, at + (loud[-1] + 1) / RATE_HZ))
    return audio, truth


def write_rtp_pcap(
    path: Path,
    audio: np.ndarray,
    dtx_truth: list[tuple[float, float]] | None = None,
    send_delays_s: Sequence[float] | None = None,
    payload_type: int = PT_PCMA,
    ticks_per_frame: int = FRAME,
) -> int:
    """PCMA RTP, one packet per 20 ms (sipp replays the pcap's timing); with
    ``payload_type`` and ``ticks_per_frame`` the same frames under another type and clock
    (111 and 960: as Opus at 48 kHz would be labelled). With
    ``dtx_truth`` the packets outside speech are left out (discontinuous transmission)
    and the first packet of each spurt carries the marker bit (RFC 3551 §4.1). With
    ``send_delays_s`` packet k is sent that much later than its frame's time (its RTP
    timestamp unchanged): a sender that holds packets back."""
    packets = []
    seq = 0
    silent_before = True
    for k in range(len(audio) // FRAME):
        t = k * FRAME / RATE_HZ
        if dtx_truth is not None:
            talking = any(s - 0.02 <= t < e for s, e in dtx_truth)
            if not talking:
                silent_before = True
                continue
        marker = dtx_truth is not None and silent_before
        silent_before = False
        header = bytes([0x80, (0x80 if marker else 0) | payload_type]) + seq.to_bytes(2, "big")
        header += (k * ticks_per_frame).to_bytes(4, "big") + (0x5EED5EED).to_bytes(4, "big")
        payload = encode(audio[k * FRAME : (k + 1) * FRAME], "alaw")
        late = send_delays_s[seq] if send_delays_s is not None and seq < len(send_delays_s) else 0
        packets.append(
            pb.udp_packet(
                1_700_000_000 + t + late, "10.0.0.1", 6100, "10.0.0.2", 6000, header + payload
            )
        )
        seq += 1
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pb.pcap(packets))
    return len(packets)


def have(*tools: str) -> bool:
    return all(shutil.which(t) for t in tools)


def run(*cmd: str) -> None:
    subprocess.run(list(cmd), check=True, capture_output=True)


@contextmanager
def netns_pair(prefix: str = "10.99.0") -> Iterator[tuple[str, str, str, str, str]]:
    """Two namespaces joined by a veth pair; yields (ns_a, ns_b, ip_a, ip_b, dev_a).
    Addresses are the test's own, inside its namespaces; everything is deleted after."""
    tag = uuid.uuid4().hex[:6]
    ns_a, ns_b = f"vsa-{tag}", f"vsb-{tag}"
    dev_a, dev_b = f"va{tag}", f"vb{tag}"
    ip_a, ip_b = f"{prefix}.1", f"{prefix}.2"
    run("ip", "netns", "add", ns_a)
    try:
        run("ip", "netns", "add", ns_b)
        run("ip", "link", "add", dev_a, "netns", ns_a, "type", "veth", "peer", dev_b, "netns", ns_b)
        for ns, dev, ip in ((ns_a, dev_a, ip_a), (ns_b, dev_b, ip_b)):
            run("ip", "-n", ns, "addr", "add", f"{ip}/24", "dev", dev)
            run("ip", "-n", ns, "link", "set", dev, "up")
            run("ip", "-n", ns, "link", "set", "lo", "up")
        yield ns_a, ns_b, ip_a, ip_b, dev_a
    finally:
        subprocess.run(["ip", "netns", "del", ns_a], check=False)
        subprocess.run(["ip", "netns", "del", ns_b], check=False)


def in_ns(ns: str, *cmd: str) -> list[str]:
    return ["ip", "netns", "exec", ns, *cmd]


def dumpcap_on_lo(ns: str, capture: Path, seconds: int) -> subprocess.Popen[bytes]:
    """dumpcap on the namespace's loopback into ``capture``, stopping by itself after
    ``seconds``; the caller terminates it sooner (it needs a moment to start)."""
    return subprocess.Popen(
        in_ns(ns, "dumpcap", "-q", "-i", "lo", "-a", f"duration:{seconds}", "-w", str(capture)),
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip


def netem_available() -> bool:
    """Kernels built without sch_netem (CONFIG_NET_SCH_NETEM, e.g. some VM kernels) say
    "Specified qdisc kind is unknown"; find out in a namespace of our own."""
    name = f"vsn-{uuid.uuid4().hex[:6]}"
    subprocess.run(["ip", "netns", "add", name], check=False, capture_output=True)
    try:
        done = subprocess.run(
            in_ns(name, "tc", "qdisc", "add", "dev", "lo", "root", "netem", "loss", "1%"),
            capture_output=True, check=False,
        )  # fmt: skip
        return done.returncode == 0
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


def netem_on_rtp(ns: str, dev: str, loss_pct: float, delay_ms: int = 0, jitter_ms: int = 0) -> None:
    """netem on the caller's RTP only: a prio qdisc whose third band is netem and a u32
    filter sending UDP to port 6000 there (tc-prio(8), tc-u32(8)), so SIP is untouched."""
    netem = ["netem", "loss", f"{loss_pct}%"]
    if delay_ms:
        netem += ["delay", f"{delay_ms}ms", f"{jitter_ms}ms"]
    run(*in_ns(ns, "tc", "qdisc", "add", "dev", dev, "root", "handle", "1:", "prio"))
    run(*in_ns(ns, "tc", "qdisc", "add", "dev", dev, "parent", "1:3", "handle", "30:", *netem))
    run(*in_ns(ns, "tc", "filter", "add", "dev", dev, "parent", "1:0", "protocol", "ip", "u32",
               "match", "ip", "protocol", "17", "0xff", "match", "ip", "dport", "6000",
               "0xffff", "flowid", "1:3"))  # fmt: skip


def nft_loss_on_rtp(ns: str, dev: str, loss_pct: float) -> None:
    """The same loss with nftables (numgen random) for kernels without netem, at the
    device's egress hook: after the sender's socket (an OUTPUT-hook drop would give sipp
    EPERM and stop its playback), before the wire."""
    table = ("netdev", "vsimpair")
    run(*in_ns(ns, "nft", "add", "table", *table))
    run(*in_ns(ns, "nft", "add", "chain", *table, "out",
               f'{{ type filter hook egress device "{dev}" priority 0; }}'))  # fmt: skip
    per_mille = str(int(loss_pct * 10))
    run(*in_ns(ns, "nft", "add", "rule", *table, "out", "udp", "dport", "6000",
               "numgen", "random", "mod", "1000", "lt", per_mille, "drop"))  # fmt: skip


RELAY_PORT = 7000  # the relay listens here inside the caller's namespace
RELAY_ADDRESS_SUFFIX = ".201"  # the relay sends from a second address of the caller


def relay_jitter_on_rtp(
    ns: str, dev: str, ip_a: str, ip_b: str, loss_pct: float, delay_ms: float,
    jitter_ms: float, max_seconds: float = 90.0, burst_loss: tuple[float, float] | None = None,
) -> Callable[[], str]:  # fmt: skip
    """netem's ``delay D J loss L`` on the caller's RTP for kernels without sch_netem: an
    nftables ``redirect`` (output hook) sends what sipp sends from ip_a to ip_b:6000 into
    ``jitter_relay`` in the same namespace, which delays or drops each datagram and sends
    it on to ip_b:6000 from a second address of the caller (so its own datagrams are not
    redirected again). ``burst_loss`` (P, R): drops in runs, netem's ``loss gemodel P R``
    (jitter_relay). Returns the function that stops the relay and gives its counts."""
    relay_ip = ip_a.rsplit(".", 1)[0] + RELAY_ADDRESS_SUFFIX
    run("ip", "-n", ns, "addr", "add", f"{relay_ip}/24", "dev", dev)
    table = ("ip", "vsrelay")
    run(*in_ns(ns, "nft", "add", "table", *table))
    run(*in_ns(ns, "nft", "add", "chain", *table, "out",
               "{ type nat hook output priority -100; }"))  # fmt: skip
    run(*in_ns(ns, "nft", "add", "rule", *table, "out", "ip", "saddr", ip_a, "ip", "daddr",
               ip_b, "udp", "dport", "6000", "redirect", "to", f":{RELAY_PORT}"))  # fmt: skip
    relay = subprocess.Popen(
        in_ns(ns, sys.executable, "-m", "tests.realtraffic.jitter_relay",
              "--listen", str(RELAY_PORT), "--bind", f"{relay_ip}:6100", "--to", f"{ip_b}:6000",
              "--delay-ms", str(delay_ms), "--jitter-ms", str(jitter_ms),
              "--loss-pct", str(loss_pct), "--max-seconds", str(max_seconds),
              *(["--burst-loss", "{},{}".format(*burst_loss)] if burst_loss else [])),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        cwd=Path(__file__).resolve().parents[2],
    )  # fmt: skip
    assert relay.stdout is not None
    ready = relay.stdout.readline().strip()
    if ready != "ready":
        relay.kill()
        raise RuntimeError(f"jitter relay did not start: {ready!r} {relay.stderr.read()}")

    def stop() -> str:
        if relay.poll() is None:
            relay.terminate()
        out, err = relay.communicate(timeout=10)
        return (out + err).strip()

    return stop
