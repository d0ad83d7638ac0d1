"""RTP stream statistics against Wireshark's ``tshark -q -z rtp,streams`` on real captures.

For every capture of ../shared/captures that holds RTP (by tshark's view in
peer_rtp_streams.csv, or by our expected labels), the pipeline runs with the
RtpStreamTracker as a hook; the streams of the flows judged RTP/SRTP/RTCP are compared per
(src, dst, ports, SSRC) with tshark's: packets, lost and max delta exactly (at tshark's
printed precision), mean and max jitter within 5 % or 0.1 ms. tshark runs twice per
capture (default, where SDP sets streams up, and with the rtp_udp heuristic where there is
no signalling); the default run's line wins for a stream both list. Media over TCP tshark
decodes only when told the port: where we judge a TCP flow media, a third run decodes its
server port as RTP (``-d tcp.port==P,rtp``, which reads RFC 4571 framing) or, where the
flow spoke TURN, as STUN with RTP looked for inside (``-d tcp.port==P,stun -o
rtp.heuristic_rtp:TRUE``: ChannelData and Send/Data indications); that run gives only the
streams of those TCP flows.

Where tshark and the bytes disagree, tests/expected/rtp_streams_exceptions.csv says so and
why; every row there must still be needed, so the list cannot go stale.
"""

from __future__ import annotations

import csv
import functools
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from voipscope.config import Config
from voipscope.pipeline import FlowPipeline
from voipscope.quality.rtp_streams import MediaStream, RtpStreamTracker

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared" / "captures"
CAPTURES = SHARED / "ndpi"
EXCEPTIONS = REPO / "tests" / "expected" / "rtp_streams_exceptions.csv"
LABELS = REPO / "tests" / "expected" / "labels"
MEDIA_PROTOCOLS = {"RTP", "SRTP", "RTCP"}
JITTER_REL = 0.05
JITTER_ABS_MS = 0.1

# tshark 4.0 "RTP Streams" line: start, end, src, sport, dst, dport, SSRC, payload names
# (free text), packets, lost (pct%), min/mean/max delta, min/mean/max jitter, problem flag.
_LINE = re.compile(
    r"^\s*\S+\s+\S+\s+(\S+)\s+(\d+)\s+(\S+)\s+(\d+)\s+(0x[0-9A-Fa-f]+)\s+(.*?)\s+(\d+)\s+"
    r"(-?\d+)\s+\(\S+%\)\s+\S+\s+\S+\s+(\S+)\s+\S+\s+(\S+)\s+(\S+)\s*X?\s*$"
)

Key = tuple[str, int, str, int, int]  # src ip, src port, dst ip, dst port, SSRC


@dataclass(frozen=True)
class TsharkStream:
    payload: str
    packets: int
    lost: int
    max_delta_ms: float
    mean_jitter_ms: float
    max_jitter_ms: float


def _rtp_captures() -> list[str]:
    names: set[str] = set()
    peer = SHARED / "peer_rtp_streams.csv"
    if peer.is_file():
        with peer.open() as f:
            names |= {row["capture"] for row in csv.DictReader(f)}
    for path in LABELS.glob("*.csv"):
        with path.open() as f:
            if any(row["protocol"] in MEDIA_PROTOCOLS for row in csv.DictReader(f)):
                names.add(path.name.removesuffix(".csv"))
    return sorted(n for n in names if (CAPTURES / n).is_file())


def parse_rtp_streams(text: str) -> dict[Key, TsharkStream]:
    out: dict[Key, TsharkStream] = {}
    for line in text.splitlines():
        m = _LINE.match(line)
        if m:
            src, sport, dst, dport, ssrc, payload, pkts, lost, max_d, mean_j, max_j = m.groups()
            key = (src, int(sport), dst, int(dport), int(ssrc, 16))
            out[key] = TsharkStream(
                payload, int(pkts), int(lost), float(max_d), float(mean_j), float(max_j)
            )
    return out


TcpMedia = tuple[str, int, str, int, str]  # client, port, server, port, "rtp" | "stun"


@functools.cache  # tshark is slow: once per capture and test session
def tshark_streams(name: str, tcp_media: tuple[TcpMedia, ...] = ()) -> dict[Key, TsharkStream]:
    path = str(CAPTURES / name)
    runs = []
    for extra in (["--enable-heuristic", "rtp_udp"], []):
        done = subprocess.run(
            ["tshark", "-n", "-r", path, "-q", *extra, "-z", "rtp,streams"],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        runs.append(parse_rtp_streams(done.stdout))
    streams = {**runs[0], **runs[1]}  # the default (SDP-informed) run wins
    if tcp_media:
        decode = [("-d", f"tcp.port=={m[3]},{m[4]}") for m in tcp_media]
        done = subprocess.run(
            ["tshark", "-n", "-r", path, "-q", *[a for d in decode for a in d],
             "-o", "rtp.heuristic_rtp:TRUE", "-z", "rtp,streams"],
            capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
        ends = {m[:4] for m in tcp_media} | {(m[2], m[3], m[0], m[1]) for m in tcp_media}
        streams.update(
            (key, stream)
            for key, stream in parse_rtp_streams(done.stdout).items()
            if key[:4] in ends
        )
    return streams


@dataclass(frozen=True)
class Ours:
    streams: dict[Key, MediaStream]
    protocol: dict[tuple[str, int, str, int], str]  # every UDP flow's, by both directions
    tcp_media: tuple[TcpMedia, ...]  # the TCP flows judged media, and how tshark reads them


@functools.cache
def our_streams(name: str) -> Ours:
    """Streams of the flows judged media, UDP and TCP."""
    config = Config()
    tracker = RtpStreamTracker(config.flows.max_flows)
    streams: dict[Key, MediaStream] = {}
    protocol: dict[tuple[str, int, str, int], str] = {}
    tcp_media: set[TcpMedia] = set()
    for batch in FlowPipeline(config, hooks=[tracker]).run([str(CAPTURES / name)]):
        for flow in batch.to_pylist():
            stats = tracker.pop(flow["flow_id"])
            label = flow["protocol"] or "unknown"
            if flow["proto"] == "udp":
                a = (flow["src_ip"], flow["src_port"])
                b = (flow["dst_ip"], flow["dst_port"])
                protocol[(*a, *b)] = protocol[(*b, *a)] = label
            elif flow["proto"] == "tcp" and label in MEDIA_PROTOCOLS:
                turn = any(line.startswith("TURN") for line in flow["evidence"] or [])
                ends = (flow["src_ip"], flow["src_port"], flow["dst_ip"], flow["dst_port"])
                tcp_media.add((*ends, "stun" if turn else "rtp"))
            else:
                continue
            if stats is None or label not in MEDIA_PROTOCOLS:
                continue
            for s in stats.streams:
                streams[(s.src_ip, s.src_port, s.dst_ip, s.dst_port, s.ssrc)] = s
    return Ours(streams, protocol, tuple(sorted(tcp_media)))


def _jitter_close(theirs: float, ours: float) -> bool:
    return abs(theirs - ours) <= max(JITTER_ABS_MS, JITTER_REL * abs(theirs))


def compare(name: str) -> tuple[list[Key], list[tuple[Key, str, str]]]:
    """(streams that match, [(stream, kind, detail)] that do not)."""
    found = our_streams(name)
    theirs = tshark_streams(name, found.tcp_media)
    ours, protocol = found.streams, found.protocol
    matched: list[Key] = []
    differ: list[tuple[Key, str, str]] = []
    for key in sorted(set(theirs) | set(ours)):
        t, o = theirs.get(key), ours.get(key)
        if o is None:
            flow = protocol.get(key[:4], "no UDP flow")
            if flow not in MEDIA_PROTOCOLS:
                differ.append((key, "not_rtp_flow", f"tshark {t}; our flow: {flow}"))
            else:
                differ.append((key, "missing_stream", f"tshark {t}"))
            continue
        if t is None:
            differ.append((key, "extra_stream", f"ours {o.packets} packets"))
            continue
        got = (o.packets, o.lost, round(o.max_delta_ms, 3))
        want = (t.packets, t.lost, t.max_delta_ms)
        if got != want:
            differ.append((key, "counts", f"packets/lost/max delta: tshark {want}, ours {got}"))
            continue
        # tshark prints 0 where it knows no clock; we say None (unknown).
        mean_j = o.jitter_ms if o.jitter_ms is not None else 0.0
        max_j = o.max_jitter_ms if o.max_jitter_ms is not None else 0.0
        if not (_jitter_close(t.mean_jitter_ms, mean_j) and _jitter_close(t.max_jitter_ms, max_j)):
            differ.append(
                (key, "jitter", f"tshark {t.mean_jitter_ms}/{t.max_jitter_ms}, "
                 f"ours {mean_j:.3f}/{max_j:.3f}")
            )  # fmt: skip
            continue
        matched.append(key)
    return matched, differ


def read_exceptions() -> list[dict[str, str]]:
    with EXCEPTIONS.open() as f:
        return list(csv.DictReader(f))


def _covers(row: dict[str, str], name: str, key: Key, kind: str) -> bool:
    return (
        row["capture"] == name
        and row["kind"] == kind
        and (row["src_ip"], int(row["src_port"]), row["dst_ip"], int(row["dst_port"])) == key[:4]
        and (row["ssrc"] == "*" or int(row["ssrc"], 16) == key[4])
    )


pytestmark = pytest.mark.skipif(
    not CAPTURES.is_dir() or shutil.which("tshark") is None,
    reason="needs ../shared/captures and tshark",
)


@pytest.mark.parametrize("name", _rtp_captures())
def test_streams_match_tshark(name: str) -> None:
    _, differ = compare(name)
    rows = [r for r in read_exceptions() if r["capture"] == name]
    unexplained = [
        (key, kind, detail)
        for key, kind, detail in differ
        if not any(_covers(r, name, key, kind) for r in rows)
    ]
    assert not unexplained, "differences from tshark without a row in the exceptions file"
    stale = [r for r in rows if not any(_covers(r, name, k, kind) for k, kind, _ in differ)]
    assert not stale, "exceptions that no longer happen: remove them"


def test_exception_rows_are_well_formed() -> None:
    kinds = {"not_rtp_flow", "missing_stream", "extra_stream", "counts", "jitter"}
    captures = set(_rtp_captures())
    for row in read_exceptions():
        assert row["kind"] in kinds and row["reason"].strip()
        assert row["capture"] in captures
